"""The paper's FR settings for each of its experiments, in one place (Shi, Zhou & Gu, CVPR 2024, and its code).

The runners' defaults and the nerfstudio methods take them from here; the ``*-paper`` presets in ``configs/`` restate
the 1D, 2D and 3D ones for the command line. Alpha is smaller for sine networks, whose layers are scaled by ω0.
"""

from __future__ import annotations

from frinr_core.mlp import FourierConfig


def image(sine: bool = False) -> FourierConfig:
    """2D image fitting (width 256): L = H = 128, P = 32, alpha 0.05 (ReLU, ReLU+PE) or 0.01 (SIREN)."""
    return FourierConfig(low_freqs=128, high_freqs=128, phases=32, alpha=0.01 if sine else 0.05)


def signal_1d(sine: bool = False) -> FourierConfig:
    """1D function fitting (width 128): L = H = 64, P = 16, alpha 0.05 (ReLU) or 0.01 (sine)."""
    return FourierConfig(low_freqs=64, high_freqs=64, phases=16, alpha=0.01 if sine else 0.05)


def occupancy(sine: bool = True) -> FourierConfig:
    """3D occupancy (width 256): L = H = 256, P = 8, alpha 0.001 (SIREN) or 0.01 (ReLU+PE)."""
    return FourierConfig(low_freqs=256, high_freqs=256, phases=8, alpha=0.001 if sine else 0.01)


def instant_ngp() -> FourierConfig:
    """Instant-NGP's colour MLP: L = H = 32, P = 64, alpha 0.01."""
    return FourierConfig(low_freqs=32, high_freqs=32, phases=64, alpha=0.01)


def dvgo() -> FourierConfig:
    """DirectVoxGO's colour MLP (rgbnet): L = H = 64, P = 64, alpha 0.05."""
    return FourierConfig(low_freqs=64, high_freqs=64, phases=64, alpha=0.05)
