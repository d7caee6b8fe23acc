"""What the NeRF benchmarks share: settings by dotted path, one-process-per-run pools, interleaved step timing."""

from __future__ import annotations

import copy
import functools
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from nerfstudio.engine.callbacks import TrainingCallbackLocation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def apply(config, overrides: dict) -> None:
    """Set ``overrides`` ({dotted path: value}) on a (nested dataclass) config, in place; unknown paths are errors.
    A dict on the way is entered by key (``optimizers.mlps.optimizer.lr``); a callable value maps the current one
    (``lambda lr: 3 * lr``)."""
    for path, value in overrides.items():
        *parents, name = path.split(".")
        target = functools.reduce(lambda node, key: node[key] if isinstance(node, dict) else getattr(node, key),
                                  parents, config)  # fmt: skip
        if not hasattr(target, name):
            raise KeyError(f"{type(config).__name__} has no setting {path}")
        setattr(target, name, value(getattr(target, name)) if callable(value) else value)


def _pooled(task: tuple[Callable, tuple, int]) -> dict:
    """One job in a fresh pool process: its result.json if an earlier run left one, else ``run_one(job)``'s, saved."""
    run_one, job, threads = task
    import torch

    torch.set_num_threads(threads)
    result_path = job[-1] / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    job[-1].mkdir(parents=True, exist_ok=True)
    result = run_one(job)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_in_pool(run_one: Callable, jobs: list[tuple], processes: int, report_only: bool = False) -> list[dict]:
    """``run_one(job)`` for every job without a result yet, each in a fresh process, ``processes`` at a time, the cores
    shared among them; the job's last element is its output directory, where its result.json is kept (a sweep
    stopped part-way redoes only what is missing). ``run_one`` must be importable (a module-level function).
    ``report_only``: just the finished results."""
    if report_only:
        return [json.loads((job[-1] / "result.json").read_text()) for job in jobs if (job[-1] / "result.json").exists()]
    threads = max(1, multiprocessing.cpu_count() // processes)
    with multiprocessing.get_context("spawn").Pool(processes, maxtasksperchild=1) as pool:
        return pool.map(_pooled, [(run_one, job, threads) for job in jobs], chunksize=1)


def make_trainer(method: str, scene: Path, recipe: Callable | None = None):
    """A set-up nerfstudio Trainer of ``method`` on the Blender scene ``scene``, on this machine's device."""
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips
    from frinr_nerfstudio.nerfstudio_fixes.machine import adapt_to_machine

    config = copy.deepcopy(all_methods[method])
    config.set_timestamp()
    config.output_dir, config.vis = Path("outputs/bench_overhead"), "tensorboard"
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=scene)
    adapt_to_machine(config)
    if recipe is not None:
        recipe(config)
    trainer = config.setup(local_rank=0, world_size=1)
    with offline_lpips():
        trainer.setup()
    return trainer


def run_step(trainer, step: int) -> tuple[float, dict]:
    """One training step after its callbacks (e.g. occupancy-grid updates): (seconds of the step, metrics)."""
    for callback in trainer.callbacks:
        callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    start = time.perf_counter()
    _, _, metrics = trainer.train_iteration(step)
    return time.perf_counter() - start, metrics


def interleaved_step_times(
    methods: tuple[str, ...], scene: Path, steps: int, warmup: int = 2, recipe: Callable | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per training step of each method, stepped in turn so that machine load hits all alike, and
    the median rays per step (a dynamic batch holds a fixed number of samples, so methods may differ in rays).

    Every method starts from the same seed and runs its training callbacks (e.g. occupancy-grid updates), so
    after the same number of steps each is in a comparable state; the first ``warmup`` steps are not timed.
    """
    trainers = {method: make_trainer(method, scene, recipe) for method in methods}
    times, rays = {method: [] for method in trainers}, {method: [] for method in trainers}
    for step in range(steps + warmup):
        for method, trainer in trainers.items():
            batch = trainer.pipeline.datamanager.get_train_rays_per_batch()
            seconds, _ = run_step(trainer, step)
            if step >= warmup:
                times[method].append(seconds)
                rays[method].append(batch)
    median = statistics.median
    return {m: median(values) for m, values in times.items()}, {m: median(values) for m, values in rays.items()}
