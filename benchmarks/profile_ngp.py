"""Where a frinr-ngp training step goes on this CPU: rays per batch, marched samples, sampler time (a diagnostic).

The dynamic batch fills a fixed number of kept samples per step, so rays/s is set by how many candidate steps the
sampler lays and the density test goes through to keep them. Printed every ``--every`` steps; the notes at the top of
BENCHMARKS.md quote it. Since 2026-12-06 the model runs the density test itself, so "sampler s" is the march alone
(``benchmarks.profile_step`` times every operator).

    .venv/bin/python -m benchmarks.profile_ngp --steps 250                    # defaults (blender-data: no contraction)
    .venv/bin/python -m benchmarks.profile_ngp --steps 250 --contraction on   # frinr-ngp before 2026-11-26
"""

from __future__ import annotations

import argparse
import time

from benchmarks.nerf import DATA, make_trainer, run_step
from frinr_nerfstudio.method import samplers


def instrument_sampler() -> dict:
    """Record, per sampling call: candidate steps, steps in occupied cells, and seconds spent in the sampler."""
    stats: dict = {}
    march, occupied, sampling = (
        samplers._Marcher.steps_with_midpoints_in,
        samplers.TorchOccGrid.occupied,
        samplers.TorchOccGrid.sampling,
    )

    def counted_march(*args, **kwargs):
        result = march(*args, **kwargs)
        stats["candidates"] = result[0].numel()
        return result

    def counted_occupied(self, points):
        result = occupied(self, points)
        stats["in occupied cells"] = int(result.sum())
        return result

    def timed_sampling(self, *args, **kwargs):
        start = time.perf_counter()
        result = sampling(self, *args, **kwargs)
        stats["sampler s"] = round(time.perf_counter() - start, 2)
        return result

    samplers._Marcher.steps_with_midpoints_in = counted_march
    samplers.TorchOccGrid.occupied, samplers.TorchOccGrid.sampling = counted_occupied, timed_sampling
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="frinr-ngp")
    parser.add_argument("--scene", default="lego_100")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--contraction", choices=["auto", "on", "off"], default="auto")
    args = parser.parse_args()
    stats = instrument_sampler()

    def recipe(config) -> None:
        config.pipeline.model.contraction = args.contraction

    trainer = make_trainer(args.method, DATA / args.scene, recipe)
    for step in range(args.steps):
        rays = trainer.pipeline.datamanager.get_train_rays_per_batch()
        seconds, metrics = run_step(trainer, step)
        if step % args.every == 0 or step == args.steps - 1:
            kept = int(metrics["num_samples_per_batch"])
            print(f"step {step}: {seconds:.2f} s, {rays} rays, {kept} samples kept", stats, flush=True)


if __name__ == "__main__":
    main()
