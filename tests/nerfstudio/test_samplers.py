"""The pure-torch occupancy grid: empty-space skipping, agreement with dense marching, early termination."""

from __future__ import annotations

import copy

import pytest
import torch

from frinr_core.errors import InputError
from frinr_nerfstudio.method import kernels
from frinr_nerfstudio.method.samplers import (
    TorchOccGrid,
    distortion_loss,
    nerfacto_spacing,
    render_weight_from_density,
    segment_exclusive_sum,
    visible,
    visible_front_to_back,
)

STEP = 0.01


def ball_density(radius: float, value: float = 1.0):
    return lambda x: (x.norm(dim=-1, keepdim=True) < radius).float() * value  # (M, 3) -> (M, 1)


@pytest.fixture
def grid() -> TorchOccGrid:
    """A 2-level grid over [-1, 1]^3 whose occupied cells cover a ball of radius 0.4."""
    torch.manual_seed(0)
    grid = TorchOccGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=16, levels=2).train()
    grid.update_every_n_steps(step=0, occ_eval_fn=ball_density(0.4))
    return grid


@pytest.fixture(params=["kernel", "tensor-ops"])
def march(request, monkeypatch) -> str:
    """Both marches: the compiled kernel (the CPU's) and the tensor ops (the torch grid on a GPU, or no compiler)."""
    if request.param == "tensor-ops":
        monkeypatch.setattr(kernels, "usable", lambda *tensors: False)
    return request.param


