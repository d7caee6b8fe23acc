"""frinr-dvgo vs frinr-dvgo-baseline vs frinr-ngp on lego after the same wall-clock budget, on this CPU.

Each method trains in its own process through :mod:`frinr_nerfstudio.tools.budgeted` (same seed, same budget,
evaluated on the test split); the DVGO methods use :func:`cpu_recipe`, DVGO's schedule shrunk to what a
CPU does in minutes (DVGO's defaults — 25k steps of 8192 rays on 100³/160³ grids — take hours here).
Reports test PSNR / SSIM, train rays/s, seconds per step (FR / baseline ratio, target ≤ 1.05×) and peak memory.

    .venv/bin/python -m benchmarks.bench_dvgo --minutes 10 --scenes lego_100 lego_200
    .venv/bin/python -m benchmarks.bench_dvgo --minutes 0.5 --scenes lego_100 --no-write   # smoke run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.nerf import DATA, interleaved_step_times
from benchmarks.report import publish

METHODS = ("frinr-dvgo", "frinr-dvgo-baseline", "frinr-ngp")


def cpu_recipe(config) -> None:
    """DVGO's coarse-to-fine schedule for a few CPU minutes: 1024 rays per step, 48³ coarse grid for 100 steps
    (alpha_init 1e-4 so that geometry appears within them), then a fine grid doubling twice to 80³."""
    model = config.pipeline.model
    config.pipeline.datamanager.train_num_rays_per_batch = 1024
    model.coarse.voxels, model.coarse.alpha_init, model.coarse_steps = 48**3, 1e-4, 100
    model.fine.voxels, model.upscale_steps, model.mask_resolution = 80**3, (50, 100), 80
    model.mask_update_every = 100


def run_one(argv: list[str]) -> int:
    """One budgeted run (``python -m benchmarks.bench_dvgo run --method ... <budgeted options>``)."""
    from frinr_nerfstudio.tools import budgeted

    configure = budgeted.configure

    def with_recipe(run):
        config = configure(run)
        if run.method.startswith("frinr-dvgo"):
            cpu_recipe(config)
        return config

    budgeted.configure = with_recipe
    return budgeted.main(argv)


def step_overhead(scene: Path, steps: int) -> str:
    """FR / baseline fine-stage step time, interleaved in one process so machine load hits both alike."""

    def fine_stage_only(config) -> None:
        cpu_recipe(config)
        config.pipeline.model.coarse_steps, config.pipeline.model.upscale_steps = 0, ()  # fine stage at 80^3

    times, _ = interleaved_step_times(METHODS[:2], scene, steps, recipe=fine_stage_only)
    fr, base = (times[m] for m in METHODS[:2])
    return (
        f"Fine-stage step (80³ grids, 1024 rays, median of {steps} interleaved): FR {fr:.3f} s, "
        f"baseline {base:.3f} s, ratio {fr / base:.3f}× (target ≤ 1.05×)"
    )


def samples_per_second(result: dict) -> float | None:
    """Marched samples trained per second (None for runs from before samples per ray were recorded)."""
    per_ray = result.get("train_samples_per_ray")
    return result["train_rays_per_second"] * per_ray if per_ray else None


def table(results: list[dict]) -> str:
    columns = "scene method test-PSNR SSIM steps train-rays/s samples/ray s/step µs/sample peak-MB".split()
    rows = ["| " + " | ".join(c.replace("-", " ") for c in columns) + " |", "|---" * len(columns) + "|"]
    for r in results:
        if r.get("status") != "ok":
            rows.append(f"| {r['scene']} | {r['method']} | failed: {r.get('error', '?')} |||||||||")
            continue
        per_step = r["train_seconds"] / r["steps"]
        per_ray, rate = r.get("train_samples_per_ray"), samples_per_second(r)
        per_sample = f"{1e6 / rate:.2f}" if rate else "n/a"
        rows.append(
            f"| {r['scene']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['steps']} | "
            f"{r['train_rays_per_second']} | {per_ray or 'n/a'} | {per_step:.3f} | {per_sample} | "
            f"{r['peak_memory_mb']} |"
        )
    return "\n".join(rows)


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        sys.exit(run_one(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--scenes", nargs="+", default=["lego_100", "lego_200"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_dvgo"))
    parser.add_argument("--overhead-steps", type=int, default=10, help="interleaved FR / baseline steps (0: skip)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument(
        "--keep-finished", action="store_true", help="reuse OUT/<scene>/<method>/result.json of an earlier ok run"
    )
    parser.add_argument("--only-finished", action="store_true", help="tabulate existing results, train nothing new")
    args = parser.parse_args()
    results = []
    for scene in args.scenes:
        for method in args.methods:
            out = args.out / scene / method
            finished = out / "result.json"
            if args.only_finished and not finished.exists():
                results.append({"scene": scene, "method": method, "status": "not run", "error": "not run"})
                continue
            kept = args.keep_finished and finished.exists() and json.loads(finished.read_text())["status"] == "ok"
            if not (args.only_finished or kept):
                command = [sys.executable, "-m", "benchmarks.bench_dvgo", "run", "--method", method]
                command += ["--data", str(DATA / scene), "--minutes", str(args.minutes), "--out", str(out)]
                subprocess.run(command, check=False)
            result = json.loads(finished.read_text())
            results.append({"scene": scene, **result})
    body = table(results)
    ratios = []
    for scene in args.scenes:
        by_method = {r["method"]: r for r in results if r["scene"] == scene and r.get("status") == "ok"}
        if {"frinr-dvgo", "frinr-dvgo-baseline"} <= by_method.keys():
            fr, base = (by_method[m] for m in METHODS[:2])
            step = (fr["train_seconds"] / fr["steps"]) / (base["train_seconds"] / base["steps"])
            line = f"{scene}: FR / baseline mean step time over the budget {step:.3f}×"
            if samples_per_second(fr) and samples_per_second(base):
                line += f", per sample {samples_per_second(base) / samples_per_second(fr):.3f}×"
            ratios.append(line)
    if args.overhead_steps:
        ratios.append(step_overhead(DATA / args.scenes[0], args.overhead_steps))
    body += "\n\n" + "\n\n".join(ratios) + f"\n\nBudget {args.minutes} min per method; DVGO methods: `cpu_recipe`."
    names = {"frinr-dvgo": "FR", "frinr-dvgo-baseline": "baseline", "frinr-ngp": "frinr-ngp"}
    title = f"DirectVoxGO: {' vs '.join(names[m] for m in args.methods)}, same wall-clock budget"
    publish("dvgo", title, body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
