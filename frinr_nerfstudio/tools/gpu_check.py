"""`frinr gpu-check` (`make gpu-check`): what a GPU machine runs to show our CUDA path works (< 5 min of one GPU).

Writes ``outputs/gpu_check/gpu_check.json`` and prints a one-screen summary:

- which backends loaded: GPU, torch / CUDA versions, tinycudann, nerfacc and whether its kernels built;
- FR gradients on CUDA equal the CPU's for the same seed and inputs (float32), and agree under float16 autocast;
- frinr-ngp with mixed precision for 500 steps on a ``frinr make-scene`` scene, with a render from a second thread
  every 50 steps (the viewer's thread, without autocast), then ``ns-eval``'s metrics from the saved run; its rays
  start at an object sphere, as on a walk-around capture (nerfacc's per-ray start);
- the same with the torch backends forced (torch hash encoding, torch occupancy grid);
- frinr-dvgo for 400 steps, then ``ns-eval``'s metrics;
- a checkpoint trained on the CPU, loaded (as ``ns-eval``/``ns-viewer`` do) and rendered on the GPU;
- train rays/s and test PSNR of each run. Exit status 1 when any check fails.

On a machine without CUDA it prints one line and exits 0, having run nothing. ``--smoke`` runs every step on the CPU
with tiny budgets: that is how the test suite keeps this script working where no GPU is.

    frinr gpu-check                 # make gpu-check
    frinr gpu-check --smoke         # the same steps on the CPU, tiny (what the tests run)
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from frinr_core.cli import Command


@dataclass
class Budget:
    """Where the check writes and each run's steps; ``--smoke`` shrinks them (and the scene) to seconds on a CPU."""

    out: Path = Path("outputs/gpu_check")
    ngp_steps: int = 500
    render_every: int = 50
    dvgo_steps: int = 400
    cpu_steps: int = 100
    scene_size: int = 64
    smoke: bool = False


def versions() -> dict:
    """What this machine runs: the GPU, torch and CUDA, tinycudann, nerfacc and its kernels."""
    from frinr_nerfstudio.nerfstudio_fixes import backends

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    cuda = torch.cuda.is_available()
    return {
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "tinycudann": version("tinycudann"),
        "tinycudann_importable": backends.tcnn_importable(),
        "nerfacc": version("nerfacc"),
        "nerfacc_kernels": (backends.nerfacc_kernel_problem() or "loaded") if cuda else "not tried (no CUDA)",
        "nerfstudio": version("nerfstudio"),
    }


def fr_gradients(device: str) -> dict:
    """The FR layer's outputs and gradients on ``device`` against the CPU's, in float32 and under autocast."""
    from frinr_core import FourierLinear

    def run(on: str, autocast: bool) -> tuple[torch.Tensor, ...]:
        torch.manual_seed(0)
        layer = FourierLinear(64, 64, low_freqs=32, high_freqs=32, phases=64, alpha=0.01).to(on)
        x = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1)).to(on)
        dtype = torch.float16 if torch.device(on).type == "cuda" else torch.bfloat16
        with torch.autocast(torch.device(on).type, dtype=dtype, enabled=autocast):
            y = layer(x)
        y.float().pow(2).mean().backward()
        layer(x)  # the cached weight, used outside autocast: the viewer's thread, the occupancy refresh
        return y.float().cpu(), layer.coeffs.grad.cpu(), layer.bias.grad.cpu()

    def relative(a: tuple, b: tuple) -> float:
        return max(float((p - q).norm() / q.norm().clamp_min(1e-12)) for p, q in zip(a, b, strict=True))

    reference = run("cpu", autocast=False)
    full, mixed = relative(run(device, autocast=False), reference), relative(run(device, autocast=True), reference)
    return {"float32_relative_error": full, "autocast_relative_error": mixed, "ok": full < 1e-4 and mixed < 2e-2}


def scene(budget: Budget) -> Path:
    from frinr_nerfstudio.tools.scene import make_scene

    path = budget.out / f"scene_{budget.scene_size}"
    if not (path / "transforms_test.json").exists():
        n_train = 40 if not budget.smoke else 6
        make_scene(path, size=budget.scene_size, n_train=n_train, n_val=2, n_test=3 if not budget.smoke else 2)
    return path


