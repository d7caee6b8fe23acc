"""Where a training step's time goes, by operator (torch's profiler), continuing a finished run from its checkpoint.

A trained field is what a CPU budget spends most of its steps on (a fresh one is hazy and keeps more samples per
ray), so this resumes a run's last checkpoint with its own config, warms up, and profiles a few steps, occupancy-grid
refreshes included. Single-threaded by default, as the benchmarks' training processes.

    .venv/bin/python -m benchmarks.profile_step outputs/captures/maryrose/seed42/frinr-ngp/run --steps 20

A run trained before 2026-12-06 resumes its checkpoint's unfused Adam (an optimizer's state keeps its settings);
``--fused`` switches it to the fused step every frinr method now uses.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import yaml
from torch.profiler import profile

from benchmarks.nerf import run_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory holding config.yml and a checkpoint (searched)")
    parser.add_argument("--steps", type=int, default=20, help="steps profiled, after --warmup steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fused", action="store_true", help="fused Adam even if the checkpoint's state is unfused")
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips

    config_path = next(args.run.rglob("config.yml"))
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    config.load_dir = config_path.parent / "nerfstudio_models"
    config.output_dir, config.vis = Path("/tmp"), "tensorboard"  # writes nothing into the run
    trainer = config.setup(local_rank=0, world_size=1)
    with offline_lpips():
        trainer.setup()
    if args.fused:
        for optimizer in trainer.optimizers.optimizers.values():
            for group in optimizer.param_groups:
                group["fused"] = True
    first = trainer._start_step
    for step in range(first, first + args.warmup):
        run_step(trainer, step)
    seconds, samples = [], []
    with profile() as profiler:
        for step in range(first + args.warmup, first + args.warmup + args.steps):
            elapsed, metrics = run_step(trainer, step)
            seconds.append(elapsed)
            samples.append(float(metrics.get("num_samples_per_batch", 0)))
    rays = trainer.pipeline.datamanager.get_train_rays_per_batch()
    print(f"median step {statistics.median(seconds):.3f} s, {rays} rays in the last batch, "
          f"{statistics.median(samples):.0f} samples kept per step; per operator over {args.steps} steps:")  # fmt: skip
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
