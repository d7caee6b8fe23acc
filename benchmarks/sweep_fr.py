"""Which FR settings should frinr-ngp and frinr-dvgo default to? Test PSNR on lego after a fixed number of steps,
per seed, each variant beside the baseline of the same seed.

A step budget is not shifted by machine load, unlike a wall-clock one, and stands in for it only where an FR step
costs what a baseline step does: the FR layer itself does (BENCHMARKS.md: 1.04× for frinr-ngp's field, 0.985× for
DVGO's fine-stage step), but a variant whose density keeps more samples per ray has dearer steps, so the table gives
samples per ray (over the run, and over its last tenth) and train seconds beside PSNR. Each run is
``frinr_nerfstudio.tools.budgeted`` in its own process (DVGO with ``bench_dvgo.cpu_recipe``); finished runs in
``--out`` are reused. Two jobs of one thread each use this 2-core machine about as well as one job of two.

    .venv/bin/python -m benchmarks.sweep_fr --method frinr-ngp --steps 400 --seeds 42 1 2 --jobs 2
    .venv/bin/python -m benchmarks.sweep_fr --method frinr-dvgo --scene lego_100 --steps 1000 --seeds 42
    .venv/bin/python -m benchmarks.sweep_fr --method frinr-dvgo --seeds 42 1 --report   # tabulate what has run
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.nerf import DATA, apply, run_in_pool
from benchmarks.report import publish

NGP = "pipeline.model.field."
NGP_PAPER = {NGP + "density_head.fr": False, NGP + "colour_head.fr": True}  # colour layer 1: L=H=32, P=64, alpha 0.01
NGP_DENSITY_0 = {NGP + "density_head.fr": True, NGP + "density_head.fr_layers": (0,), NGP + "colour_head.fr": True}
DVGO = "pipeline.model.field.rgbnet."
DVGO_PAPER = {DVGO + "fr": True, DVGO + "fr_layers": None, DVGO + "fourier.alpha": 0.05}  # hidden layer, L=H=P=64


def mlp_lr(scale: float) -> dict:
    """DVGO's MLP learning rate (start and end of its decay) times ``scale``."""
    return {f"optimizers.mlps.{key}": (lambda lr: lr * scale) for key in ("optimizer.lr", "scheduler.lr_final")}


VARIANTS: dict[str, dict[str, dict]] = {
    "frinr-ngp": {
        "baseline": {NGP + "density_head.fr": False, NGP + "colour_head.fr": False},
        "paper": NGP_PAPER,
        "alpha-0.05": NGP_PAPER | {NGP + "colour_head.fourier.alpha": 0.05},
        "density-layer-0": NGP_DENSITY_0,  # the default
        "density-layer-0-only": NGP_DENSITY_0 | {NGP + "colour_head.fr": False},
        # 32 inputs: at L = H = 32 four bases (f = 31 and 31/32 at φ = π/2, 3π/2) vanish; L = H = 30 has none
        "density-layer-0-L30-H30": NGP_DENSITY_0
        | {NGP + "density_head.fourier.low_freqs": 30, NGP + "density_head.fourier.high_freqs": 30},
        "colour-layers-0-2": NGP_PAPER | {NGP + "colour_head.fr_layers": (0, 1, 2)},
        "alpha-0.002": NGP_PAPER | {NGP + "colour_head.fourier.alpha": 0.002},
    },
    "frinr-dvgo": {
        "baseline": {DVGO + "fr": False},
        "baseline-lr-x3": {DVGO + "fr": False} | mlp_lr(3.0),
        "paper": DVGO_PAPER,
        "paper-lr-x3": DVGO_PAPER | mlp_lr(3.0),
        "paper-lr-x0.3": DVGO_PAPER | mlp_lr(0.3),
        "alpha-0.01": DVGO_PAPER | {DVGO + "fourier.alpha": 0.01},  # the default since this sweep
        "alpha-0.25": DVGO_PAPER | {DVGO + "fourier.alpha": 0.25},
        "input-layer": DVGO_PAPER | {DVGO + "fr_layers": (0,)},  # FR sees the k0 features and view encoding
        "layers-0-1": DVGO_PAPER | {DVGO + "fr_layers": (0, 1)},
    },
}
"""Settings (dotted paths from the ``TrainerConfig``) per method and variant; every variant says which layers are
FR. Under Adam, alpha scales the step FR takes in W as the learning rate does, so the two are swept together."""


