"""Occupancy-grid ray marching: nerfacc's CUDA estimator when it can run, a pure-torch one otherwise.

:class:`TorchOccGrid` mirrors ``nerfacc.OccGridEstimator`` (same ``sampling`` / ``update_every_n_steps``
signatures, same multi-level layout, same EMA update and thresholds), so nerfstudio's
``VolumetricSampler`` drives either. nerfacc's marching and packed scans are CUDA kernels; here the same
work is a few vectorised tensor ops, and what makes it fast on a CPU is what makes Instant-NGP fast:

- empty-space skipping: candidate steps are generated only inside the bounding box of the occupied
  cells and kept only where their cell is occupied;
- early ray termination: a gradient-free density pass over the kept samples drops every sample behind
  an opaque surface (transmittance < ``early_stop_eps``) or nearly transparent (alpha < ``alpha_thre``),
  so the training pass runs the field on the survivors only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from nerfstudio.model_components.ray_samplers import VolumetricSampler
from torch import Tensor, nn

from frinr_core.errors import InputError

SigmaFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (t_starts (N,), t_ends (N,), ray_indices (N,)) -> (N,)


def nerfacc_cuda_available() -> bool:
    """True when nerfacc's CUDA kernels can run (a CUDA device and nerfacc's compiled extension)."""
    if not torch.cuda.is_available():
        return False
    try:
        from nerfacc.cuda._backend import _C
    except (ImportError, OSError, RuntimeError):
        return False
    return _C is not None


def segment_exclusive_sum(values: Tensor, ray_indices: Tensor, n_rays: int) -> Tensor:
    """Exclusive cumulative sum of packed ``values`` (N,) within each ray; samples sorted by ray.

    One global cumsum minus its value at each ray's first sample; accumulated in float64 so that the
    subtraction keeps float32 precision over millions of samples. Differentiable.
    """
    total = torch.cumsum(values.double(), dim=0) - values.double()  # (N,) exclusive over all rays
    counts = torch.bincount(ray_indices, minlength=n_rays)
    first = torch.cumsum(counts, dim=0) - counts  # (n_rays,) index of each ray's first sample
    return (total - total[first[ray_indices]]).to(values.dtype)


def render_weight_from_density(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, ray_indices: Tensor, n_rays: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Volume-rendering weights of packed samples: (weights, transmittance, alphas), each (N,)."""
    tau = sigmas * (t_ends - t_starts)  # (N,) optical depth of each interval
    transmittance = torch.exp(-segment_exclusive_sum(tau, ray_indices, n_rays))
    alphas = 1.0 - torch.exp(-tau)
    return transmittance * alphas, transmittance, alphas


