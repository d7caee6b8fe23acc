"""Where a test view's rendering time goes, for a finished frinr-ngp run: the candidates the occupancy grid lets
through per ray and level, the march alone (compiled kernel against tensor ops), how many densities the front-to-back
pass evaluates against one pass over all of them, and how transparent the rays stay.

    .venv/bin/python -m benchmarks.render_profile outputs/sweep_captures/steps200/office/plain/run --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory holding config.yml (searched recursively)")
    parser.add_argument("--view", type=int, default=0, help="test view to render")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ray-stride", type=int, default=64, help="every n-th ray for the per-level statistics")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nerfstudio.utils.eval_utils import eval_setup

    from frinr_nerfstudio.method import kernels, samplers

    _, pipeline, _, _ = eval_setup(next(args.run.rglob("config.yml")), test_mode="test")
    model, grid = pipeline.model, pipeline.model.occupancy_grid
    camera = pipeline.datamanager.eval_dataset.cameras[args.view : args.view + 1]
    shares = [round(grid.binaries[level].float().mean().item(), 3) for level in range(grid.levels)]
    print("occupied share per level:", shares)

    rays = camera.generate_rays(camera_indices=0).flatten()[:: args.ray_stride]
    origins, directions, n = rays.origins, rays.directions, len(rays)
    with torch.no_grad():
        ray_indices, starts, ends = grid.sampling(
            origins, directions, render_step_size=model.render_step_size(), cone_angle=model.cone_angle(),
            near_plane=model.config.near_plane, far_plane=model.config.far_plane,
        )  # fmt: skip
        points = origins[ray_indices] + directions[ray_indices] * ((starts + ends) / 2)[:, None]
        level = grid._level_and_unit(points)[0]
        sigmas = model.field.density_fn(points)[:, 0]
        _, transmittance, alphas = samplers.render_weight_from_density(starts, ends, sigmas, ray_indices, n)
        depth = torch.zeros(n).index_add_(0, ray_indices, sigmas * (ends - starts))
    print(f"candidates per ray: {ray_indices.numel() / n:.1f}; per level: {torch.bincount(level).tolist()}")
    print(f"alpha >= alpha_thre: {(alphas >= model.alpha_threshold()).float().mean():.3f} of the candidates; "
          f"transmittance >= 1e-4: {(transmittance >= 1e-4).float().mean():.3f}")  # fmt: skip
    quartiles = torch.quantile(torch.exp(-depth), torch.tensor([0.25, 0.5, 0.75])).tolist()
    print("transmittance left at each ray's end, quartiles:", [f"{q:.2g}" for q in quartiles])

    all_rays = camera.generate_rays(camera_indices=0).flatten()  # the march alone, every ray of the view
    march = {"render_step_size": model.render_step_size(), "cone_angle": model.cone_angle(),
             "near_plane": model.config.near_plane, "far_plane": model.config.far_plane}  # fmt: skip
    for name, compiled in (("compiled kernel", True), ("tensor ops", False)):
        usable, kernels.usable = kernels.usable, (kernels.usable if compiled else lambda *tensors: False)
        start = time.perf_counter()
        with torch.no_grad():
            laid = grid.sampling(all_rays.origins, all_rays.directions, **march)[0].numel()
        kernels.usable = usable
        print(f"march ({name}): {time.perf_counter() - start:.2f} s for the view's {len(all_rays)} rays, {laid} steps")

    from frinr_nerfstudio.method.models import base  # the model's own name for the test, to swap it

    front_to_back, evaluated = base.visible_front_to_back, [0]

    def counted(ray_indices, starts, ends, n_rays, density_of, *rest, **kwargs):
        def density_counted(indices):
            evaluated[0] += indices.numel()
            return density_of(indices)

        return front_to_back(ray_indices, starts, ends, n_rays, density_counted, *rest, **kwargs)

    def one_pass(ray_indices, starts, ends, n_rays, density_of, alpha_thre, eps, chunk=1 << 18, **kwargs):
        evaluated[0] += ray_indices.numel()
        sigmas = torch.cat([density_of(i) for i in torch.arange(ray_indices.numel()).split(chunk)])
        return samplers.visible(starts, ends, sigmas, ray_indices, n_rays, alpha_thre, eps)

    for name, rule in (("front to back", counted), ("one pass", one_pass)):
        base.visible_front_to_back, evaluated[0] = rule, 0
        start = time.perf_counter()
        with torch.no_grad():
            model.get_outputs_for_camera(camera)
        print(f"{name}: {time.perf_counter() - start:.1f} s for the view, {evaluated[0] / 1e6:.2f} M densities")
    base.visible_front_to_back = front_to_back


if __name__ == "__main__":
    main()
