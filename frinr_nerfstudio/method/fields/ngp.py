"""Instant-NGP field: hash-grid encoding → FR density head → FR colour head (SH degree-4 directions).

Positions are first normalised by the scene box so that the box is ``[-1, 1]^3``. A bounded scene (contraction
off) then fills the hash grid; with contraction on (real captures) everything outside the box is squeezed into
``[-2, 2]^3`` (``CubeContraction``), so an unbounded capture fits the grid and the box keeps
its middle half.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.field_components.activations import trunc_exp
from nerfstudio.field_components.embedding import Embedding
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.fields.base_field import Field
from torch import Tensor

from frinr_nerfstudio.method.field_components.contraction import CubeContraction
from frinr_nerfstudio.method.field_components.directions import DirectionEncoding
from frinr_nerfstudio.method.field_components.hash_encoding import CPUHashEncoding
from frinr_nerfstudio.method.heads import ColourHead, DensityHead, HeadConfig


@dataclass
class NGPFieldConfig(InstantiateConfig):
    """Instant-NGP field; the heads are Instant-NGP's (density 1×64, colour 2×64).

    FR layers by default: the density head's input layer and the colour head's hidden layer, both with the paper's
    Instant-NGP colour-MLP settings. The paper reparameterizes only the colour MLP; on lego_100 also reparameterizing
    the density input layer sharpens geometry sooner (fewer samples per ray, so more rays per dynamic batch), which
    puts FR ahead of the baseline at equal budget where the colour layer alone is not (BENCHMARKS.md,
    ``benchmarks/sweep_fr.py``).
    """

    _target: type = field(default_factory=lambda: NGPField)
    num_levels: int = 16
    features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_res: int = 16
    max_res: int = 2048
    geo_features: int = 15
    """Geometry features passed from the density head to the colour head."""
    density_head: HeadConfig = field(default_factory=lambda: HeadConfig(hidden_layers=0, fr=True, fr_layers=(0,)))
    colour_head: HeadConfig = field(default_factory=lambda: HeadConfig(hidden_layers=1, fr=True))
    appearance_embedding_dim: int = 0
    """Per-image appearance embedding fed to the colour head, for captures whose exposure changes between images
    (nerfacto's: 32); 0: none. Views not trained on (the test split) get the mean embedding."""
    implementation: Literal["auto", "tcnn", "torch"] = "auto"
    """Hash and SH encodings: tcnn needs tinycudann and the model on CUDA; auto picks it when both are there (resolved
    by the model config's ``settle``, see :mod:`frinr_nerfstudio.nerfstudio_fixes.backends`)."""


class NGPField(Field):
    """Density and colour at sample points; only the two heads differ between FR and baseline."""

    def __init__(self, config: NGPFieldConfig, aabb: Tensor, contract: bool = False, num_images: int = 1) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("aabb", aabb.clone())  # (2, 3)
        impl = "torch" if config.implementation == "auto" else config.implementation  # auto: never settled, torch
        self.contraction = CubeContraction() if contract else None
        self.encoding = CPUHashEncoding(
            num_levels=config.num_levels, min_res=config.base_res, max_res=config.max_res,
            log2_hashmap_size=config.log2_hashmap_size, features_per_level=config.features_per_level,
            implementation=impl,
        )  # fmt: skip
        self.direction_encoding = DirectionEncoding(levels=4, implementation=impl)
        appearance = config.appearance_embedding_dim
        self.appearance = Embedding(num_images, appearance) if appearance > 0 else None
        self.density_head = DensityHead(self.encoding.get_out_dim(), config.geo_features, config.density_head)
        view_features = self.direction_encoding.get_out_dim() + appearance
        self.colour_head = ColourHead(view_features, config.geo_features, config.colour_head)

    def unit_positions(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """World positions (..., 3) -> hash-grid coordinates in [0, 1] (..., 3) and an inside mask (..., 1)."""
        x = (positions - self.aabb.mean(0)) / ((self.aabb[1] - self.aabb[0]) / 2)  # the box is [-1, 1]^3
        x = (self.contraction(x) + 2) / 4 if self.contraction is not None else (x + 1) / 2
        inside = ((x > 0) & (x < 1)).all(dim=-1, keepdim=True)
        return x * inside, inside

    def density_and_geo(self, positions: Tensor, lookups: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(N, 3) world positions -> density (N, 1) and geometry features (N, geo_features); ``lookups``: the hash
        features of these positions from :meth:`lookups`, replayed instead of looked up again."""
        x, inside = self.unit_positions(positions)
        features = self.encoding(x) if lookups is None else self.encoding.replay(x, lookups)
        raw, geo = self.density_head(features.to(positions.dtype))
        return trunc_exp(raw) * inside, geo

    def density_fn(self, positions: Tensor, times: Tensor | None = None) -> Tensor:
        """Density (..., 1) at world positions (..., 3), without building ray samples (occupancy grid, sampler)."""
        shape = positions.shape[:-1]
        return self.density_and_geo(positions.reshape(-1, 3))[0].view(*shape, 1)

    def lookups(self, ray_samples: RaySamples) -> Tensor | None:
        """Hash features (N, levels * features) of the samples, which the training pass of the ones found visible
        replays (a third of a CPU step's lookups); None where it cannot (anything but the CPU kernel's float32)."""
        x, _ = self.unit_positions(ray_samples.frustums.get_positions().reshape(-1, 3))
        return self.encoding(x) if self.encoding.kernel_covers(x) else None

    def get_density(self, ray_samples: RaySamples, lookups: Tensor | None = None) -> tuple[Tensor, Tensor]:
        positions = ray_samples.frustums.get_positions()  # (..., 3)
        density, geo = self.density_and_geo(positions.reshape(-1, 3), lookups)
        shape = positions.shape[:-1]
        return density.view(*shape, 1), geo.view(*shape, geo.shape[-1])  # explicit width: N may be 0

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Tensor | None = None) -> dict:
        assert density_embedding is not None
        directions = ray_samples.frustums.directions.reshape(-1, 3)  # (N, 3) unit vectors
        encoded = self.direction_encoding(directions).to(density_embedding.dtype)  # (N, 16)
        if self.appearance is not None:
            encoded = torch.cat([encoded, self.appearance_of(ray_samples).to(encoded.dtype)], dim=-1)
        rgb = self.colour_head(encoded, density_embedding.reshape(encoded.shape[0], density_embedding.shape[-1]))
        return {FieldHeadNames.RGB: rgb.view(*ray_samples.frustums.directions.shape[:-1], 3)}

    def appearance_of(self, ray_samples: RaySamples) -> Tensor:
        """(N, appearance_embedding_dim): each training image's own embedding, the mean one for other views."""
        if self.training:
            return self.appearance(ray_samples.camera_indices.reshape(-1))
        return self.appearance.mean(dim=0).expand(ray_samples.frustums.directions.reshape(-1, 3).shape[0], -1)