def run_one(job: tuple[str, str, str, int, int, Path]) -> dict:
    """Train and evaluate one variant for one seed in this (fresh) process."""
    method, scene, variant, seed, steps, out = job
    from benchmarks.bench_dvgo import cpu_recipe
    from frinr_nerfstudio.tools.budgeted import BudgetRun, execute

    def recipe(config) -> None:
        if method == "frinr-dvgo":
            cpu_recipe(config)
        apply(config, VARIANTS[method][variant])

    result = execute(BudgetRun(method=method, data=DATA / scene, out=out, steps=steps, seed=seed), recipe)
    tail = [per_ray for _, per_ray in result["samples_curve"][-max(1, steps // 10) :]]
    result = {"variant": variant, "seed": seed, "psnr": result["psnr"], "ssim": result["ssim"],
              "samples_per_ray": result["train_samples_per_ray"], "late_samples_per_ray": statistics.mean(tail),
              "seconds": result["train_seconds"], "curve": result["curve"][:: max(1, steps // 50)],
              "samples_curve": result["samples_curve"][:: max(1, steps // 50)]}  # fmt: skip
    print(f"{method} {scene} {variant}, seed {seed}: {result['psnr']:.2f} dB", flush=True)
    return result


def table(results: list[dict], seeds: list[int]) -> str:
    """PSNR per variant and seed; the gain is the mean of per-seed differences to the baseline."""
    by = {(r["variant"], r["seed"]): r for r in results}
    header = (
        "| variant | " + " | ".join(f"seed {s}" for s in seeds)
        + " | − baseline (mean) | samples/ray | samples/ray, last tenth | train s |"
    )  # fmt: skip
    rows = [header, "|---" * (len(seeds) + 5) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in results):
        ran = [by[variant, s] for s in seeds if (variant, s) in by]
        cells = " | ".join(f"{by[variant, s]['psnr']:.2f}" if (variant, s) in by else "–" for s in seeds)
        paired = [r["psnr"] - by["baseline", r["seed"]]["psnr"] for r in ran if ("baseline", r["seed"]) in by]
        gain = f"{statistics.mean(paired):+.2f} (n = {len(paired)})" if paired else "–"
        late = [r["late_samples_per_ray"] for r in ran if "late_samples_per_ray" in r]  # older runs lack it
        rows.append(
            f"| {variant} | {cells} | {gain} | {statistics.mean(r['samples_per_ray'] for r in ran):.1f} | "
            f"{f'{statistics.mean(late):.1f}' if late else 'n/a'} | {statistics.mean(r['seconds'] for r in ran):.0f} |"
        )
    return "\n".join(rows)


def over_training(results: list[dict], steps: int, key: str, what: str) -> str:
    """``what`` over the run, mean over seeds at five marks: each run's ``key`` records ``[step, …, value]``, and a
    mark averages the records within a twentieth of the run of it (the training batch's PSNR is noisy)."""
    marks = [round(steps * f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
    curves: dict[str, list[dict[int, float]]] = {}
    for r in results:
        if r.get(key):  # runs from before it was recorded have none
            curves.setdefault(r["variant"], []).append({entry[0]: entry[-1] for entry in r[key]})
    if not curves:
        return ""

    def at(curve: dict[int, float], mark: int) -> float:
        near = [v for s, v in curve.items() if abs(s - mark) <= steps / 20]
        return statistics.mean(near) if near else curve[min(curve, key=lambda s: abs(s - mark))]

    rows = ["| variant | " + " | ".join(f"step {m}" for m in marks) + " |", "|---" * (len(marks) + 1) + "|"]
    for variant, runs in curves.items():
        cells = " | ".join(f"{statistics.mean(at(c, m) for c in runs):.1f}" for m in marks)
        rows.append(f"| {variant} (n = {len(runs)}) | {cells} |")
    return f"{what} during the runs:\n\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=list(VARIANTS), default="frinr-ngp")
    parser.add_argument("--scene", default="lego_100", help="a folder of the shared data (blender-data)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--variants", nargs="+", help="default: every variant of the method")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/sweep_fr"))
    parser.add_argument("--report", action="store_true", help="train nothing: tabulate the finished runs in --out")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    variants = args.variants or list(VARIANTS[args.method])
    if unknown := set(variants) - VARIANTS[args.method].keys():
        parser.error(f"no variant {', '.join(sorted(unknown))} for {args.method}: {', '.join(VARIANTS[args.method])}")
    out = args.out / args.method / args.scene / f"steps{args.steps}"
    jobs = [(args.method, args.scene, v, s, args.steps, out / v / f"seed{s}") for s in args.seeds for v in variants]
    results = run_in_pool(run_one, jobs, args.jobs, report_only=args.report)  # report: variants need not run every seed
    fr = {"frinr-ngp": "FR layers use L = H = 32, P = 64, alpha 0.01 unless the variant says otherwise; colour "
          "layer 1 is the colour MLP's hidden layer, density layer 0 the density MLP's input layer.",
          "frinr-dvgo": "FR layers use L = H = 64, P = 64, alpha 0.05 unless the variant says otherwise; layer 1 is "
          "the rgbnet's hidden layer, layer 0 its input (the k0 features and the view encoding); lr ×k scales the "
          "MLP learning rate (1e-3, decaying) of FR and baseline alike; DVGO's CPU recipe (bench_dvgo)."}  # fmt: skip
    body = (
        f"{table(results, args.seeds)}\n\nTest PSNR on {args.scene} after {args.steps} steps (seeds as columns; a "
        f"variant has a cell for each seed it ran). {fr[args.method]}"
    )
    for key, what in (("samples_curve", "Samples per ray of the training batch"), ("curve", "Training-batch PSNR")):
        if curve := over_training(results, args.steps, key, what):
            body += f"\n\n{curve}"
    section = "ngp-fr-sweep" if args.method == "frinr-ngp" else f"dvgo-fr-sweep-{args.scene}"
    title = f"{args.method}: which layers are FR, alpha, learning rate ({args.steps} steps, {args.scene})"
    publish(section, title, body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
