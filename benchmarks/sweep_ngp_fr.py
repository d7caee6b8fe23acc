"""Which FR settings should frinr-ngp default to? Test PSNR on lego_100 after a fixed number of steps, per seed.

At equal work an FR step costs about what a baseline step does (BENCHMARKS.md: 1.04× for the field's forward +
backward on the same samples), so a step budget stands in for the wall-clock one and, unlike it, is not shifted by
machine load; the gain is the mean over seeds of each variant's difference to the baseline run of the same seed.
Each run is ``frinr_nerfstudio.tools.budgeted`` in its own process; finished runs in ``--out`` are reused. Two jobs
of one thread each use this 2-core machine about as well as one job of two.

    .venv/bin/python -m benchmarks.sweep_ngp_fr --steps 400 --seeds 42 1 2 --jobs 2
    .venv/bin/python -m benchmarks.sweep_ngp_fr --seeds 42 1 --report   # tabulate what has run so far
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from benchmarks.nerf import DATA, apply, run_in_pool
from benchmarks.report import publish

PAPER = {"density_head.fr": False, "colour_head.fr": True}  # FR colour layer 1: L = H = 32, P = 64, alpha 0.01
VARIANTS: dict[str, dict] = {
    "baseline": {"density_head.fr": False, "colour_head.fr": False},
    "paper": PAPER,
    "alpha-0.05": PAPER | {"colour_head.fourier.alpha": 0.05},
    "density-layer-0": {"density_head.fr": True, "density_head.fr_layers": (0,), "colour_head.fr": True},  # default
    "density-layer-0-only": {"density_head.fr": True, "density_head.fr_layers": (0,), "colour_head.fr": False},
    # 32 inputs: at L = H = 32 four bases (f = 31 and 31/32 at φ = π/2, 3π/2) vanish; L = H = 30 has none
    "density-layer-0-L30-H30": {
        "density_head.fr": True,
        "density_head.fr_layers": (0,),
        "colour_head.fr": True,
        "density_head.fourier.low_freqs": 30,
        "density_head.fourier.high_freqs": 30,
    },
    "colour-layers-0-2": PAPER | {"colour_head.fr_layers": (0, 1, 2)},
    "alpha-0.002": PAPER | {"colour_head.fourier.alpha": 0.002},
}
"""Settings of frinr-ngp's ``NGPFieldConfig`` (dotted paths) per variant; every variant says which heads are FR."""


def run_one(job: tuple[str, int, int, Path, int]) -> dict:
    """Train and evaluate one variant for one seed in this (fresh) process."""
    variant, seed, steps, out, threads = job
    import torch

    from frinr_nerfstudio.tools.budgeted import BudgetRun, execute

    torch.set_num_threads(threads)
    result_path = out / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    run = BudgetRun(method="frinr-ngp", data=DATA / "lego_100", out=out, steps=steps, seed=seed)
    result = execute(run, lambda config: apply(config.pipeline.model.field, VARIANTS[variant]))
    result = {"variant": variant, "seed": seed, "psnr": result["psnr"], "ssim": result["ssim"],
              "samples_per_ray": result["train_samples_per_ray"], "seconds": result["train_seconds"]}  # fmt: skip
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{variant}, seed {seed}: {result['psnr']:.2f} dB", flush=True)
    return result


def table(results: list[dict], seeds: list[int]) -> str:
    """PSNR per variant and seed; the gain is the mean of per-seed differences to the baseline."""
    psnr = {(r["variant"], r["seed"]): r["psnr"] for r in results}
    samples = {(r["variant"], r["seed"]): r["samples_per_ray"] for r in results}
    header = "| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | − baseline (mean) | samples/ray |"
    rows = [header, "|---" * (len(seeds) + 3) + "|"]
    for variant in dict.fromkeys(r["variant"] for r in results):
        ran = [s for s in seeds if (variant, s) in psnr]
        cells = " | ".join(f"{psnr[variant, s]:.2f}" if s in ran else "–" for s in seeds)
        paired = [psnr[variant, s] - psnr["baseline", s] for s in ran if ("baseline", s) in psnr]
        gain = f"{statistics.mean(paired):+.2f} (n = {len(paired)})" if paired else "–"
        per_ray = statistics.mean(samples[variant, s] for s in ran)
        rows.append(f"| {variant} | {cells} | {gain} | {per_ray:.1f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/sweep_ngp_fr"))
    parser.add_argument("--report", action="store_true", help="train nothing: tabulate the finished runs in --out")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    jobs = [(v, s, args.steps, args.out / f"steps{args.steps}" / v / f"seed{s}")
            for s in args.seeds for v in args.variants]  # fmt: skip
    results = run_in_pool(run_one, jobs, args.jobs, report_only=args.report)  # report: variants need not run every seed
    body = (
        f"{table(results, args.seeds)}\n\nTest PSNR on lego_100 after {args.steps} steps (seeds as columns; a variant "
        "has a cell for each seed it ran). FR layers use L = H = 32, P = 64, alpha 0.01 unless the variant says "
        "otherwise; colour layer 1 is the colour MLP's hidden layer, density layer 0 the density MLP's input layer."
    )
    publish("ngp-fr-sweep", f"frinr-ngp: which layers are FR, and alpha ({args.steps} steps, lego_100)", body,
            dry_run=args.no_write)  # fmt: skip


if __name__ == "__main__":
    main()
