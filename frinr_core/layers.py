"""Building blocks of the baselines FR is applied to: NeRF positional encoding and SIREN sine layers."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def nyquist_frequencies(samples: int) -> int:
    """Number of PE octaves for a signal sampled ``samples`` times across [-1, 1] (official code's rule).

    The highest octave ``2^(n-1)·π`` stays below the Nyquist rate ``samples / 4`` cycles per unit.
    """
    if samples < 8:
        raise ValueError(f"samples must be >= 8 for a Nyquist-limited positional encoding, got {samples}")
    return int(math.floor(math.log2(samples / 4)))


class PositionalEncoding(nn.Module):
    """NeRF encoding ``[x, sin(2^k π x), cos(2^k π x)]`` for k < num_frequencies, identity included.

    Output layout matches the official code: per octave, per coordinate, a (sin, cos) pair.
    """

    def __init__(self, in_features: int, num_frequencies: int) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if num_frequencies < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {num_frequencies}")
        self.in_features, self.num_frequencies = in_features, num_frequencies
        self.out_features = in_features * (1 + 2 * num_frequencies)
        self.register_buffer("scales", (2.0 ** torch.arange(num_frequencies)) * math.pi, persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # (..., in) -> (..., in * (1 + 2F))
        angles = x[..., None, :] * self.scales[:, None]  # (..., F, in)
        pairs = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1)  # (..., F, in, 2)
        return torch.cat([x, pairs.flatten(-3)], dim=-1)


class Sine(nn.Module):
    """``sin(ω0 · x)``: the SIREN activation, applied after a (plain or FR) linear layer."""

    def __init__(self, omega0: float = 30.0) -> None:
        super().__init__()
        self.omega0 = omega0

    def extra_repr(self) -> str:
        return f"omega0={self.omega0}"

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega0 * x)


def siren_init_(linear: nn.Linear, omega0: float, first: bool) -> nn.Linear:
    """SIREN initialisation (Sitzmann et al. 2020): U(±1/in) for the first layer, U(±√(6/in)/ω0) after."""
    bound = 1 / linear.in_features if first else math.sqrt(6 / linear.in_features) / omega0
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
    return linear
