"""Radiance fields whose MLP heads can be Fourier reparameterized."""

from frinr_nerfstudio.method.fields.ngp import NGPField, NGPFieldConfig

__all__ = ["NGPField", "NGPFieldConfig"]
