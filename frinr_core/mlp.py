"""One builder for every network: ReLU, ReLU + positional encoding, or SIREN, with any layers FR.

Baseline and FR networks come from the same call with ``fr`` switched, so they differ only in the
reparameterized layers (same widths, activations, encodings and initialisation elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from frinr_core.fourier import FourierLinear
from frinr_core.layers import PositionalEncoding, Sine, nyquist_frequencies, siren_init_

Arch = Literal["relu", "pe", "siren"]


@dataclass
class FourierConfig:
    """FR settings; the defaults are the paper's 2D image settings for ReLU networks (``frinr_core.paper.image``)."""

    low_freqs: int = 128
    """L: low frequencies 1/L … 1."""
    high_freqs: int = 128
    """H: high frequencies 1 … H."""
    phases: int = 32
    """P: phases per frequency."""
    alpha: float = 0.05
    """Basis amplitude (paper: 0.05 for ReLU, 0.01 for sine networks)."""


@dataclass
class MLPConfig:
    """Shape of an INR network. Linear layers are numbered 0 (input) … hidden_layers + 1 (output)."""

    arch: Arch = "relu"
    """relu, pe (ReLU after NeRF positional encoding) or siren."""
    hidden_features: int = 256
    hidden_layers: int = 3
    """Number of hidden→hidden layers (the paper's FR layers)."""
    fr: bool = False
    """Reparameterize layers with FourierLinear."""
    fr_layers: tuple[int, ...] | None = None
    """Which linear layers are FR when fr is on; default every hidden→hidden layer (1 … hidden_layers)."""
    fourier: FourierConfig = field(default_factory=FourierConfig)
    omega0: float = 30.0
    """SIREN frequency of the hidden layers."""
    first_omega0: float = 30.0
    """SIREN frequency of the first layer."""
    pe_frequencies: int | None = None
    """PE octaves; default from the Nyquist rule on the number of samples per axis."""

    def layer_indices_fr(self) -> set[int]:
        if not self.fr:
            return set()
        chosen = set(range(1, self.hidden_layers + 1) if self.fr_layers is None else self.fr_layers)
        last = self.hidden_layers + 1
        bad = sorted(i for i in chosen if not 0 <= i <= last)
        if bad:
            raise ValueError(f"fr_layers {bad} out of range: linear layers are numbered 0 … {last}")
        return chosen


def build_mlp(in_features: int, out_features: int, config: MLPConfig, *, samples: int | None = None) -> nn.Sequential:
    """Build ``config`` as an ``nn.Sequential`` mapping (..., in_features) to (..., out_features).

    ``samples`` (samples per axis of the signal) sets the PE octave count when ``pe_frequencies`` is None.
    """
    if config.hidden_layers < 0:
        raise ValueError(f"hidden_layers must be >= 0, got {config.hidden_layers}")
    if config.hidden_features < 2:
        raise ValueError(f"hidden_features must be >= 2, got {config.hidden_features}")
    fr_indices = config.layer_indices_fr()
    layers: list[nn.Module] = []
    width_in = in_features
    if config.arch == "pe":
        octaves = config.pe_frequencies
        if octaves is None:
            if samples is None:
                raise ValueError("pe_frequencies is required when the number of samples is unknown")
            octaves = nyquist_frequencies(samples)
        encoding = PositionalEncoding(in_features, octaves)
        layers.append(encoding)
        width_in = encoding.out_features
    elif config.arch not in ("relu", "siren"):
        raise ValueError(f"arch must be relu, pe or siren, got {config.arch!r}")

    siren = config.arch == "siren"
    widths = [width_in] + [config.hidden_features] * (config.hidden_layers + 1) + [out_features]
    last = len(widths) - 2
    for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        omega0 = config.first_omega0 if index == 0 else config.omega0
        if index in fr_indices:
            f = config.fourier
            linear: nn.Module = FourierLinear(
                n_in, n_out, low_freqs=f.low_freqs, high_freqs=f.high_freqs, phases=f.phases, alpha=f.alpha,
                omega0=omega0 if siren else None,
            )  # fmt: skip
        else:
            linear = nn.Linear(n_in, n_out)
            if siren:
                siren_init_(linear, config.omega0, first=index == 0)
        layers.append(linear)
        if index < last:
            # in place: the linear before it does not keep its output for backward, so ReLU may overwrite it
            layers.append(Sine(omega0) if siren else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