def trainer_for(method: str, budget: Budget, device: str, steps: int, edit: Callable | None = None):
    """nerfstudio's Trainer of ``method`` on the check's scene on ``device``, config saved (as ns-train saves it)."""
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips

    config = copy.deepcopy(all_methods[method])
    config.set_timestamp()
    config.output_dir, config.vis, config.max_num_iterations = budget.out / "runs", "tensorboard", steps
    config.machine.device_type = torch.device(device).type
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=scene(budget))
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 10**9
    config.steps_per_save = 10**9
    if edit is not None:
        edit(config)
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    with offline_lpips():
        trainer.setup()
    return trainer


def train(trainer, steps: int, render_every: int | None = None) -> dict:
    """The trainer's loop; every ``render_every`` steps a second thread renders a test view as the viewer does
    (under the train lock, eval mode, no autocast in that thread). Returns rays/s and the renders' outcome."""
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    pipeline = trainer.pipeline
    camera, _ = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    renders: list[str] = []

    def viewer_render() -> None:
        try:
            with trainer.train_lock:
                pipeline.model.eval()
                try:
                    with torch.no_grad():
                        rgb = pipeline.model.get_outputs_for_camera(camera.to(pipeline.device))["rgb"]
                finally:
                    pipeline.model.train()
            renders.append("ok" if torch.isfinite(rgb).all() else "non-finite")
        except Exception as error:  # reported in the summary, not raised in the thread
            renders.append(f"{type(error).__name__}: {error}")

    rays, seconds = 0, 0.0
    for step in range(steps):
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        batch = pipeline.datamanager.get_train_rays_per_batch()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_iteration(step)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        rays += batch
        if render_every and (step + 1) % render_every == 0:
            thread = threading.Thread(target=viewer_render)
            thread.start()
            thread.join()
    trainer.save_checkpoint(steps - 1)
    ok = all(r == "ok" for r in renders)
    return {"train_rays_per_second": round(rays / max(seconds, 1e-9)), "viewer_renders": len(renders), "ok": ok} | (
        {} if ok else {"render_errors": sorted(set(r for r in renders if r != "ok"))}
    )


def evaluate(trainer) -> dict:
    """``ns-eval`` of the saved run: a fresh pipeline from config.yml and the checkpoint, metrics on the test split."""
    from nerfstudio.utils.eval_utils import eval_setup

    from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips

    with offline_lpips():
        _, pipeline, _, _ = eval_setup(trainer.config.get_base_dir() / "config.yml", test_mode="test")
    metrics = pipeline.get_average_eval_image_metrics()
    return {"test_psnr": round(float(metrics["psnr"]), 2), "ok": bool(metrics["psnr"] > 0)}


def run_method(method: str, device: str, steps: int, budget: Budget, edit: Callable | None = None) -> dict:
    trainer = trainer_for(method, budget, device, steps, edit)
    model = trainer.config.pipeline.model  # settled: what the run really uses
    backends = {"hash_encoding": getattr(model.field, "implementation", "none (dense grids)"),
                "occupancy_grid": model.occupancy_backend, "mixed_precision": trainer.mixed_precision}  # fmt: skip
    result = {"steps": steps, **backends} | train(trainer, steps, budget.render_every)
    evaluated = evaluate(trainer)
    return result | evaluated | {"ok": result["ok"] and evaluated["ok"]}


def object_sphere(config) -> None:
    """Rays start where they could first reach a sphere around the scene's objects (all within 1.3 of the centre,
    cameras 4 away), as a walk-around capture's do: nerfacc's sampler then starts each ray at its own distance."""
    config.pipeline.model.object_sphere = (0.0, 0.0, 0.0, 1.5)


def torch_backends(config) -> None:
    config.pipeline.model.field.implementation = "torch"
    config.pipeline.model.occupancy_backend = "torch"


def dvgo_schedule(budget: Budget) -> Callable:
    """DVGO's schedule within the step budget: a quarter coarse, two upscales; grids sized for the budget."""
    steps = budget.dvgo_steps

    def edit(config) -> None:
        model = config.pipeline.model
        model.coarse_steps, model.upscale_steps = steps // 4, (steps // 4, steps // 2)
        model.coarse.voxels, model.fine.voxels = (16**3, 20**3) if budget.smoke else (64**3, 128**3)
        model.mask_resolution = 16 if budget.smoke else model.mask_resolution

    return edit


