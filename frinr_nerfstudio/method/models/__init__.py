"""nerfstudio models whose fields have Fourier reparameterized heads."""

from frinr_nerfstudio.method.models.ngp import NGPModel, NGPModelConfig

__all__ = ["NGPModel", "NGPModelConfig"]
