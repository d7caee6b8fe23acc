"""Baseline vs FR on Kodak at full resolution with random pixel batches, each arm at its tuned learning rate.

The regime the paper studies: a 768×512 image is far more signal than a width-256 MLP can memorize, so
the comparison measures how fast each network learns detail (spectral bias), not memorization. Every arm
is tuned on its own (the runner's successive halving, or an exhaustive --lr-sweep), so an FR gain cannot
be a learning-rate artifact.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.report import BENCHMARKS, cached_run, search_notes, write_section
from frinr_core import tuning
from frinr_core.mlp import FourierConfig, MLPConfig
from frinr_core.tasks.fit2d import Fit2d, Fit2dConfig, run
from frinr_core.train import TrainOptions

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def search_seconds(run: dict) -> str:
    """The seconds an arm's learning-rate search took ("-" when it was swept instead)."""
    return f"{run['search']['seconds']:.0f}" if "search" in run else "-"


def gain_summary(gains: dict[str, list[float]]) -> str:
    """FR − baseline per architecture over the images: mean ± standard deviation, min and max."""
    rows = []
    for arch, values in gains.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(
            f"| {arch} | {len(values)} | {statistics.mean(values):+.2f} ± {spread:.2f} | {min(values):+.2f} "
            f"| {max(values):+.2f} | {sum(v > 0 for v in values)} / {len(values)} |"
        )
    return "| arch | images | Δ PSNR mean ± std | min | max | FR ahead |\n|---|---|---|---|---|---|\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim05"])
    parser.add_argument("--archs", nargs="+", default=["pe"], choices=["relu", "pe", "siren"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--lr-sweep", default=None, help="exhaustive grid instead of the tuned comparison")
    parser.add_argument("--siren-lr-sweep", default=None, help="the same for SIREN")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_kodak"))
    parser.add_argument("--section", default="kodak")
    parser.add_argument("--results", type=Path, default=BENCHMARKS, help="markdown file to write the section to")
    parser.add_argument("--keep-finished", action="store_true", help="reuse runs made with these settings")
    args = parser.parse_args()

    rows, gains, searched = [], {}, []
    for image in args.images:
        for arch in args.archs:
            alpha = 0.01 if arch == "siren" else 0.05
            config = Fit2dConfig(
                image=KODAK / f"{image}.png", out=args.out / image / arch, compare=True, batch=args.batch,
                network=MLPConfig(arch=arch, fourier=FourierConfig(alpha=alpha)),
                train=TrainOptions(steps=args.steps, lr_sweep=args.siren_lr_sweep if arch == "siren" else args.lr_sweep,
                                   eval_every=args.steps),
            )  # fmt: skip
            settings = {
                "image": image, "arch": arch, "steps": args.steps, "batch": args.batch,
                "rates": config.train.lr_sweep or tuning.describe(Fit2d.default_lr),
            }  # fmt: skip
            baseline, fr = cached_run(config.out, settings, lambda c=config: run(c), args.keep_finished)["runs"]
            gains.setdefault(arch, []).append(fr["psnr"] - baseline["psnr"])
            searched += [(f"{image} {r['name']}", r) for r in (baseline, fr)]
            rows.append(
                f"| {image} | {arch} | {baseline['lr']:g} | {baseline['psnr']:.2f} | {fr['lr']:g} | {fr['psnr']:.2f} "
                f"| {fr['psnr'] - baseline['psnr']:+.2f} | {baseline['seconds']:.0f} / {fr['seconds']:.0f} "
                f"| {search_seconds(baseline)} / {search_seconds(fr)} |"
            )
    chosen = (
        f"its best learning rate of {{{args.lr_sweep}}} (SIREN {{{args.siren_lr_sweep}}})"
        if args.lr_sweep
        else f"its own tuned learning rate ({tuning.describe(Fit2d.default_lr)})"
    )
    body = (
        f"Full-resolution Kodak (768×512), {args.batch} random pixels per step, {args.steps} Adam steps, width 256, "
        f"3 hidden layers (FR: L=H=128, P=32, alpha 0.05 ReLU/PE, 0.01 SIREN). Each arm at {chosen}. PSNR of the "
        "clipped 8-bit reconstruction.\n\n"
        "| image | arch | baseline lr | baseline PSNR | FR lr | FR PSNR | Δ PSNR | train s (base / FR) "
        "| search s (base / FR) |\n|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nFR − baseline per architecture over the images (std: sample standard deviation):\n\n"
        + gain_summary(gains)
    )
    body += search_notes(searched)
    rates = "each arm's best rate of a fixed grid" if args.lr_sweep else "tuned learning rates"
    title = f"Baseline vs FR on Kodak (full resolution, pixel batches, {rates})"
    write_section(args.section, title, body, args.results)


if __name__ == "__main__":
    main()
