"""The density and colour MLPs of a radiance field, built by ``frinr_core.build_mlp``.

These heads are the only part of the plugin that knows about Fourier reparameterization: switching
``fr`` swaps chosen linear layers for ``FourierLinear`` and changes nothing else, which is what makes
``frinr-ngp`` and ``frinr-ngp-baseline`` a controlled comparison. The layers are built once, so each
FourierLinear keeps its cached weight ``W = coeffs @ bases`` across every call within a training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from frinr_core import paper
from frinr_core.errors import InputError
from frinr_core.mlp import FourierConfig, MLPConfig, build_mlp


@dataclass
class HeadConfig:
    """A ReLU MLP head. Linear layers are numbered 0 (input) … hidden_layers + 1 (output)."""

    hidden_features: int = 64
    hidden_layers: int = 1
    """Number of hidden→hidden layers."""
    fr: bool = False
    """Reparameterize layers with FourierLinear."""
    fr_layers: tuple[int, ...] | None = None
    """Which linear layers are FR when fr is on; default every hidden→hidden layer."""
    fourier: FourierConfig = field(default_factory=paper.instant_ngp)
    """FR settings; default the paper's for Instant-NGP's colour MLP."""

    def build(self, in_features: int, out_features: int) -> nn.Sequential:
        if self.fr and self.fr_layers is None and self.hidden_layers == 0:
            raise InputError("fr is on but the head has no hidden→hidden layer: set fr_layers (e.g. 0 or 1)")
        mlp = MLPConfig(
            arch="relu", hidden_features=self.hidden_features, hidden_layers=self.hidden_layers, fr=self.fr,
            fr_layers=self.fr_layers, fourier=self.fourier,
        )  # fmt: skip
        return build_mlp(in_features, out_features, mlp)


class DensityHead(nn.Module):
    """Encoded position (..., in) -> raw density (..., 1) and geometry features (..., geo_features)."""

    def __init__(self, in_features: int, geo_features: int, config: HeadConfig) -> None:
        super().__init__()
        self.geo_features = geo_features
        self.mlp = config.build(in_features, 1 + geo_features)

    def forward(self, encoded: Tensor) -> tuple[Tensor, Tensor]:
        out = self.mlp(encoded)  # (..., 1 + geo_features)
        return out[..., :1], out[..., 1:]


class ColourHead(nn.Module):
    """Direction encoding (..., dir) and geometry features (..., geo) -> RGB in [0, 1] (..., 3)."""

    def __init__(self, direction_features: int, geo_features: int, config: HeadConfig) -> None:
        super().__init__()
        self.mlp = config.build(direction_features + geo_features, 3)

    def forward(self, direction: Tensor, geo: Tensor) -> Tensor:
        return self.mlp(torch.cat([direction, geo], dim=-1)).sigmoid()