class TorchOccGrid(nn.Module):
    """A multi-level binary occupancy grid with the interface of ``nerfacc.OccGridEstimator``.

    Level ``l`` covers the ROI box scaled by ``2**l`` about its centre, at ``resolution**3`` cells, so
    unbounded scenes get coarser cells far away. A point is looked up in the finest level containing it.
    """

    def __init__(
        self, roi_aabb: Tensor, resolution: int = 128, levels: int = 1, cells_per_update: int | None = None
    ) -> None:
        super().__init__()
        if resolution < 1 or levels < 1:
            raise InputError(f"occupancy grid resolution and levels must be >= 1, got {resolution} and {levels}")
        self.resolution, self.levels, self.cells_per_update = resolution, levels, cells_per_update
        roi_aabb = torch.as_tensor(roi_aabb, dtype=torch.float32).flatten()
        self.register_buffer("center", (roi_aabb[:3] + roi_aabb[3:]) / 2)
        self.register_buffer("half_extent", (roi_aabb[3:] - roi_aabb[:3]) / 2)
        # EMA of density * step per cell; -1 = never evaluated, which counts as occupied.
        self.register_buffer("occs", torch.full((levels * resolution**3,), -1.0))
        self.register_buffer("binaries", torch.ones(levels, resolution, resolution, resolution, dtype=torch.bool))
        self.register_buffer("sweep_start", torch.zeros((), dtype=torch.long))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        saved = state_dict.get(prefix + "binaries")
        if saved is not None and saved.shape != self.binaries.shape:
            raise InputError(
                f"the checkpoint's occupancy grid is {tuple(saved.shape)} (levels, cells per axis ×3), this model's "
                f"{tuple(self.binaries.shape)}: load it with the grid settings it was trained with "
                "(resolution; levels follow the contraction setting, which auto resolves from the dataparser)"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- grid update ------------------------------------------------------------------------------------

    @torch.no_grad()
    def update_every_n_steps(
        self,
        step: int,
        occ_eval_fn: Callable[[Tensor], Tensor],
        occ_thre: float = 1e-2,
        ema_decay: float = 0.95,
        warmup_steps: int = 256,
        n: int = 16,
        chunk: int = 1 << 18,
    ) -> None:
        """EMA-update cell occupancies from ``occ_eval_fn`` (points (M, 3) -> occupancy (M, 1)), as nerfacc."""
        if not self.training or step % n != 0:
            return
        cells = self._cells_to_update(warmup=step < warmup_steps)
        points = self._random_points_in_cells(cells)  # (M, 3)
        occ = torch.cat([occ_eval_fn(p).reshape(-1) for p in points.split(chunk)])  # (M,)
        old = self.occs[cells]
        self.occs[cells] = torch.where(old < 0, occ, torch.maximum(old * ema_decay, occ))
        seen = self.occs[self.occs >= 0]
        thre = torch.clamp(seen.mean(), max=occ_thre) if seen.numel() else occ_thre
        self.binaries.copy_(((self.occs > thre) | (self.occs < 0)).view_as(self.binaries))

    def _cells_to_update(self, warmup: bool) -> Tensor:
        """Flat cell ids: nerfacc's choice (every cell in warmup, then a random quarter plus as many occupied
        ones), or, with a budget, the next ``cells_per_update`` cells of a sweep (half of them after warmup,
        the other half random occupied cells) so one update costs a bounded number of field evaluations."""
        num_cells, device = self.occs.numel(), self.occs.device
        if self.cells_per_update is None:
            if warmup:
                return torch.arange(num_cells, device=device)
            uniform = torch.randint(num_cells, (num_cells // 4,), device=device)
            n_occupied = num_cells // 4
        else:
            n_sweep = self.cells_per_update if warmup else self.cells_per_update // 2
            uniform = (self.sweep_start + torch.arange(min(n_sweep, num_cells), device=device)) % num_cells
            self.sweep_start.copy_((self.sweep_start + n_sweep) % num_cells)
            if warmup:
                return uniform
            n_occupied = self.cells_per_update - n_sweep
        occupied = torch.nonzero(self.binaries.flatten())[:, 0]
        if occupied.numel() > n_occupied:
            occupied = occupied[torch.randint(occupied.numel(), (n_occupied,), device=device)]
        return torch.cat([uniform, occupied])

    def _random_points_in_cells(self, cells: Tensor) -> Tensor:  # (M,) flat ids -> (M, 3) world points
        r = self.resolution
        level, rest = cells // r**3, cells % r**3
        ijk = torch.stack([rest // (r * r), (rest // r) % r, rest % r], dim=-1).float()  # (M, 3)
        unit = (ijk + torch.rand_like(ijk)) / r * 2 - 1  # (M, 3) in [-1, 1] of the level's box
        return self.center + unit * self.half_extent * (2.0 ** level[:, None].float())

    # -- ray marching -----------------------------------------------------------------------------------

    def occupied(self, points: Tensor) -> Tensor:
        """(N, 3) world points -> (N,) bool: inside the grid and in an occupied cell."""
        unit = (points - self.center) / self.half_extent  # (N, 3), the ROI box is [-1, 1]^3
        extent = unit.abs().amax(dim=-1).clamp_min(1e-12)
        level = torch.ceil(torch.log2(extent)).clamp_min(0).long()  # finest level containing the point
        inside = level < self.levels
        level = level.clamp_max(self.levels - 1)
        r = self.resolution
        ijk = ((unit / (2.0 ** level[:, None].float()) + 1) / 2 * r).long().clamp(0, r - 1)  # (N, 3)
        return inside & self.binaries[level, ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    def occupied_box(self) -> Tensor:
        """(2, 3) world-space bounds of all occupied cells (empty grid: a degenerate box at the centre)."""
        boxes = []
        r = self.resolution
        for level in range(self.levels):
            ijk = torch.nonzero(self.binaries[level]).float()  # (K, 3)
            if ijk.numel():
                scale = self.half_extent * 2.0**level
                lo = self.center + (ijk.amin(0) / r * 2 - 1) * scale
                hi = self.center + ((ijk.amax(0) + 1) / r * 2 - 1) * scale
                boxes.append(torch.stack([lo, hi]))
        if not boxes:
            return self.center.expand(2, 3).clone()
        boxes = torch.stack(boxes)  # (B, 2, 3)
        return torch.stack([boxes[:, 0].amin(0), boxes[:, 1].amax(0)])

    @torch.no_grad()
    def sampling(
        self,
        rays_o: Tensor,
        rays_d: Tensor,
        sigma_fn: SigmaFn | None = None,
        t_min: Tensor | None = None,
        t_max: Tensor | None = None,
        render_step_size: float = 1e-3,
        near_plane: float = 0.0,
        far_plane: float = 1e10,
        stratified: bool = False,
        cone_angle: float = 0.0,
        alpha_thre: float = 0.0,
        early_stop_eps: float = 1e-4,
        chunk: int = 1 << 18,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """March rays (R, 3) through occupied cells; returns packed (ray_indices, t_starts, t_ends), each (N,).

        Steps are ``render_step_size`` long, growing as ``t * cone_angle`` once that is larger (as nerfacc);
        samples are ordered by ray, then by distance.
        """
        n_rays = rays_o.shape[0]
        scale = 2.0 ** (self.levels - 1)
        roi = torch.stack([self.center - self.half_extent * scale, self.center + self.half_extent * scale])
        t_start, t_stop = _ray_box_interval(rays_o, rays_d, roi)  # (R,), (R,): the whole grid
        t_start, t_stop = t_start.clamp_min(near_plane), t_stop.clamp_max(far_plane)
        if t_min is not None:
            t_start = torch.maximum(t_start, t_min)
        if t_max is not None:
            t_stop = torch.minimum(t_stop, t_max)
        if stratified:
            t_start = t_start + torch.rand_like(t_start) * render_step_size
        # Steps are laid out from t_start as if marching the whole grid, but only those overlapping the
        # occupied cells' bounding box are generated: the same samples as a dense march, without the cost.
        t_lo, t_hi = _ray_box_interval(rays_o, rays_d, self.occupied_box())
        t_lo, t_hi = torch.maximum(t_lo, t_start), torch.minimum(t_hi, t_stop)
        ray_indices, t_starts, t_ends = _march(t_start, t_lo, t_hi, t_stop, render_step_size, cone_angle)
        mids = (t_starts + t_ends)[:, None] / 2
        keep = self.occupied(rays_o[ray_indices] + rays_d[ray_indices] * mids)
        ray_indices, t_starts, t_ends = ray_indices[keep], t_starts[keep], t_ends[keep]

        if sigma_fn is not None and (alpha_thre > 0 or early_stop_eps > 0) and ray_indices.numel():
            seen = self.occs[self.occs >= 0]
            alpha_thre = min(alpha_thre, seen.mean().item()) if seen.numel() else alpha_thre
            chunks = zip(t_starts.split(chunk), t_ends.split(chunk), ray_indices.split(chunk), strict=True)
            sigmas = torch.cat([sigma_fn(*args) for args in chunks])  # (N,), in bounded memory
            _, transmittance, alphas = render_weight_from_density(t_starts, t_ends, sigmas, ray_indices, n_rays)
            keep = (alphas >= alpha_thre) & (transmittance >= early_stop_eps)
            ray_indices, t_starts, t_ends = ray_indices[keep], t_starts[keep], t_ends[keep]
        return ray_indices, t_starts, t_ends


def _ray_box_interval(rays_o: Tensor, rays_d: Tensor, box: Tensor) -> tuple[Tensor, Tensor]:
    """Slab test: entry and exit distances (R,) of rays through an axis-aligned box (2, 3); exit < entry = miss."""
    inv_d = 1.0 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t_lo, t_hi = (box[0] - rays_o) * inv_d, (box[1] - rays_o) * inv_d  # (R, 3)
    return torch.minimum(t_lo, t_hi).amax(dim=-1), torch.maximum(t_lo, t_hi).amin(dim=-1)


def _march(
    t_start: Tensor, t_lo: Tensor, t_hi: Tensor, t_stop: Tensor, step: float, cone_angle: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The steps of a march from ``t_start`` (R,) that overlap ``[t_lo, t_hi]``, ends clipped at ``t_stop``.

    Steps are ``step`` long until ``t = step / cone_angle``, then grow geometrically (``dt = t * cone_angle``),
    as nerfacc's marcher. Step k has a closed form, so the overlapping range is found without marching.
    Returns packed (ray_indices, t_starts, t_ends), each (N,), ordered by ray then distance.
    """
    growth = math.log1p(cone_angle)  # 0 without a cone: no geometric part
    t_switch = step / cone_angle if cone_angle > 0 else math.inf
    n_linear = torch.ceil((t_start.clamp_min(t_switch) - t_start) / step)  # (R,) inf without a cone
    t_geo = t_start + n_linear * step  # (R,) where the geometric part starts

    def index_of(t: Tensor) -> Tensor:  # (R,) number of the step containing t
        linear = torch.floor((t - t_start) / step)
        if cone_angle == 0:
            return linear
        geometric = n_linear + torch.floor(torch.log(t.clamp_min(1e-12) / t_geo.clamp_min(1e-12)) / growth)
        return torch.where(t < t_geo, linear, geometric)

    first = index_of(t_lo).clamp_min(0)
    counts = torch.where(t_hi > t_lo, index_of(t_hi) - first + 1, torch.zeros_like(first)).long()  # (R,)
    ray_indices = torch.repeat_interleave(torch.arange(t_start.shape[0], device=t_start.device), counts)  # (N,)
    offset = (torch.cumsum(counts, 0) - counts)[ray_indices]
    k = first[ray_indices] + (torch.arange(ray_indices.shape[0], device=t_start.device) - offset).float()  # (N,)
    n_lin = n_linear[ray_indices]
    linear = k < n_lin
    t_starts = torch.where(
        linear, t_start[ray_indices] + k * step, t_geo[ray_indices] * torch.exp((k - n_lin).clamp_min(0) * growth)
    )
    t_ends = torch.where(linear, t_starts + step, t_starts * (1 + cone_angle))
    return ray_indices, t_starts, torch.minimum(t_ends, t_stop[ray_indices])


class OccupancySampler(VolumetricSampler):
    """nerfstudio's ``VolumetricSampler``, also skipping occluded samples outside training.

    The stock sampler passes no density function at eval time; on a CPU, early ray termination is what
    makes rendering a test image or a viewer frame affordable, so it is used in every mode here.
    """

    def get_sigma_fn(self, origins: Tensor, directions: Tensor, times: Tensor | None = None) -> SigmaFn | None:
        if self.density_fn is None:
            return None
        density_fn = self.density_fn

        def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
            positions = origins[ray_indices] + directions[ray_indices] * (t_starts + t_ends)[:, None] / 2.0
            return density_fn(positions).squeeze(-1)

        return sigma_fn
