"""frinr_core: Fourier reparameterized training for implicit neural representations, in pure PyTorch."""

from frinr_core.fourier import FourierLinear, fold_fourier_layers, fourier_bases
from frinr_core.layers import PositionalEncoding, Sine, nyquist_frequencies, siren_init_
from frinr_core.mlp import FourierConfig, MLPConfig, build_mlp

__all__ = [
    "FourierConfig",
    "FourierLinear",
    "MLPConfig",
    "PositionalEncoding",
    "Sine",
    "build_mlp",
    "fold_fourier_layers",
    "fourier_bases",
    "nyquist_frequencies",
    "siren_init_",
]
