"""Train one nerfstudio method under a step or wall-clock budget, then evaluate it on the test split.

`frinr compare` runs this once per method, each in its own process, so a crash or an out-of-memory in
one method cannot take the others down and each process's peak memory is that method's alone. It
writes ``result.json`` (status ``ok`` with metrics, or ``failed`` with a one-line error).

    python -m frinr_nerfstudio.tools.budgeted --method nerfacto --data DIR --steps 500 --out OUT/nerfacto
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from nerfstudio.engine.trainer import Trainer, TrainerConfig

from frinr_core.errors import InputError, first_line
from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips
from frinr_nerfstudio.nerfstudio_fixes.machine import adapt_to_machine


@dataclass
class BudgetRun:
    """One method, one budget, one process."""

    method: str
    data: Path
    out: Path
    dataparser: str = "blender-data"
    steps: int | None = None
    minutes: float | None = None
    seed: int = 42
    rays_per_batch: int | None = None
    """Override the method's training rays per batch (same for every method of a comparison)."""
    downscale: int | None = None
    """Image downscale factor, for dataparsers that have one (nerfstudio-data reads images_N/); None: the parser's."""
    eval_views: int | None = None
    """Evaluate on this many test views, evenly spaced over the test split (None: all of them)."""

    def check(self) -> None:
        """Impossible budgets are one line, here and in ``frinr compare`` before any child starts."""
        if (self.steps is None) == (self.minutes is None):
            raise InputError("give exactly one budget: --steps N or --minutes M")
        if (self.steps is not None and self.steps < 1) or (self.minutes is not None and not self.minutes > 0):
            raise InputError("the budget must be positive")
        for name in ("rays_per_batch", "downscale", "eval_views"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")

    def argv(self) -> list[str]:
        """This run as the command line of a child process (``python -m frinr_nerfstudio.tools.budgeted ...``)."""
        args = []
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is not None:
                args += [f"--{item.name.replace('_', '-')}", str(value)]
        return args


class BudgetTrainer(Trainer):
    """nerfstudio's Trainer that records a learning curve and stops itself when the time budget is spent."""

    budget_seconds: float = float("inf")

    def setup(self, *args, **kwargs) -> None:
        super().setup(*args, **kwargs)
        self.train_seconds, self.train_rays, self.train_samples, self.curve = 0.0, 0, 0, []
        self.samples_curve: list[tuple[int, float]] = []  # (step, samples per ray of its batch): the work per step

    def train_iteration(self, step: int):
        start = time.perf_counter()
        rays = self.pipeline.datamanager.get_train_rays_per_batch()
        loss, loss_dict, metrics_dict = super().train_iteration(step)
        self.train_seconds += time.perf_counter() - start
        self.train_rays += rays
        if "num_samples_per_batch" in metrics_dict:  # models that march samples say how many (cost per sample)
            self.train_samples += int(metrics_dict["num_samples_per_batch"])
            self.samples_curve.append((step + 1, round(int(metrics_dict["num_samples_per_batch"]) / rays, 2)))
        if "psnr" in metrics_dict:  # PSNR of the training batch: a cheap, noisy learning curve
            psnr = float(torch.as_tensor(metrics_dict["psnr"]).detach())
            self.curve.append((step + 1, round(self.train_seconds, 3), psnr))
        if self.train_seconds >= self.budget_seconds:
            self.stop_training = True  # the loop exits before the next step; _after_train saves the checkpoint
        return loss, loss_dict, metrics_dict


def configure(run: BudgetRun):
    """The method's TrainerConfig with the comparison's data, seed, budget and this machine's device."""
    from nerfstudio.configs.dataparser_configs import all_dataparsers
    from nerfstudio.configs.method_configs import all_methods

    if run.method not in all_methods:
        raise InputError(f"unknown method {run.method!r}; `ns-train --help` lists the registered ones")
    if run.dataparser not in all_dataparsers:
        raise InputError(f"unknown dataparser {run.dataparser!r}; choose from {', '.join(all_dataparsers)}")
    config = copy.deepcopy(all_methods[run.method])
    config.output_dir, config.experiment_name, config.timestamp = run.out, "run", "latest"
    config.pipeline.datamanager.dataparser = copy.deepcopy(all_dataparsers[run.dataparser])
    config.pipeline.datamanager.data = run.data
    config.machine.seed, config.vis = run.seed, "tensorboard"
    config.max_num_iterations = run.steps or 10**9
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 10**9
    config.steps_per_save, config.save_only_latest_checkpoint = 10**9, True
    if run.rays_per_batch:
        config.pipeline.datamanager.train_num_rays_per_batch = run.rays_per_batch
    if run.downscale is not None:
        parser = config.pipeline.datamanager.dataparser
        if not hasattr(parser, "downscale_factor"):
            raise InputError(f"{run.dataparser} has no downscale option; drop --downscale")
        parser.downscale_factor = run.downscale
    adapt_to_machine(config)
    return config


def evenly_spaced(total: int, count: int | None) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``, first and last included (all when count is None)."""
    if count is None or count >= total:
        return list(range(total))
    if count == 1:
        return [0]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def timed(render: Callable[..., dict], device: str | torch.device, *args, **kwargs) -> tuple[dict, float]:
    """``render(*args, **kwargs)`` and its seconds. On a GPU a render returns before its queued kernels finish, so
    the clock stops after a CUDA sync: that work is part of the render."""
    start = time.perf_counter()
    outputs = render(*args, **kwargs)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return outputs, time.perf_counter() - start


def evaluate(pipeline, views: int | None, renders: Path) -> dict:
    """ns-eval's metrics on ``views`` evenly spaced test views (every method of a comparison gets the same ones), with
    the seconds each view took to render. Those are timed around the render alone: ns-eval's fps also counts the
    metrics (LPIPS's AlexNet, loaded on the first view) and writing the images, which are not rendering."""
    from nerfstudio.data.utils.dataloaders import FixedIndicesEvalDataloader

    datamanager = pipeline.datamanager
    indices = evenly_spaced(len(datamanager.eval_dataset), views)
    datamanager.fixed_indices_eval_dataloader = FixedIndicesEvalDataloader(
        input_dataset=datamanager.eval_dataset, image_indices=tuple(indices), device=pipeline.device
    )
    model, seconds = pipeline.model, []
    render = model.get_outputs_for_camera

    def timed_render(*args, **kwargs) -> dict:
        outputs, took = timed(render, pipeline.device, *args, **kwargs)
        seconds.append(took)
        return outputs

    model.get_outputs_for_camera = timed_render  # this instance only, for this evaluation
    try:
        metrics = pipeline.get_average_eval_image_metrics(output_path=renders)
    finally:
        del model.get_outputs_for_camera
    return {
        "psnr": metrics["psnr"], "ssim": metrics.get("ssim"), "lpips": _finite_or_none(metrics.get("lpips")),
        "render_seconds_per_view": round(sum(seconds) / len(seconds), 2), "eval_views": indices,
    }  # fmt: skip


def execute(run: BudgetRun, recipe: Callable[[TrainerConfig], None] | None = None) -> dict:
    """Train and evaluate; ``recipe`` edits the config first (benchmark sweeps of one method's settings)."""
    from nerfstudio.utils.eval_utils import eval_setup

    run.check()
    config = configure(run)
    if recipe is not None:
        recipe(config)
    config.save_config()  # names nerfstudio's Trainer, so ns-viewer / ns-eval load the run like any other
    trainer = BudgetTrainer(config, local_rank=0, world_size=1)
    trainer.budget_seconds = run.minutes * 60 if run.minutes else float("inf")
    with offline_lpips():
        trainer.setup()
    trainer.train()
    peak_mb, memory = peak_memory(config.machine.device_type)  # training's peak: evaluation comes after
    params = sum(p.numel() for p in trainer.pipeline.model.parameters() if p.requires_grad)
    result = {
        "method": run.method, "status": "ok", "steps": trainer.step + 1,
        "train_seconds": round(trainer.train_seconds, 2),
        "train_rays_per_second": round(trainer.train_rays / max(trainer.train_seconds, 1e-9)),
        "train_samples_per_ray": round(trainer.train_samples / max(trainer.train_rays, 1), 1) or None,
        "peak_memory_mb": round(peak_mb), "memory": memory, "params": params, "curve": trainer.curve,
        "samples_curve": trainer.samples_curve,
    }  # fmt: skip
    del trainer
    config_path = config.get_base_dir() / "config.yml"
    with offline_lpips():
        _, pipeline, checkpoint, _ = eval_setup(config_path, test_mode="test")
    result |= evaluate(pipeline, run.eval_views, run.out / "renders")
    downscale = getattr(pipeline.datamanager.dataparser, "downscale_factor", None)  # what the parser used
    return result | {"downscale": downscale, "checkpoint": str(checkpoint), "config": str(config_path)}


def peak_memory(device_type: str) -> tuple[float, str]:
    """(MB, what was measured): the GPU's peak allocation for a CUDA run (its host memory is not the limit there),
    this process's peak resident memory otherwise."""
    if device_type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "GPU (max allocated)"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "host (max RSS)"


def _finite_or_none(value: float | None) -> float | None:
    """LPIPS is NaN when its weights are missing offline: report it as absent, never as a number."""
    return value if value is not None and math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    run = tyro.cli(BudgetRun, args=argv)
    run.out.mkdir(parents=True, exist_ok=True)
    try:
        result = execute(run)
    except Exception as error:  # any failure of any method becomes its row's one-line error
        (run.out / "error.log").write_text(traceback.format_exc())
        message = first_line(error)
        result = {"method": run.method, "status": "failed", "error": f"{type(error).__name__}: {message}"}
        print(f"{run.method}: {result['error']}", file=sys.stderr)
    (run.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
