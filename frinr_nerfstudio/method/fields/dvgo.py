"""DirectVoxGO field (Sun et al., CVPR 2022): dense voxel grids read by trilinear interpolation.

Density is a voxel grid of raw values, interpolated first and activated after ("post-activation"), which
is what lets a coarse grid carve sharp surfaces. DVGO writes the activation as an opacity,
``alpha = 1 - (1 + exp(raw + shift)) ** -interval`` with ``interval`` the step in units of the base voxel
size; that is exactly ``1 - exp(-sigma * step)`` for the density ``sigma = softplus(raw + shift) / voxel``,
so the field reports that density and the shared volume-rendering weights apply unchanged.
``shift = log(1 / (1 - alpha_init) - 1)`` makes every voxel start at opacity ``alpha_init``.

Colour has two forms, one per training stage. Coarse: a 3-channel grid through a sigmoid, no view
dependence. Fine: a feature grid (``k0``, 12 channels) concatenated with a positional encoding of the
view direction, into the small MLP ``rgbnet`` — the only place FR enters (its hidden layer is a
``FourierLinear``; the baseline is the same network with a plain one).

Unbounded captures (nerfstudio-data, instant-ngp-data): with ``contract`` on, the grids live in contracted
space, as DVGO v2's unbounded variant: world positions are normalised by the scene box to [-1, 1]^3 and
everything beyond is squeezed into [-2, 2]^3 (``CubeContraction``). The field's box,
its voxels and the coarse-to-fine tight box are then in that space; densities stay per world length.

Grids change shape during training (coarse → fine, then progressive upscaling), so a grid's
``load_state_dict`` takes the saved shape: a checkpoint from any stage loads into a freshly built model.
The stage and the voxel size are also kept as Python values, refreshed whenever they change, so that no forward
reads a buffer back to the host (a sync per call on CUDA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.fields.base_field import Field
from torch import Tensor, nn

from frinr_core import paper
from frinr_nerfstudio.method.field_components.contraction import CubeContraction
from frinr_nerfstudio.method.heads import HeadConfig

Resolution = tuple[int, int, int]
CHUNK = 1 << 18  # points per density query when scanning whole grids


def grid_resolution(aabb: Tensor, voxels: int) -> Resolution:
    """DVGO's world size: cubic voxels of the side that fits ``voxels`` of them in the box (2, 3), floored."""
    extent = aabb[1] - aabb[0]  # (3,)
    side = float((extent.prod() / voxels) ** (1 / 3))
    return tuple(max(2, int(e / side)) for e in extent.tolist())


def shift_for(alpha_init: float) -> float:
    """The density bias that gives every voxel the opacity ``alpha_init`` at the base voxel size."""
    return math.log(1 / (1 - alpha_init) - 1)


