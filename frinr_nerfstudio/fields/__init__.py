"""Radiance fields whose MLP heads can be Fourier reparameterized."""

from frinr_nerfstudio.fields.ngp import NGPField, NGPFieldConfig

__all__ = ["NGPField", "NGPFieldConfig"]
