"""Occupancy-grid ray marching: nerfacc's CUDA estimator, or a pure-torch one with the same cells and interface.

Both grid classes keep nerfacc's layout (``aabbs`` per level, ``occs`` per cell, ``binaries`` of shape
(levels, r, r, r)), so a checkpoint of either loads into the other, and share the geometry our models need
(:class:`GridGeometry`). nerfstudio's ``VolumetricSampler`` drives either.

:class:`TorchOccGrid` does without CUDA what nerfacc does in CUDA kernels, and what makes it fast on a CPU is what
makes Instant-NGP fast:

- empty-space skipping: only steps whose midpoints are in occupied cells become samples. On the CPU a compiled kernel
  (``kernels/march.cpp``) walks each ray step by step; elsewhere (no compiler, or the grid on CUDA without nerfacc) a
  ray is first marched through coarse blocks of cells (each level's grid max-pooled into 8 blocks per axis) in tensor
  ops, and fine steps are laid only where it crosses an occupied block, then kept only in occupied cells;
- early ray termination: a gradient-free density pass, front to back in rounds (:func:`visible_front_to_back`),
  drops every sample behind an opaque surface (transmittance < ``early_stop_eps``) without evaluating it, and every
  nearly transparent one (alpha < ``alpha_thre``), so the training pass runs the field on the survivors only. Our
  models run it themselves (``OccupancyModel.visible_samples``, to keep what it looked up); ``sampling`` runs it when
  given a ``sigma_fn``, as nerfacc's estimator does.

nerfacc lowers ``alpha_thre`` to the grid's mean occupancy, so that an untrained field keeps samples. In a real capture
most cells are empty, the mean stays far below the threshold all along, and nearly transparent samples are kept.
Both grids here apply ``alpha_thre`` as given (:func:`visible`); the models offer nerfacc's cap as a setting
(``alpha_thre_cap``, measured in BENCHMARKS.md, *captures-sweep*).

On CUDA nerfacc's grid is the default; this one is its fallback there, and every packed selection below needs its
size on the host (a sync each, as nerfacc's traversal has too). Thresholds derived from the grid are computed
once per grid change, never per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import nerfacc
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frinr_core.errors import InputError
from frinr_nerfstudio.method import kernels

SigmaFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (t_starts (N,), t_ends (N,), ray_indices (N,)) -> (N,)
EARLY_STOP_EPS = 1e-4
"""A ray ends where its transmittance falls below this (nerfacc's default)."""
BLOCKS_PER_AXIS = 8
"""About this many coarse blocks per axis and level for the hierarchical march (ceil(r / 8) cells a side)."""


def segment_exclusive_sum(values: Tensor, ray_indices: Tensor, n_rays: int) -> Tensor:
    """Exclusive cumulative sum of packed ``values`` (N,) within each ray; samples sorted by ray.

    One global cumsum minus its value at each ray's first sample; accumulated in float64 so that the
    subtraction keeps float32 precision over millions of samples. Differentiable.
    """
    total = torch.cumsum(values.double(), dim=0) - values.double()  # (N,) exclusive over all rays
    counts = torch.zeros(n_rays, dtype=torch.long, device=values.device).index_add_(
        0, ray_indices, torch.ones_like(ray_indices)
    )
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


def nerfacto_spacing(t: Tensor) -> Tensor:
    """Normalized ray distance: linear to 1 scene unit, then in disparity; [0, 1) over (0, inf). The spacing of
    nerfacto's proposal sampler, where its distortion loss is measured."""
    return torch.where(t < 1, t / 2, 1 - 1 / (2 * t))


def distortion_loss(weights: Tensor, t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor, n_rays: int) -> Tensor:
    """Mip-NeRF 360's distortion loss of packed samples (sorted by ray, then distance), averaged over rays.

    Per ray, sum_ij w_i w_j |m_i - m_j| + sum_i w_i^2 (s_i1 - s_i0) / 3 in nerfacto's normalized spacing, so a field
    that spreads a ray's weight over a long stretch of haze pays for it: it pulls weight into compact surfaces,
    which the occupancy grid then keeps and the march visits (fewer samples per ray). The pair sum in O(N): with
    samples in order, sum_ij = 2 sum_i w_i (m_i W_<i - (wm)_<i), both prefix sums per ray.
    """
    s0, s1 = nerfacto_spacing(t_starts), nerfacto_spacing(t_ends)  # (N,) each
    mid = (s0 + s1) / 2
    before = segment_exclusive_sum(weights, ray_indices, n_rays)  # (N,) weight in front of each sample
    moment_before = segment_exclusive_sum(weights * mid, ray_indices, n_rays)
    per_sample = 2 * weights * (mid * before - moment_before) + weights**2 * (s1 - s0) / 3  # (N,)
    return per_sample.sum() / n_rays


def visible(
    t_starts: Tensor, t_ends: Tensor, sigmas: Tensor, ray_indices: Tensor, n_rays: int, alpha_thre: float, eps: float
) -> Tensor:
    """(N,) bool: packed samples neither nearly transparent (alpha < ``alpha_thre``) nor behind an opaque surface
    (transmittance < ``eps``). The one rule of both grids; ``alpha_thre`` is not lowered to the mean occupancy."""
    _, transmittance, alphas = render_weight_from_density(t_starts, t_ends, sigmas, ray_indices, n_rays)
    return (alphas >= alpha_thre) & (transmittance >= eps)


def visible_front_to_back(
    ray_indices: Tensor,
    t_starts: Tensor,
    t_ends: Tensor,
    n_rays: int,
    density_of: Callable[[Tensor], Tensor],
    alpha_thre: float,
    eps: float,
    chunk: int = 1 << 18,
    first_window: int = 32,
) -> Tensor:
    """(N,) bool: :func:`visible`'s mask, evaluating the density front to back and only until each ray is opaque.

    ``density_of`` maps indices into the packed samples (B,) to their densities (B,); it is called with at most
    ``chunk`` indices at a time, so a caller may keep whatever else it computed for them (the model keeps the field's
    colour features, so a test view evaluates each sample's density once). Packed samples (sorted by ray, then
    distance) are evaluated in rounds: the next ``first_window`` samples of every ray still transparent, then twice
    as many, and so on; a ray whose transmittance falls below ``eps`` leaves. The candidates behind the first
    surface — on a real capture, the occupied cells of everything behind a wall — are never evaluated (Instant-NGP's
    inference march does the same). A round needs its size on the host, so this is the CPU path; on a GPU one batched
    pass over every candidate is cheaper.
    """
    device, n = ray_indices.device, ray_indices.numel()
    counts = torch.bincount(ray_indices, minlength=n_rays)  # (R,)
    rank = torch.arange(n, device=device) - (torch.cumsum(counts, 0) - counts)[ray_indices]  # (N,) index within ray
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    depth = torch.zeros(n_rays, dtype=torch.float64, device=device)  # (R,) optical depth of the evaluated samples
    pending, window_end, window = torch.arange(n, device=device), first_window, first_window  # (P,) not yet evaluated
    while pending.numel():
        now = rank[pending] < window_end
        batch, pending = pending[now], pending[~now]  # (B,), both still sorted by ray then distance
        rays = ray_indices[batch]
        sigmas = torch.cat([density_of(indices) for indices in batch.split(chunk)])  # (B,)
        tau = (sigmas * (t_ends[batch] - t_starts[batch])).double()  # (B,)
        transmittance = torch.exp(-(segment_exclusive_sum(tau, rays, n_rays) + depth[rays]))
        keep[batch] = (1.0 - torch.exp(-tau) >= alpha_thre) & (transmittance >= eps)
        depth.index_add_(0, rays, tau)
        pending = pending[torch.exp(-depth[ray_indices[pending]]) >= eps]  # rays still transparent
        window *= 2
        window_end += window
    return keep


class GridGeometry:
    """What our models ask of an occupancy grid, whichever backend holds it (nerfacc's buffer layout)."""

    aabbs: Tensor  # (levels, 6): level l is the ROI box scaled by 2**l about its centre
    occs: Tensor  # (levels * r**3,)
    binaries: Tensor  # (levels, r, r, r) bool
    levels: int

    @property
    def cells_per_axis(self) -> int:
        return self.binaries.shape[-1]

    @property
    def block_cells(self) -> int:
        """Cells per side of a coarse block of the hierarchical march."""
        return math.ceil(self.cells_per_axis / BLOCKS_PER_AXIS)

    @torch.no_grad()
    def cell_centres(self) -> Tensor:
        """(levels * r**3, 3) world centres of the cells, in the order of ``occs`` and ``binaries.flatten()``."""
        r = self.cells_per_axis
        steps = (torch.arange(r, device=self.aabbs.device) + 0.5) / r
        unit = torch.stack(torch.meshgrid(steps, steps, steps, indexing="ij"), dim=-1).reshape(-1, 3)  # (r**3, 3)
        lo, hi = self.aabbs[:, None, :3], self.aabbs[:, None, 3:]  # (levels, 1, 3)
        return (lo + unit * (hi - lo)).reshape(-1, 3)

    def mean_occupancy(self) -> float:
        """Mean occupancy of the evaluated cells: nerfacc's cap on the alpha threshold. One host sync per grid change,
        none per march."""
        key = (self.occs.data_ptr(), self.occs._version)
        if getattr(self, "_mean", (None,))[0] != key:
            seen = self.occs[self.occs >= 0]
            self._mean = (key, float(seen.mean()) if seen.numel() else math.inf)
        return self._mean[1]

    @torch.no_grad()
    def place(self, box: Tensor) -> None:
        """Move the grid onto ``box`` (2, 3): level 0 covers it, level l the box scaled by 2**l about its centre."""
        centre, half = box.mean(0), (box[1] - box[0]) / 2  # (3,), (3,)
        scales = 2.0 ** torch.arange(self.levels, device=box.device, dtype=box.dtype)[:, None]  # (levels, 1)
        self.aabbs.copy_(torch.cat([centre - half * scales, centre + half * scales], dim=-1))

    @torch.no_grad()
    def set_cells(self, occs: Tensor, binaries: Tensor) -> None:
        """Cell occupancies (levels * r**3,) — their mean caps the sampler's alpha threshold, as nerfacc's — and which
        cells are marched (any shape with levels * r**3 elements)."""
        self.occs.copy_(occs)
        self.binaries.copy_(binaries.view_as(self.binaries))


def adapt_grid_state(state_dict: dict, prefix: str, grid: GridGeometry) -> None:
    """Make a checkpointed grid's entries (either backend's, or frinr's pre-2026-12 ``center``/``half_extent``) those
    of ``grid``, in place: the cells are the same, only the bookkeeping differs. A grid of another shape is a
    one-line error, never a state-dict traceback."""
    saved = state_dict.get(prefix + "binaries")
    if saved is not None and saved.shape != grid.binaries.shape:
        raise InputError(
            f"the checkpoint's occupancy grid is {tuple(saved.shape)} (levels, cells per axis ×3), this model's "
            f"{tuple(grid.binaries.shape)}: load it with the grid settings it was trained with "
            "(resolution; levels follow the contraction setting, which auto resolves from the dataparser)"
        )
    if prefix + "center" in state_dict:
        centre, half = state_dict.pop(prefix + "center"), state_dict.pop(prefix + "half_extent")
        scales = 2.0 ** torch.arange(grid.levels, dtype=centre.dtype, device=centre.device)[:, None]
        state_dict[prefix + "aabbs"] = torch.cat([centre - half * scales, centre + half * scales], dim=-1)
    own = grid.state_dict()
    for name in ("resolution", "sweep_start"):  # nerfacc's resolution buffer, the torch grid's sweep position
        if name in own:
            state_dict.setdefault(prefix + name, own[name].clone())
        else:
            state_dict.pop(prefix + name, None)
    occs = state_dict.get(prefix + "occs")
    if occs is not None and isinstance(grid, nerfacc.OccGridEstimator):
        state_dict[prefix + "occs"] = occs.clamp_min(0)  # the torch grid marks never-seen cells -1; nerfacc has 0


class TorchOccGrid(GridGeometry, nn.Module):
    """A multi-level binary occupancy grid with the interface of ``nerfacc.OccGridEstimator``, in tensor ops.

    Level ``l`` covers the ROI box scaled by ``2**l`` about its centre, at ``resolution**3`` cells, so unbounded
    scenes get coarser cells far away. A point is looked up in the finest level containing it.
    """

    def __init__(
        self, roi_aabb: Tensor, resolution: int = 128, levels: int = 1, cells_per_update: int | None = None
    ) -> None:
        super().__init__()
        if resolution < 1 or levels < 1:
            raise InputError(f"occupancy grid resolution and levels must be >= 1, got {resolution} and {levels}")
        self.levels, self.cells_per_update = levels, cells_per_update
        self.register_buffer("aabbs", torch.zeros(levels, 6))
        self.place(torch.as_tensor(roi_aabb, dtype=torch.float32).reshape(2, 3))
        # EMA of density * step per cell; -1 = never evaluated, which counts as occupied.
        self.register_buffer("occs", torch.full((levels * resolution**3,), -1.0))
        self.register_buffer("binaries", torch.ones(levels, resolution, resolution, resolution, dtype=torch.bool))
        self.register_buffer("sweep_start", torch.zeros((), dtype=torch.long))
        self._blocks: tuple | None = None  # (key, blocks): see occupied_blocks

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        adapt_grid_state(state_dict, prefix, self)
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
        occ = torch.cat([occ_eval_fn(p).reshape(-1) for p in points.split(chunk)]).to(self.occs.dtype)  # (M,)
        old = self.occs[cells]
        self.occs[cells] = torch.where(old < 0, occ, torch.maximum(old * ema_decay, occ))
        seen = self.occs >= 0
        mean = (self.occs * seen).sum() / seen.sum().clamp_min(1)  # mean over evaluated cells, no host sync
        thre = torch.where(seen.any(), mean.clamp(max=occ_thre), torch.full_like(mean, occ_thre))
        self.binaries.copy_(((self.occs > thre) | ~seen).view_as(self.binaries))

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
        occupied = torch.nonzero(self.binaries.flatten())[:, 0]  # once per grid update, not per march
        if occupied.numel() > n_occupied:
            occupied = occupied[torch.randint(occupied.numel(), (n_occupied,), device=device)]
        return torch.cat([uniform, occupied])

    def _random_points_in_cells(self, cells: Tensor) -> Tensor:  # (M,) flat ids -> (M, 3) world points
        r = self.cells_per_axis
        level, rest = cells // r**3, cells % r**3
        ijk = torch.stack([rest // (r * r), (rest // r) % r, rest % r], dim=-1).float()  # (M, 3)
        box = self.aabbs[level]  # (M, 6)
        return box[:, :3] + (ijk + torch.rand_like(ijk)) / r * (box[:, 3:] - box[:, :3])

    # -- what the march derives from the grid, once per change -----------------------------------------

    def occupied_blocks(self) -> Tensor:
        """(levels, B, B, B) coarse blocks holding an occupied cell or bordering one. Recomputed only when the grid
        changed: once per grid update in training, never per chunk of a rendered view."""
        key = (self.binaries.data_ptr(), self.binaries._version)
        if self._blocks is None or self._blocks[0] != key:
            blocks = F.max_pool3d(self.binaries[:, None].float(), self.block_cells, ceil_mode=True)  # (L, 1, B, B, B)
            blocks = F.max_pool3d(blocks, kernel_size=3, stride=1, padding=1)[:, 0] > 0  # dilated by one block
            self._blocks = (key, blocks)
        return self._blocks[1]

    def _level_and_unit(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(N, 3) world points -> finest level containing each (N,), inside the grid (N,), coordinates in [0, 1)^3 of
        that level's box (N, 3)."""
        box = self.aabbs[0]
        centre, half = (box[:3] + box[3:]) / 2, (box[3:] - box[:3]) / 2
        unit = (points - centre) / half  # (N, 3), level 0 is [-1, 1]^3
        mantissa, exponent = torch.frexp(unit.abs().amax(dim=-1).clamp_min(1e-12))  # extent = mantissa * 2**exponent
        level = (exponent - (mantissa == 0.5).int()).clamp_min(0).long()  # ceil(log2(extent)), exact (as the kernel)
        inside = level < self.levels
        level = level.clamp_max(self.levels - 1)
        return level, inside, (unit / (2.0 ** level[:, None].to(unit.dtype)) + 1) / 2

    def occupied(self, points: Tensor) -> Tensor:
        """(N, 3) world points -> (N,) bool: inside the grid and in an occupied cell."""
        level, inside, unit = self._level_and_unit(points)
        r = self.cells_per_axis
        ijk = (unit * r).long().clamp(0, r - 1)  # (N, 3)
        return inside & self.binaries[level, ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    # -- ray marching -----------------------------------------------------------------------------------

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
        early_stop_eps: float = EARLY_STOP_EPS,
        chunk: int = 1 << 18,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """March rays (R, 3) through occupied cells; returns packed (ray_indices, t_starts, t_ends), each (N,).

        The steps are those of a march from the ray's entry into the grid (or the near plane): ``render_step_size``
        long, growing as ``t * cone_angle`` once that is larger (as nerfacc), each kept if its midpoint is in an
        occupied cell and it ends before the ray leaves the grid (or the far plane). Ordered by ray, then distance.
        """
        n_rays = rays_o.shape[0]
        t_start, t_stop = _ray_box_interval(rays_o, rays_d, self.aabbs[-1].view(2, 3))  # (R,), (R,): the whole grid
        t_start, t_stop = t_start.clamp_min(near_plane), t_stop.clamp_max(far_plane)
        if t_min is not None:
            t_start = torch.maximum(t_start, t_min)
        if t_max is not None:
            t_stop = torch.minimum(t_stop, t_max)
        if stratified:
            t_start = t_start + torch.rand_like(t_start) * render_step_size
        steps = self._occupied_steps(rays_o, rays_d, t_start, t_stop, render_step_size, cone_angle)
        ray_indices, t_starts, t_ends = steps  # (N,) each

        if sigma_fn is not None and (alpha_thre > 0 or early_stop_eps > 0) and ray_indices.numel():
            density_of = lambda i: sigma_fn(t_starts[i], t_ends[i], ray_indices[i])  # noqa: E731
            keep = visible_front_to_back(
                ray_indices, t_starts, t_ends, n_rays, density_of, alpha_thre, early_stop_eps, chunk
            )  # (N,), evaluating the field in chunks of bounded memory
            ray_indices, t_starts, t_ends = ray_indices[keep], t_starts[keep], t_ends[keep]
        return ray_indices, t_starts, t_ends

    def _occupied_steps(
        self, rays_o: Tensor, rays_d: Tensor, t_start: Tensor, t_stop: Tensor, step: float, cone_angle: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The march's steps between ``t_start`` and ``t_stop`` (R,) whose midpoints are in occupied cells: packed
        (ray_indices, t_starts, t_ends), each (N,). On the CPU the compiled kernel walks each ray step by step (a few
        flops a step); otherwise steps are laid in tensor ops, only where a ray crosses an occupied coarse block."""
        arrays = (rays_o, rays_d, t_start, t_stop)
        if kernels.usable(*arrays):
            arrays = [a.contiguous() for a in arrays]
            return tuple(torch.ops.frinr.march_occupied(*arrays, self.binaries, self.aabbs[0], step, cone_angle))
        march = _Marcher(t_start, t_stop, step, cone_angle)
        owner, lo, hi = self._occupied_block_spans(rays_o, rays_d, t_start, t_stop, self.occupied_blocks())  # (S,) each
        ray_indices, t_starts, t_ends = march.steps_with_midpoints_in(owner, lo, hi)
        mids = (t_starts + t_ends)[:, None] / 2
        keep = self.occupied(rays_o[ray_indices] + rays_d[ray_indices] * mids)
        return ray_indices[keep], t_starts[keep], t_ends[keep]

    def _occupied_block_spans(
        self, rays_o: Tensor, rays_d: Tensor, t_start: Tensor, t_stop: Tensor, blocks: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Distance spans (owner ray, lo, hi), each (S,), covering every part of each ray that crosses an occupied
        block; ordered by ray then distance, disjoint, adjacent spans sharing their bound exactly.

        Each level's stretch of a ray (its part inside level l's box but outside level l−1's) is cut into pieces of
        at most half a block; a piece is kept when its midpoint is in a block that is occupied or borders one. A
        point of the ray is within a quarter block of its piece's midpoint, so inside the same block or a
        neighbour: every stretch crossing an occupied block is kept (blocks are dilated by one for this).
        """
        owner, lo, hi, level = _level_stretches(rays_o, rays_d, t_start, t_stop, self.aabbs)  # (Q,) each
        extent = self.aabbs[:, 3:] - self.aabbs[:, :3]  # (levels, 3)
        piece = (extent.amin(-1) / self.cells_per_axis * self.block_cells / 2)[level]  # (Q,) at most half a block
        counts = torch.ceil((hi - lo) / piece).clamp_min(1).long()  # (Q,)
        stretch = torch.repeat_interleave(torch.arange(owner.shape[0], device=owner.device), counts)  # (P,)
        k = torch.arange(stretch.shape[0], device=owner.device) - (torch.cumsum(counts, 0) - counts)[stretch]
        width = ((hi - lo) / counts)[stretch]
        p_lo = lo[stretch] + k * width  # (P,)
        p_hi = torch.where(k + 1 == counts[stretch], hi[stretch], lo[stretch] + (k + 1) * width)
        ray = owner[stretch]
        mids = rays_o[ray] + rays_d[ray] * ((p_lo + p_hi) / 2)[:, None]  # (P, 3)
        lvl = level[stretch]
        box = self.aabbs[lvl]  # (P, 6)
        r = self.cells_per_axis
        ijk = ((mids - box[:, :3]) / (box[:, 3:] - box[:, :3]) * r).long().clamp(0, r - 1) // self.block_cells
        keep = blocks[lvl, ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        return ray[keep], p_lo[keep], p_hi[keep]


def _ray_box_interval(rays_o: Tensor, rays_d: Tensor, box: Tensor) -> tuple[Tensor, Tensor]:
    """Slab test: entry and exit distances (R,) of rays through an axis-aligned box (2, 3); exit < entry = miss."""
    inv_d = 1.0 / torch.where(rays_d.abs() < 1e-12, torch.full_like(rays_d, 1e-12), rays_d)
    t_lo, t_hi = (box[0] - rays_o) * inv_d, (box[1] - rays_o) * inv_d  # (R, 3)
    return torch.minimum(t_lo, t_hi).amax(dim=-1), torch.maximum(t_lo, t_hi).amin(dim=-1)


def _level_stretches(
    rays_o: Tensor, rays_d: Tensor, t_start: Tensor, t_stop: Tensor, aabbs: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where each ray is in which level: non-empty spans (ray, lo, hi, level), each (Q,), ordered by ray then distance.

    Level boxes are nested, so a ray meets level l (inside its box, outside level l−1's) in at most two stretches,
    before and after level l−1's box. Adjacent stretches share their bound exactly.
    """
    levels = aabbs.shape[0]
    entry, exit_ = zip(*(_ray_box_interval(rays_o, rays_d, box.view(2, 3)) for box in aabbs), strict=True)
    entry = torch.stack(entry, 1).clamp(t_start[:, None], t_stop[:, None])  # (R, levels)
    exit_ = torch.stack(exit_, 1).clamp(t_start[:, None], t_stop[:, None])
    exit_ = torch.maximum(exit_, entry)  # missed boxes: empty spans
    # ordered along the ray: level L-1 before L-2 ... before level 0, then level 1 ... level L-1 again
    before = (entry[:, 1:], torch.minimum(entry[:, :-1], exit_[:, 1:]))  # level l ≥ 1 before level l−1's box
    after = (torch.maximum(exit_[:, :-1], entry[:, 1:]), exit_[:, 1:])  # level l ≥ 1 after it
    spans_lo = torch.cat([before[0].flip(1), entry[:, :1], after[0]], dim=1)  # (R, 2 * levels - 1)
    spans_hi = torch.cat([before[1].flip(1), exit_[:, :1], after[1]], dim=1)
    span_level = torch.cat(
        [torch.arange(levels - 1, 0, -1), torch.zeros(1, dtype=torch.long), torch.arange(1, levels)]
    ).to(rays_o.device)  # (2 * levels - 1,)
    keep = spans_hi > spans_lo  # (R, 2L-1)
    ray, which = torch.nonzero(keep, as_tuple=True)
    return ray, spans_lo[keep], spans_hi[keep], span_level[which]


class _Marcher:
    """The steps of a march from ``t_start`` (R,): ``step`` long until ``t = step / cone_angle``, then growing
    geometrically (``dt = t * cone_angle``), as nerfacc's marcher. Step k has a closed form, so the steps within
    any span are found without marching; only steps that end before ``t_stop`` exist."""

    def __init__(self, t_start: Tensor, t_stop: Tensor, step: float, cone_angle: float) -> None:
        self.t_start, self.t_stop, self.step, self.cone = t_start, t_stop, step, cone_angle
        self.growth = math.log1p(cone_angle)  # 0 without a cone: no geometric part
        t_switch = step / cone_angle if cone_angle > 0 else math.inf
        self.n_linear = torch.ceil((t_start.clamp_min(t_switch) - t_start) / step)  # (R,) inf without a cone
        self.t_geo = t_start + self.n_linear * step  # (R,) where the geometric part starts
        self.count = self.first_with_midpoint_after(t_stop, torch.arange(t_start.shape[0], device=t_start.device))
        self.count = self._ends_before_stop(self.count)

    def start_of(self, k: Tensor, ray: Tensor) -> Tensor:
        linear = k < self.n_linear[ray]
        geometric = self.t_geo[ray] * torch.exp((k - self.n_linear[ray]).clamp_min(0) * self.growth)
        return torch.where(linear, self.t_start[ray] + k * self.step, geometric)

    def end_of(self, k: Tensor, ray: Tensor) -> Tensor:
        start = self.start_of(k, ray)
        return torch.where(k < self.n_linear[ray], start + self.step, start * (1 + self.cone))

    def first_with_midpoint_after(self, t: Tensor, ray: Tensor) -> Tensor:
        """(S,) number of the first step of ``ray`` whose midpoint is at or after ``t`` (as floats, exact at ties)."""
        n_lin = self.n_linear[ray]
        k = torch.ceil((t - self.t_start[ray]) / self.step - 0.5).clamp_min(0)
        if self.cone > 0:
            mid_factor = 1 + self.cone / 2
            geo = n_lin + torch.ceil(torch.log(t.clamp_min(1e-12) / (self.t_geo[ray] * mid_factor)) / self.growth)
            k = torch.where(k < n_lin, k, geo.clamp_min(n_lin))
        # the closed forms can be one off at a tie: settle it on the midpoints themselves
        mid = (self.start_of(k, ray) + self.end_of(k, ray)) / 2
        k = torch.where(mid < t, k + 1, k)
        previous = (k - 1).clamp_min(0)
        mid_prev = (self.start_of(previous, ray) + self.end_of(previous, ray)) / 2
        return torch.where((k > 0) & (mid_prev >= t), previous, k)

    def _ends_before_stop(self, count: Tensor) -> Tensor:
        """Drop the last step of each ray when it would end after ``t_stop`` (only full steps exist)."""
        rays = torch.arange(count.shape[0], device=count.device)
        last = (count - 1).clamp_min(0)
        over = (count > 0) & (self.end_of(last, rays) > self.t_stop)
        return torch.where(over, count - 1, count)

    def steps_with_midpoints_in(self, owner: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Packed (ray_indices, t_starts, t_ends), each (N,), of the steps whose midpoints lie in the spans
        ``[lo, hi)`` of ``owner`` rays (spans disjoint and ordered by ray then distance)."""
        first = self.first_with_midpoint_after(lo, owner)
        last = torch.minimum(self.first_with_midpoint_after(hi, owner), self.count[owner])
        counts = (last - first).clamp_min(0).long()  # (S,)
        span = torch.repeat_interleave(torch.arange(owner.shape[0], device=owner.device), counts)  # (N,)
        offset = (torch.cumsum(counts, 0) - counts)[span]
        k = first[span] + (torch.arange(span.shape[0], device=owner.device) - offset).to(first.dtype)  # (N,)
        ray = owner[span]
        return ray, self.start_of(k, ray), self.end_of(k, ray)


class NerfaccOccGrid(GridGeometry, nerfacc.OccGridEstimator):
    """nerfacc's CUDA estimator, loading checkpoints of the torch grid too (same cells); its traversal lays the steps,
    :func:`visible` keeps them, as the torch grid's (nerfacc would lower ``alpha_thre`` to the mean occupancy, with a
    host sync per call to read that mean)."""

    @torch.no_grad()
    def sampling(
        self,
        rays_o: Tensor,
        rays_d: Tensor,
        sigma_fn: SigmaFn | None = None,
        alpha_thre: float = 0.0,
        early_stop_eps: float = EARLY_STOP_EPS,
        **kwargs,
    ) -> tuple[Tensor, Tensor, Tensor]:
        ray_indices, t_starts, t_ends = super().sampling(rays_o, rays_d, **kwargs)  # no sigma_fn: traversal only
        if sigma_fn is not None and (alpha_thre > 0 or early_stop_eps > 0) and ray_indices.numel():
            sigmas = sigma_fn(t_starts, t_ends, ray_indices)
            keep = visible(t_starts, t_ends, sigmas, ray_indices, rays_o.shape[0], alpha_thre, early_stop_eps)
            ray_indices, t_starts, t_ends = ray_indices[keep], t_starts[keep], t_ends[keep]
        return ray_indices, t_starts, t_ends

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        adapt_grid_state(state_dict, prefix, self)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def make_occupancy_grid(
    backend: str, roi_aabb: Tensor, resolution: int, levels: int, cells_per_update: int | None = None
) -> TorchOccGrid | NerfaccOccGrid:
    """The occupancy grid of a resolved backend (:func:`frinr_nerfstudio.nerfstudio_fixes.backends.occupancy_grid`)."""
    if backend == "nerfacc":
        return NerfaccOccGrid(roi_aabb=roi_aabb, resolution=resolution, levels=levels)
    return TorchOccGrid(roi_aabb, resolution=resolution, levels=levels, cells_per_update=cells_per_update)