class DenseGrid(nn.Module):
    """A (1, C, X, Y, Z) grid of parameters over the box [-1, 1]^3, read by trilinear interpolation.

    A new shape during training is a new ``nn.Parameter`` (autograd caches a leaf's shape for as long as an
    old graph lives, so the data of a live parameter cannot change shape): whoever optimizes the grid must
    then take the new parameter (``DVGOModel`` swaps it into the optimizers). Loading a checkpoint happens
    before any graph exists and keeps the parameter, so optimizers built before the load stay valid.
    """

    def __init__(self, channels: int, resolution: Resolution) -> None:
        super().__init__()
        self.grid = nn.Parameter(torch.zeros(1, channels, *resolution))

    @property
    def resolution(self) -> Resolution:
        return tuple(self.grid.shape[2:])

    def forward(self, unit: Tensor) -> Tensor:  # (N, 3) in [-1, 1]^3 (x, y, z) -> (N, C)
        coords = unit.flip(-1).reshape(1, 1, 1, -1, 3).to(self.grid.dtype)  # grid_sample wants (z, y, x) order
        out = F.grid_sample(self.grid, coords, mode="bilinear", align_corners=True)  # (1, C, 1, 1, N)
        return out.reshape(self.grid.shape[1], unit.shape[0]).T

    @torch.no_grad()
    def reset(self, channels: int, resolution: Resolution) -> None:
        """A new parameter of zeros (a new training stage)."""
        self.grid = nn.Parameter(self.grid.new_zeros(1, channels, *resolution))

    @torch.no_grad()
    def resize(self, resolution: Resolution) -> None:
        """A new parameter resampled trilinearly to ``resolution``: the interpolated function stays the same."""
        self.grid = nn.Parameter(F.interpolate(self.grid, size=resolution, mode="trilinear", align_corners=True))

    def total_variation(self) -> Tensor:
        """DVGO's total variation: Huber (delta 1) of every neighbour difference, summed, over 6 neighbours."""
        g = self.grid[0]  # (C, X, Y, Z)
        diffs = (g.diff(dim=1), g.diff(dim=2), g.diff(dim=3))
        return sum(F.smooth_l1_loss(d, torch.zeros_like(d), reduction="sum") for d in diffs) / 6

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "grid")
        if saved is not None and saved.shape != self.grid.shape:  # saved at another stage or resolution
            self.grid.data = self.grid.new_empty(saved.shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@dataclass
class DVGOFieldConfig(InstantiateConfig):
    """DirectVoxGO's fine-stage colour model; grid sizes and opacities per stage live in the model config."""

    _target: type = field(default_factory=lambda: DVGOField)
    k0_channels: int = 12
    """Channels of the fine feature grid."""
    viewbase_pe: int = 4
    """Octaves of the view-direction encoding."""
    rgbnet: HeadConfig = field(
        default_factory=lambda: HeadConfig(
            hidden_features=128, hidden_layers=1, fr=True, fourier=replace(paper.dvgo(), alpha=0.01)
        )
    )
    """DVGO's rgbnet (depth 3, width 128): one hidden→hidden layer, FR by default with the paper's L = H = 64, P = 64
    but alpha 0.01, not 0.05. Under Adam alpha scales FR's step in W; at the paper's 0.05 the density kept 8 % more
    samples per ray and was 0.14 dB lower on lego_100 over three seeds (BENCHMARKS.md, *dvgo-fr-sweep-lego_100*)."""
    density_decoder: bool = False
    """Decode a multi-channel fine density grid with a small MLP (``density_head``) instead of reading raw density."""
    density_features: int = 8
    """Channels of the fine density grid when the decoder is on."""
    density_head: HeadConfig = field(
        default_factory=lambda: HeadConfig(hidden_features=32, hidden_layers=1, fr=True, fourier=paper.dvgo())
    )


class DVGOField(Field):
    """Density and colour of DirectVoxGO inside the box ``aabb``, in the coarse or the fine stage.

    ``scene_aabb`` is the dataparser's scene box. Without contraction the grids' box ``aabb`` starts as it, in
    world coordinates; with it, ``aabb`` is a box of contracted space and starts as all of it, [-2, 2]^3.
    """

    def __init__(self, config: DVGOFieldConfig, scene_aabb: Tensor, contract: bool = False) -> None:
        super().__init__()
        self.config = config
        self.contraction = CubeContraction() if contract else None
        scene_aabb = scene_aabb.clone().float()  # (2, 3)
        self.register_buffer("scene_aabb", scene_aabb, persistent=False)  # given again at every construction
        self.register_buffer("aabb", scene_aabb.new_tensor([[-2.0] * 3, [2.0] * 3]) if contract else scene_aabb.clone())
        # world length of one unit of grid space: 1, or the scene box's mean half-extent when contracted
        self.world_scale = float(((scene_aabb[1] - scene_aabb[0]) / 2).prod() ** (1 / 3)) if contract else 1.0
        self.register_buffer("act_shift", torch.tensor(0.0))
        self.register_buffer("voxel_size_base", torch.tensor(1.0))  # density is per this length
        self.register_buffer("fine", torch.tensor(False))
        self.register_buffer("view_freqs", 2.0 ** torch.arange(config.viewbase_pe), persistent=False)
        self.density = DenseGrid(1, (2, 2, 2))
        self.k0 = DenseGrid(3, (2, 2, 2))
        view_features = 3 + 6 * config.viewbase_pe
        self.rgbnet = config.rgbnet.build(config.k0_channels + view_features, 3)
        nn.init.zeros_(self.rgbnet[-1].bias)  # as DVGO: the MLP starts unbiased
        self.density_head = config.density_head.build(config.density_features, 1) if config.density_decoder else None
        self._sync_stage()
        self.register_load_state_dict_post_hook(lambda module, _: module._sync_stage())

    def _sync_stage(self) -> None:
        """Host copies of the stage and the voxel size, read by every forward; refreshed when they change."""
        self.is_fine = bool(self.fine)
        extent = self.aabb[1] - self.aabb[0]
        self._voxel_size = float((extent.prod() / math.prod(self.density.resolution)) ** (1 / 3)) * self.world_scale

    # -- stages ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def start_stage(self, aabb: Tensor, *, fine: bool, voxels: int, voxels_base: int, alpha_init: float) -> None:
        """Fresh zero grids of ``voxels`` voxels over ``aabb`` (grid space); opacity ``alpha_init`` at
        ``voxels_base`` spacing."""
        self.aabb.copy_(aabb)
        self.fine.fill_(fine)
        self.act_shift.fill_(shift_for(alpha_init))
        self.voxel_size_base.fill_(float(((aabb[1] - aabb[0]).prod() / voxels_base) ** (1 / 3)) * self.world_scale)
        resolution = grid_resolution(aabb, voxels)
        decoded = fine and self.density_head is not None
        self.density.reset(self.config.density_features if decoded else 1, resolution)
        self.k0.reset(self.config.k0_channels if fine else 3, resolution)
        self._sync_stage()

    @torch.no_grad()
    def upscale(self, voxels: int, shift: float) -> None:
        """Resample both grids to ``voxels`` voxels over the same box and lower the density bias by ``shift`` (DVGO's
        progressive scaling: resampling keeps the function, the shift thins what is not yet solid)."""
        resolution = grid_resolution(self.aabb, voxels)
        self.density.resize(resolution)
        self.k0.resize(resolution)
        self.act_shift -= shift
        self._sync_stage()

    def voxel_size(self) -> float:
        """Side of the current grid's voxels in world units (inside the scene box, when contracted)."""
        return self._voxel_size

    @torch.no_grad()
    def node_positions(self) -> Tensor:
        """(X*Y*Z, 3) grid-space positions of the density grid's nodes, x slowest."""
        lo, hi = self.aabb
        axes = [torch.linspace(lo[i], hi[i], n, device=lo.device) for i, n in enumerate(self.density.resolution)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)

    @torch.no_grad()
    def node_alphas(self) -> Tensor:
        """(X, Y, Z) opacity of one voxel at each node of the density grid."""
        return self.alpha_at(self.node_positions(), in_grid_space=True).view(self.density.resolution)

    # -- queries ---------------------------------------------------------------------------------------

    def grid_space(self, positions: Tensor) -> Tensor:
        """World positions (..., 3) -> the space the grids live in: world, or contracted scene-box units."""
        if self.contraction is None:
            return positions
        centre, half = self.scene_aabb.mean(0), (self.scene_aabb[1] - self.scene_aabb[0]) / 2
        return self.contraction((positions - centre) / half)

    def unit(self, positions: Tensor) -> Tensor:
        """World positions (..., 3) -> grid coordinates, the box being [-1, 1]^3."""
        return self.unit_of_grid_space(self.grid_space(positions))

    def unit_of_grid_space(self, points: Tensor) -> Tensor:
        """Grid-space points (..., 3) -> grid coordinates, the box being [-1, 1]^3."""
        return (points - self.aabb[0]) / (self.aabb[1] - self.aabb[0]) * 2 - 1

    def density_at(self, positions: Tensor, *, in_grid_space: bool = False) -> Tensor:
        """(N, 3) world (or grid-space) positions -> density (N, 1): post-activated trilinear raw density."""
        unit = self.unit_of_grid_space(positions) if in_grid_space else self.unit(positions)
        raw = self.density(unit)  # (N, 1) or (N, density_features)
        if self.density_head is not None and self.is_fine:
            raw = self.density_head(raw)
        return F.softplus(raw + self.act_shift) / self.voxel_size_base

    @torch.no_grad()
    def alpha_at(self, positions: Tensor, *, in_grid_space: bool = False) -> Tensor:
        """(N, 3) -> opacity (N,) of one current voxel length, DVGO's measure for bounding boxes and masks; chunked,
        so whole grids of points are scanned in bounded memory."""
        densities = [self.density_at(p, in_grid_space=in_grid_space)[:, 0] for p in positions.split(CHUNK)]
        return 1 - torch.exp(-torch.cat(densities) * self.voxel_size())

    def density_fn(self, positions: Tensor, times: Tensor | None = None) -> Tensor:
        """Density (..., 1) at world positions (..., 3), for the sampler and the occupancy masks."""
        return self.density_at(positions.reshape(-1, 3)).view(*positions.shape[:-1], 1)

    def lookups(self, ray_samples: RaySamples) -> None:
        """Nothing for the training pass to replay: a dense-grid density is a few trilinear reads."""
        return None

    def get_density(self, ray_samples: RaySamples, lookups: None = None) -> tuple[Tensor, None]:
        return self.density_fn(ray_samples.frustums.get_positions()), None

    def view_encoding(self, directions: Tensor) -> Tensor:
        """Unit directions (N, 3) -> [d, sin(2^i d), cos(2^i d)] (N, 3 + 6 * viewbase_pe), as DVGO."""
        scaled = (directions[..., None] * self.view_freqs).flatten(-2)  # (N, 3 * viewbase_pe)
        return torch.cat([directions, scaled.sin(), scaled.cos()], dim=-1)

    def get_outputs(self, ray_samples: RaySamples, density_embedding: Tensor | None = None) -> dict:
        positions = ray_samples.frustums.get_positions().reshape(-1, 3)  # (N, 3)
        features = self.k0(self.unit(positions))  # (N, 3) coarse, (N, k0_channels) fine
        if not self.is_fine:
            rgb = features.sigmoid()
        else:
            directions = ray_samples.frustums.directions.reshape(-1, 3)
            rgb = self.rgbnet(torch.cat([features, self.view_encoding(directions)], dim=-1)).sigmoid()
        return {FieldHeadNames.RGB: rgb.view(*ray_samples.frustums.directions.shape[:-1], 3)}
