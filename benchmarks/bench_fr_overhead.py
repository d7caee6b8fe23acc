"""FR training overhead and folded inference cost of the paper's 2D network, in one process.

Width 256, 3 FR hidden layers (L=H=128, P=32), full batch of 256² pixels. Plain and FR steps are
interleaved so machine load affects both alike. Targets: FR step ≤ 1.25× plain; folded inference 1.00×.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.report import write_section
from frinr_core import MLPConfig, build_mlp, fold_fourier_layers
from frinr_core.tasks.fit2d import pixel_grid


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    coords = pixel_grid(args.side, args.side)
    target = torch.rand(len(coords), 3)
    models = {fr: build_mlp(2, 3, MLPConfig(arch="relu", fr=fr)) for fr in (False, True)}
    optimizers = {fr: torch.optim.Adam(m.parameters(), lr=1e-4) for fr, m in models.items()}

    def step(fr: bool):
        loss = torch.nn.functional.mse_loss(models[fr](coords), target)
        optimizers[fr].zero_grad()
        loss.backward()
        optimizers[fr].step()

    def infer(model):
        with torch.no_grad():
            model(coords)

    for fr in (False, True):
        step(fr)  # warm-up
    step_times = {False: [], True: []}
    for _ in range(args.rounds):
        for fr in (False, True):
            step_times[fr] += timed(lambda fr=fr: step(fr), 1)
    folded = fold_fourier_layers(models[True])
    infer_times = {"plain": [], "folded": []}
    for _ in range(args.rounds):
        infer_times["plain"] += timed(lambda: infer(models[False]), 1)
        infer_times["folded"] += timed(lambda: infer(folded), 1)

    plain, fr = statistics.median(step_times[False]), statistics.median(step_times[True])
    inf_plain, inf_folded = statistics.median(infer_times["plain"]), statistics.median(infer_times["folded"])
    body = f"""Width 256, 3 FR hidden layers (L=H=128, P=32, alpha 0.05), ReLU, full batch {args.side}² pixels,
median of {args.rounds} interleaved rounds.

| measure | plain | FR | ratio | target |
|---|---|---|---|---|
| training step (s) | {plain:.3f} | {fr:.3f} | {fr / plain:.2f}× | ≤ 1.25× |
| inference, FR folded into Linear (s) | {inf_plain:.3f} | {inf_folded:.3f} | {inf_folded / inf_plain:.2f}× | 1.00× |
"""
    write_section("fr-overhead", "FR overhead: 2D network step time and folded inference", body)


if __name__ == "__main__":
    main()
