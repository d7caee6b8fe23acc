"""nerfstudio models whose fields have Fourier reparameterized heads."""

from frinr_nerfstudio.models.ngp import NGPModel, NGPModelConfig

__all__ = ["NGPModel", "NGPModelConfig"]