def rays_at_origin(n: int = 64, distance: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays (n, 3) from a sphere of radius ``distance`` aimed near the origin."""
    gen = torch.Generator().manual_seed(1)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * distance
    targets = (torch.rand(n, 3, generator=gen) - 0.5) * 0.6
    return origins, torch.nn.functional.normalize(targets - origins, dim=-1)


def test_grid_marks_only_cells_near_the_ball(grid: TorchOccGrid) -> None:
    r = grid.cells_per_axis
    ijk = torch.stack(torch.meshgrid(*[torch.arange(r)] * 3, indexing="ij"), -1).reshape(-1, 3).float()
    for level in range(grid.levels):
        size = 2.0 * 2**level / r  # cell edge; level l covers [-2^l, 2^l]^3
        centres = (ijk + 0.5) * size - 2**level
        occupied = grid.binaries[level].reshape(-1)
        assert (centres[occupied].norm(dim=-1) < 0.4 + size).all()  # within a cell diagonal of the ball
    assert grid.binaries[0].sum() > 8


def test_sampling_skips_empty_cells(grid: TorchOccGrid) -> None:
    origins, dirs = rays_at_origin()
    ray_indices, starts, ends = grid.sampling(origins, dirs, render_step_size=STEP)
    mids = origins[ray_indices] + dirs[ray_indices] * ((starts + ends) / 2)[:, None]
    assert ray_indices.numel() > 0
    assert grid.occupied(mids).all()
    full = copy.deepcopy(grid)
    full.binaries.fill_(True)
    assert full.sampling(origins, dirs, render_step_size=STEP)[0].numel() > 5 * ray_indices.numel()


@pytest.mark.parametrize("cone_angle", [0.0, 0.004])
def test_sampling_matches_dense_marching_where_occupied(grid: TorchOccGrid, cone_angle: float, march: str) -> None:
    origins, dirs = rays_at_origin()
    sparse = grid.sampling(origins, dirs, render_step_size=STEP, cone_angle=cone_angle, near_plane=0.1)
    full = copy.deepcopy(grid)
    full.binaries.fill_(True)  # every cell occupied: a dense march of the whole grid
    ray_indices, starts, ends = full.sampling(
        origins, dirs, render_step_size=STEP, cone_angle=cone_angle, near_plane=0.1
    )
    keep = grid.occupied(origins[ray_indices] + dirs[ray_indices] * ((starts + ends) / 2)[:, None])
    assert torch.equal(sparse[0], ray_indices[keep])
    torch.testing.assert_close(sparse[1], starts[keep])
    torch.testing.assert_close(sparse[2], ends[keep])


def test_sampling_terminates_rays_early(grid: TorchOccGrid) -> None:
    """An opaque ball of radius 0.3 inside occupied cells of radius 0.4: samples in front of it are
    transparent (dropped by alpha), samples behind its surface are occluded (dropped by transmittance)."""
    origins, dirs = rays_at_origin()
    density = ball_density(0.3, value=1e3)

    def sigma_fn(t_starts, t_ends, ray_indices):
        return density(origins[ray_indices] + dirs[ray_indices] * ((t_starts + t_ends) / 2)[:, None])[:, 0]

    all_samples = grid.sampling(origins, dirs, render_step_size=STEP)[0]
    ray_indices, starts, ends = grid.sampling(origins, dirs, sigma_fn=sigma_fn, render_step_size=STEP, alpha_thre=1e-3)
    hit_rays = torch.unique(ray_indices)
    assert hit_rays.numel() > 0
    assert torch.bincount(ray_indices).max() <= 2  # tau = 10 per step: nothing visible after two steps
    assert ray_indices.numel() < all_samples.numel() / 10
    assert (sigma_fn(starts, ends, ray_indices) > 0).all()


@pytest.mark.parametrize("first_window", [1, 3, 32])
def test_front_to_back_keeps_what_one_pass_keeps_and_skips_occluded_samples(first_window: int) -> None:
    """Random packed rays through a noisy half-opaque medium: the rounds keep exactly the samples a density pass over
    every sample keeps, and never evaluate a sample behind the point where its ray became opaque."""
    gen = torch.Generator().manual_seed(3)
    counts = torch.randint(0, 200, (50,), generator=gen)  # some rays have no sample
    ray_indices = torch.repeat_interleave(torch.arange(50), counts)
    t_starts = torch.cat([torch.arange(int(c)) * 0.05 for c in counts]).float()
    t_ends = t_starts + 0.05
    in_medium = (torch.rand(50, generator=gen) < 0.7)[ray_indices]  # the other rays never become opaque
    field = torch.rand(ray_indices.numel(), generator=gen) ** 8 * 60 * in_medium
    key = {(int(r), round(float(t), 4)): float(v) for r, t, v in zip(ray_indices, t_starts, field, strict=True)}
    evaluated = []

    def density_of(indices):  # the density of a sample, looked up by (ray, t): any order works
        evaluated.append(indices.numel())
        rays, starts = ray_indices[indices], t_starts[indices]
        return torch.tensor([key[(int(r), round(float(t), 4))] for r, t in zip(rays, starts, strict=True)])

    one_pass = visible(t_starts, t_ends, field, ray_indices, 50, alpha_thre=0.01, eps=1e-4)
    rounds = visible_front_to_back(ray_indices, t_starts, t_ends, 50, density_of, 0.01, 1e-4, chunk=97,
                                   first_window=first_window)  # fmt: skip
    assert torch.equal(rounds, one_pass)
    _, transmittance, _ = render_weight_from_density(t_starts, t_ends, field, ray_indices, 50)
    still_transparent = (transmittance >= 1e-4).sum()  # samples before each ray's termination: these must be seen
    assert still_transparent <= sum(evaluated) < ray_indices.numel() * 0.8
    assert max(evaluated) <= 97


def test_update_counts_unseen_cells_occupied_and_decays() -> None:
    grid = TorchOccGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=8, levels=1, cells_per_update=256).train()
    grid.update_every_n_steps(step=0, occ_eval_fn=ball_density(0.6))
    assert grid.binaries.reshape(-1)[256:].all()  # not yet evaluated: occupied until seen
    assert not grid.binaries.reshape(-1)[:256].all()
    grid.update_every_n_steps(step=16, occ_eval_fn=ball_density(0.6))
    big = grid.binaries.clone()
    for step in range(2, 200):  # the ball shrinks: the EMA of the cells it left decays below the threshold
        grid.update_every_n_steps(step=step * 16, occ_eval_fn=ball_density(0.3), warmup_steps=0)
    assert grid.binaries.any()
    assert (big & ~grid.binaries).any() and not (grid.binaries & ~big).any()


def test_segment_scan_and_weights_per_ray() -> None:
    ray_indices = torch.tensor([0, 0, 0, 2, 2, 3])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert torch.equal(segment_exclusive_sum(values, ray_indices, 4), torch.tensor([0.0, 1, 3, 0, 4, 0]))
    starts = torch.tensor([0.0, 1, 2, 0, 1, 0])
    weights, transmittance, alphas = render_weight_from_density(starts, starts + 1, values, ray_indices, 4)
    torch.testing.assert_close(transmittance[:3], torch.exp(-torch.tensor([0.0, 1, 3])))
    torch.testing.assert_close(weights, transmittance * (1 - torch.exp(-values)))


def test_distortion_loss_is_mip_nerf_360s_pair_sum_and_prefers_compact_weight() -> None:
    """The O(N) prefix-sum form equals the O(N^2) definition per ray, and a ray whose weight sits in one place costs
    less than the same weight spread along it."""
    gen = torch.Generator().manual_seed(3)
    counts = [5, 1, 9]
    ray_indices = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    edges = [torch.sort(torch.rand(c + 1, generator=gen) * 4)[0] for c in counts]
    starts, ends = torch.cat([e[:-1] for e in edges]), torch.cat([e[1:] for e in edges])
    weights = torch.rand(len(starts), generator=gen) / 4
    expected = 0.0
    for ray in range(3):
        at = ray_indices == ray
        s0, s1, w = nerfacto_spacing(starts[at]), nerfacto_spacing(ends[at]), weights[at]
        mid = (s0 + s1) / 2
        expected += (w[:, None] * w[None] * (mid[:, None] - mid[None]).abs()).sum() + (w**2 * (s1 - s0)).sum() / 3
    assert torch.allclose(distortion_loss(weights, starts, ends, ray_indices, 3), expected / 3, rtol=1e-5)

    t = torch.linspace(1.0, 3.0, 11)
    one_ray = torch.zeros(10, dtype=torch.long)
    compact = torch.zeros(10).index_fill_(0, torch.tensor([4]), 0.9)
    spread = torch.full((10,), 0.09)
    assert distortion_loss(compact, t[:-1], t[1:], one_ray, 1) < distortion_loss(spread, t[:-1], t[1:], one_ray, 1)


def test_checkpoint_of_another_grid_shape_is_a_clear_error() -> None:
    box = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
    four_levels = TorchOccGrid(box, resolution=8, levels=4).state_dict()
    with pytest.raises(InputError, match=r"occupancy grid is \(4, 8, 8, 8\).*this model's \(1, 8, 8, 8\)"):
        TorchOccGrid(box, resolution=8, levels=1).load_state_dict(four_levels)


def reference_march(grid: TorchOccGrid, origin, direction, step: float, cone: float, near: float = 0.0):
    """One ray, step by step as nerfacc's marcher (float64): every full step whose midpoint is in an occupied cell."""
    box = grid.aabbs[-1].double().view(2, 3)
    o, d = origin.double(), direction.double()
    inv = 1 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    lo, hi = (box[0] - o) * inv, (box[1] - o) * inv
    t, t_stop = max(float(torch.minimum(lo, hi).max()), near), float(torch.maximum(lo, hi).min())
    samples = []
    while t < t_stop:
        dt = max(step, t * cone)
        if t + dt > t_stop:
            break
        mid = o + d * (t + dt / 2)
        samples.append((t, t + dt, bool(grid.occupied(mid.float()[None])[0])))
        t += dt
    return samples


@pytest.mark.parametrize("cone_angle", [0.0, 0.02])
def test_march_finds_every_step_a_plain_march_finds(grid: TorchOccGrid, cone_angle: float, march: str) -> None:
    """Against a step-by-step march (float64): exactly the steps whose midpoints are in occupied cells are laid."""
    origins, dirs = rays_at_origin(32)
    ray_indices, starts, ends = grid.sampling(origins, dirs, render_step_size=STEP, cone_angle=cone_angle)
    for ray in range(32):
        mine = torch.stack([starts[ray_indices == ray], ends[ray_indices == ray]], dim=-1).double()
        reference = reference_march(grid, origins[ray], dirs[ray], STEP, cone_angle)
        wanted = torch.tensor([(s, e) for s, e, occupied in reference if occupied], dtype=torch.float64)
        assert mine.shape == wanted.shape, f"ray {ray}: {len(mine)} steps laid, {len(wanted)} in occupied cells"
        if len(wanted):
            torch.testing.assert_close(mine, wanted, rtol=0, atol=1e-4)
    assert ray_indices.numel() > 0


@pytest.mark.parametrize("cone_angle", [0.0, 0.004, 0.02, 0.1])
def test_kernel_lays_the_steps_the_tensor_march_lays(cone_angle: float, monkeypatch) -> None:
    """The compiled march and the tensor-op march agree step for step: rays from inside and outside a 3-level grid,
    some missing it, with a near plane, an uneven occupancy pattern, and both the linear and the growing steps."""
    assert kernels.available(), "g++ and ninja are installed here: the kernels must build"
    torch.manual_seed(0)
    grid = TorchOccGrid(torch.tensor([-1.0, -0.5, -1, 1, 1.5, 1]), resolution=16, levels=3).train()
    grid.update_every_n_steps(step=0, occ_eval_fn=lambda x: (torch.sin(4 * x).prod(-1, keepdim=True) > 0.1).float())
    assert 0.2 < grid.binaries.float().mean() < 0.8
    origins = torch.nn.functional.normalize(torch.randn(3000, 3), dim=-1) * torch.rand(3000, 1) * 6
    dirs = torch.nn.functional.normalize(torch.randn(3000, 3), dim=-1)
    settings = {"render_step_size": 0.01, "cone_angle": cone_angle, "near_plane": 0.2}
    compiled = grid.sampling(origins, dirs, **settings)
    monkeypatch.setattr(kernels, "usable", lambda *tensors: False)
    in_tensor_ops = grid.sampling(origins, dirs, **settings)
    assert compiled[0].numel() > 10_000 and torch.equal(compiled[0], in_tensor_ops[0])
    assert torch.unique(compiled[0]).numel() < 3000  # some rays miss the grid or its occupied cells
    torch.testing.assert_close(compiled[1], in_tensor_ops[1], rtol=1e-6, atol=0)  # exp may differ in the last bit
    torch.testing.assert_close(compiled[2], in_tensor_ops[2], rtol=1e-6, atol=0)


def test_march_lays_steps_only_near_occupied_blocks(grid: TorchOccGrid, monkeypatch) -> None:
    """Without the kernel, the coarse pass skips empty blocks before any fine step is laid: far fewer candidates than a
    march of the box."""
    from frinr_nerfstudio.method import samplers

    monkeypatch.setattr(kernels, "usable", lambda *tensors: False)
    laid = []
    original = samplers._Marcher.steps_with_midpoints_in

    def counting(self, *args):
        result = original(self, *args)
        laid.append(result[0].numel())
        return result

    monkeypatch.setattr(samplers._Marcher, "steps_with_midpoints_in", counting)
    origins, dirs = rays_at_origin()
    grid.sampling(origins, dirs, render_step_size=STEP)
    full = copy.deepcopy(grid)
    full.binaries.fill_(True)
    full.sampling(origins, dirs, render_step_size=STEP)
    assert laid[0] < laid[1] / 2  # a ball of radius 0.4 in a 2-level grid over [-2, 2]^3, blocks dilated by one


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_torch_grid_matches_the_cpu_and_nerfaccs_traversal(grid: TorchOccGrid) -> None:
    from frinr_nerfstudio.method.samplers import NerfaccOccGrid

    origins, dirs = rays_at_origin()
    settings = {"render_step_size": STEP, "cone_angle": 0.004, "near_plane": 0.1}
    on_cpu = grid.sampling(origins, dirs, **settings)
    on_gpu = copy.deepcopy(grid).cuda().sampling(origins.cuda(), dirs.cuda(), **settings)
    assert torch.equal(on_gpu[0].cpu(), on_cpu[0])
    torch.testing.assert_close(on_gpu[1].cpu(), on_cpu[1])
    nerfacc_grid = NerfaccOccGrid(roi_aabb=torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=16, levels=2).cuda()
    nerfacc_grid.load_state_dict(grid.state_dict())
    by_nerfacc = nerfacc_grid.sampling(origins.cuda(), dirs.cuda(), **settings)[0]
    assert abs(by_nerfacc.numel() - on_cpu[0].numel()) <= 0.1 * on_cpu[0].numel()  # steps start elsewhere, same cells


def test_alpha_threshold_is_applied_as_given_not_lowered_to_the_mean_occupancy() -> None:
    """nerfacc lowers alpha_thre to the mean occupancy; in a sparse grid that keeps nearly transparent samples. Here
    the threshold is the caller's (the models offer nerfacc's rule as alpha_thre_cap)."""
    torch.manual_seed(0)
    grid = TorchOccGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=16, levels=2).train()
    grid.update_every_n_steps(step=0, occ_eval_fn=lambda x: ball_density(0.4)(x) * 0.1)  # a faint ball
    origins, dirs = rays_at_origin()
    faint = ball_density(0.4, value=0.5)  # alpha of one step: 1 - exp(-0.5 * 0.01) = 0.005

    def sigma_fn(t_starts, t_ends, ray_indices):
        return faint(origins[ray_indices] + dirs[ray_indices] * ((t_starts + t_ends) / 2)[:, None])[:, 0]

    assert grid.mean_occupancy() < 0.01  # the cap would bind: nerfacc would keep these samples
    kept = grid.sampling(origins, dirs, sigma_fn=sigma_fn, render_step_size=STEP, alpha_thre=0.01)[0]
    assert kept.numel() == 0  # every sample is fainter than 0.01
    capped = grid.mean_occupancy()
    kept = grid.sampling(origins, dirs, sigma_fn=sigma_fn, render_step_size=STEP, alpha_thre=capped)[0]
    assert kept.numel() > 0  # nerfacc's rule (alpha_thre_cap) keeps them