def cpu_checkpoint_on(device: str, budget: Budget) -> dict:
    """Train frinr-ngp on the CPU, then load the run as ns-eval / ns-viewer do on ``device`` and render a test view:
    the render agrees with the CPU's."""
    from nerfstudio.utils.eval_utils import eval_setup

    from frinr_core import metrics
    from frinr_nerfstudio.nerfstudio_fixes.lpips import offline_lpips

    trainer = trainer_for("frinr-ngp", budget, "cpu", budget.cpu_steps)
    train(trainer, budget.cpu_steps)
    pipeline = trainer.pipeline
    pipeline.eval()
    camera, _ = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    with torch.no_grad():
        on_cpu = pipeline.model.get_outputs_for_camera(camera)["rgb"]
    with offline_lpips():  # eval_setup puts the pipeline on CUDA when there is one
        _, loaded, _, _ = eval_setup(trainer.config.get_base_dir() / "config.yml", test_mode="test")
    with torch.no_grad():
        there = loaded.model.get_outputs_for_camera(camera.to(loaded.device))["rgb"].cpu()
    difference = float((there - on_cpu).abs().max())
    agreement = min(metrics.psnr(there.clamp(0, 1), on_cpu.clamp(0, 1)), 100.0)  # 100: identical renders
    return {"loaded_on": str(loaded.device), "psnr_against_cpu_render": round(agreement, 2),
            "max_abs_difference": difference, "ok": agreement > 35}  # fmt: skip


def checks(device: str, budget: Budget) -> dict[str, Callable[[], dict]]:
    return {
        "fr_gradients": lambda: fr_gradients(device),
        "frinr_ngp_mixed_precision": lambda: run_method("frinr-ngp", device, budget.ngp_steps, budget, object_sphere),
        "frinr_ngp_torch_backends": lambda: run_method("frinr-ngp", device, budget.ngp_steps, budget, torch_backends),
        "frinr_dvgo": lambda: run_method("frinr-dvgo", device, budget.dvgo_steps, budget, dvgo_schedule(budget)),
        "cpu_checkpoint_on_gpu": lambda: cpu_checkpoint_on(device, budget),
    }


def summary(report: dict) -> str:
    lines = [f"gpu-check on {report['versions']['gpu'] or 'the CPU (--smoke)'}: {report['verdict']}"]
    lines += [f"  {name:<14} {value}" for name, value in report["versions"].items() if name != "gpu"]
    for name, result in report["checks"].items():
        shown = {k: v for k, v in result.items() if k not in ("ok", "traceback")}
        lines.append(f"  {'PASS' if result['ok'] else 'FAIL'}  {name}: {json.dumps(shown)}")
    return "\n".join(lines)


@dataclass
class GpuCheckConfig:
    """Check the CUDA path on this machine's GPU: backends, FR gradients, mixed precision with the viewer's thread,
    torch backends, DVGO, a CPU checkpoint on the GPU. Without CUDA: one line, nothing run."""

    smoke: bool = False
    """Run every check on the CPU with tiny budgets instead (what the test suite does where no GPU is)."""
    out: Path = Budget.out
    """Where gpu_check.json, the scene and the runs go."""


def run(config: GpuCheckConfig) -> dict | None:
    """Every check, the report written and summarised; exit status 1 when one failed."""
    if not config.smoke and not torch.cuda.is_available():
        print("gpu-check: no CUDA device on this machine (torch.cuda.is_available() is False); nothing was run")
        return None
    device = "cpu" if config.smoke else "cuda"
    budget = Budget(config.out)
    if config.smoke:
        budget = Budget(config.out, ngp_steps=6, render_every=3, dvgo_steps=8, cpu_steps=4, scene_size=16, smoke=True)
    budget.out.mkdir(parents=True, exist_ok=True)
    report = {"versions": versions(), "checks": {}}
    start = time.perf_counter()
    for name, check in checks(device, budget).items():
        try:
            report["checks"][name] = check()
        except Exception as error:  # one failed check is one FAIL line; the others still run
            report["checks"][name] = {"ok": False, "error": f"{type(error).__name__}: {error}",
                                      "traceback": traceback.format_exc()}  # fmt: skip
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["verdict"] = "PASS" if all(r["ok"] for r in report["checks"].values()) else "FAIL"
    (budget.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(summary(report))
    print(f"({report['seconds']} s; details in {budget.out / 'gpu_check.json'})")
    if report["verdict"] != "PASS":
        sys.exit(1)
    return report


COMMAND = Command(GpuCheckConfig, run, "check the CUDA path on this GPU (one line and nothing run without CUDA)")
