"""frinr-ngp on lego_100, this CPU: train rays/s and test PSNR after the same wall-clock budget beside
frinr-ngp-baseline and nerfacto; FR / baseline step time; test-view render time with the FR heads folded.

The comparison is `frinr compare` itself (reusing finished runs in ``--out``), so the table is what a user gets.

    .venv/bin/python -m benchmarks.bench_ngp --minutes 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchmarks.nerf import DATA, interleaved_step_times
from benchmarks.report import publish

METHODS = ("frinr-ngp", "frinr-ngp-baseline", "nerfacto")


def table(results: list[dict]) -> str:
    reference = next((r for r in results if r["method"] == "nerfacto" and r["status"] == "ok"), None)
    header = "| method | test PSNR | SSIM | steps | train rays/s | × nerfacto rays/s | peak MB | params |"
    rows = [header, "|---" * 8 + "|"]
    for r in results:
        if r["status"] != "ok":
            rows.append(f"| {r['method']} | failed: {r['error']} |||||||")
            continue
        speedup = f"{r['train_rays_per_second'] / reference['train_rays_per_second']:.1f}×" if reference else "n/a"
        rows.append(
            f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['steps']} | {r['train_rays_per_second']} | "
            f"{speedup} | {r['peak_memory_mb']} | {r['params']:,} |"
        )
    return "\n".join(rows)


def render_times(fr_config: Path, baseline_config: Path, rounds: int) -> str:
    """Seconds to render the first test view: FR as trained, FR folded into plain layers, and the baseline."""
    from nerfstudio.utils.eval_utils import eval_setup

    from frinr_core import fold_fourier_layers
    from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips

    with offline_lpips():
        pipelines = {name: eval_setup(path, test_mode="test")[1] for name, path in
                     (("FR", fr_config), ("FR folded", fr_config), ("baseline", baseline_config))}  # fmt: skip
    fold_fourier_layers(pipelines["FR folded"].model)
    camera = pipelines["FR"].datamanager.eval_dataset.cameras[0:1]
    times = {name: [] for name in pipelines}
    with torch.no_grad():
        for _ in range(rounds):
            for name, pipeline in pipelines.items():
                start = time.perf_counter()
                pipeline.model.get_outputs_for_camera(camera)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    cells = " | ".join(f"{name} {seconds:.2f} s" for name, seconds in medians.items())
    return f"Rendering test view 0 ({camera.width.item()}×{camera.height.item()}, median of {rounds}): {cells}."


def field_step_times(samples: int, rounds: int) -> dict[str, float]:
    """Median seconds of a forward + backward pass of frinr-ngp's field, FR and baseline, on the same ``samples``
    points and directions: FR's cost at equal work (a dynamic-batch step's rays follow each model's geometry)."""
    from nerfstudio.cameras.rays import Frustums, RaySamples
    from nerfstudio.configs.method_configs import all_methods

    aabb = torch.tensor([[-1.5] * 3, [1.5] * 3])
    fields = {m: all_methods[m].pipeline.model.field.setup(aabb=aabb) for m in METHODS[:2]}
    gen = torch.Generator().manual_seed(0)
    positions = (torch.rand(samples, 1, 3, generator=gen) * 2 - 1) * 1.5
    directions = torch.nn.functional.normalize(torch.randn(samples, 1, 3, generator=gen), dim=-1)
    frustums = Frustums(positions, directions, *(torch.zeros(samples, 1, 1) for _ in range(3)))
    ray_samples = RaySamples(frustums=frustums)
    times = {m: [] for m in fields}
    for round_ in range(rounds + 1):  # round 0 warms up (the hash-grid kernel's first call, allocations)
        for method, field in fields.items():
            start = time.perf_counter()
            outputs = field(ray_samples)
            sum(value.sum() for value in outputs.values()).backward()
            if round_:
                times[method].append(time.perf_counter() - start)
    return {method: statistics.median(values) for method, values in times.items()}


def main() -> None:
    from frinr_nerfstudio.tools.compare import CompareConfig, run

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--scene", default="lego_100")
    parser.add_argument("--out", type=Path, default=Path("outputs/compare_lego100"))
    parser.add_argument("--overhead-steps", type=int, default=16, help="timed interleaved FR / baseline steps")
    parser.add_argument("--overhead-warmup", type=int, default=32, help="untimed steps first (grid carved)")
    parser.add_argument("--render-rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print the results, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    compare = CompareConfig(methods=METHODS, data=DATA / args.scene, minutes=args.minutes, out=args.out)
    results = run(compare)
    budget = (
        f"Budget: {args.minutes} min of training per method (evaluation not counted), `frinr compare` defaults "
        f"(seed {compare.seed}, each method's own batch), test PSNR on the {args.scene} test split."
    )
    body = [table(results), budget]
    times, rays = interleaved_step_times(
        METHODS[:2], DATA / args.scene, args.overhead_steps, warmup=args.overhead_warmup
    )
    fr, base = times[METHODS[0]], times[METHODS[1]]
    fr_rays, base_rays = rays[METHODS[0]], rays[METHODS[1]]
    per_ray = (fr / fr_rays) / (base / base_rays)
    body.append(
        f"Step time, FR / baseline (steps {args.overhead_warmup}–{args.overhead_warmup + args.overhead_steps} "
        f"interleaved, medians): {fr:.3f} s / {base:.3f} s = {fr / base:.3f}×, with {fr_rays:.0f} / "
        f"{base_rays:.0f} rays per step (each step holds 2¹⁸ samples): time per ray {per_ray:.3f}×."
    )
    field_times = field_step_times(2**18, rounds=args.render_rounds)
    fr_field, base_field = (field_times[m] for m in METHODS[:2])
    body.append(
        f"Field forward + backward on the same 2¹⁸ samples (median of {args.render_rounds}, interleaved): FR "
        f"{fr_field:.3f} s, baseline {base_field:.3f} s; FR's extra {fr_field - base_field:.3f} s is "
        f"{(fr_field - base_field) / base:.1%} of a baseline step, so at equal work an FR step takes "
        f"{(base + fr_field - base_field) / base:.3f}× the baseline's (target ≤ 1.05×)."
    )
    by_method = {r["method"]: r for r in results if r["status"] == "ok"}
    if {"frinr-ngp", "frinr-ngp-baseline"} <= by_method.keys():
        configs = (Path(by_method[m]["config"]) for m in METHODS[:2])
        body.append(render_times(*configs, rounds=args.render_rounds))
    title = "frinr-ngp vs frinr-ngp-baseline vs nerfacto on lego_100, same wall-clock budget"
    publish("ngp", title, "\n\n".join(body), dry_run=args.no_write)


if __name__ == "__main__":
    main()
