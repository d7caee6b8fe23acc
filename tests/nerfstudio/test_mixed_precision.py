"""Mixed precision and the viewer: training steps under autocast, then everything that uses the model outside it.

On CUDA nerfstudio trains our methods under float16 autocast with a GradScaler, and the viewer renders from its own
thread, where autocast is off (it is per thread). The CPU's bfloat16 autocast reproduces that mix of dtypes here:
the trainer below is nerfstudio's own, with autocast switched on as it is on a GPU (on a GPU machine the CUDA variants
run nerfstudio's stock mixed precision).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from conftest import DEVICES, make_trainer, run_steps, tiny_dvgo_config, tiny_ngp_config
from nerfstudio.engine.callbacks import TrainingCallbackLocation

from frinr_core import FourierLinear, fold_fourier_layers, metrics


def autocast_trainer(config, device: str):
    """nerfstudio's Trainer training under autocast with a gradient scaler: stock on CUDA; on the CPU, where nerfstudio
    turns both off, switched on as they are on a GPU."""
    config.machine.device_type = device
    config.mixed_precision = True
    trainer = make_trainer(config)
    if device == "cpu":
        trainer.mixed_precision = True
        trainer.grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    return trainer


def low_precision(device: str) -> torch.autocast:
    return torch.autocast(device, dtype=torch.float16 if device == "cuda" else torch.bfloat16)


def skipped_step(trainer, step: int) -> None:
    """One training step whose gradients overflow, so the scaler skips the optimizer step (as float16 does on CUDA)."""
    layer = next(m for m in trainer.pipeline.model.modules() if isinstance(m, FourierLinear))
    before = layer.coeffs.detach().clone()
    hook = layer.coeffs.register_hook(lambda grad: grad * float("inf"))
    try:
        trainer.train_iteration(step)
    finally:
        hook.remove()
    assert torch.equal(layer.coeffs, before), "the scaler skipped the update"


def render(model, camera) -> torch.Tensor:
    """A view as the viewer renders it (eval mode for the render, then back; no autocast in this thread)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model.get_outputs_for_camera(camera.to(model.device))["rgb"]
    finally:
        model.train(was_training)


def render_in_thread(model, camera) -> torch.Tensor:
    """The same render from a second thread while this one is under autocast: the viewer during a training step."""
    result = {}

    def target() -> None:
        try:
            result["rgb"] = render(model, camera)
        except Exception as error:  # re-raised below, in the test's thread
            result["error"] = error

    thread = threading.Thread(target=target)
    with low_precision(model.device.type):
        thread.start()
        thread.join()
    if "error" in result:
        raise result["error"]
    return result["rgb"]


def check_everything_outside_autocast(trainer, refresh) -> None:
    """After autocast steps and a skipped step: a render from another thread, one here, an eval batch and an
    occupancy refresh, all without autocast, all full precision and agreeing with one another."""
    pipeline, model = trainer.pipeline, trainer.pipeline.model
    pipeline.eval()
    camera, _ = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    threaded = render_in_thread(model, camera)
    here = render(model, camera)
    assert threaded.dtype == here.dtype == torch.float32 and torch.isfinite(here).all()
    assert torch.equal(threaded, here)
    with low_precision(model.device.type):
        low = render(model, camera).float()
    assert metrics.psnr(low.clamp(0, 1), here.clamp(0, 1)) > 25  # autocast agrees with float32 within its precision
    _, loss_dict, _ = pipeline.get_eval_loss_dict(trainer.step)
    assert all(torch.isfinite(loss) for loss in loss_dict.values())
    pipeline.train()
    refresh()
    assert torch.equal(render_in_thread(model, camera), render(model, camera))


@pytest.mark.parametrize("device", DEVICES)
def test_ngp_trains_under_autocast_then_renders_evaluates_and_refreshes_outside_it(
    device: str, tiny_scene: Path, tmp_path: Path
) -> None:
    trainer = autocast_trainer(tiny_ngp_config("frinr-ngp", tiny_scene, tmp_path, steps=6), device)
    model = trainer.pipeline.model
    run_steps(trainer, range(4))
    skipped_step(trainer, 4)
    grid = model.occupancy_grid

    def refresh() -> None:  # the training callback, outside autocast as nerfstudio runs it
        before = grid.occs.clone()
        for callback in trainer.callbacks:
            callback.run_callback_at_location(16, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        assert not torch.equal(grid.occs, before) and grid.occs.dtype == torch.float32

    check_everything_outside_autocast(trainer, refresh)
    run_steps(trainer, range(5, 6))  # and training goes on under autocast


@pytest.mark.parametrize("device", DEVICES)
def test_dvgo_trains_under_autocast_then_renders_evaluates_and_refreshes_outside_it(
    device: str, tiny_scene: Path, tmp_path: Path
) -> None:
    trainer = autocast_trainer(tiny_dvgo_config("frinr-dvgo", tiny_scene, tmp_path, steps=8), device)
    model = trainer.pipeline.model
    run_steps(trainer, range(6))  # through the coarse stage and the first fine upscale
    assert model.field.is_fine
    skipped_step(trainer, 6)

    def refresh() -> None:
        model.refresh_mask()
        assert model.occupancy_grid.occs.dtype == torch.float32

    check_everything_outside_autocast(trainer, refresh)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config", [tiny_ngp_config, tiny_dvgo_config])
def test_fold_after_autocast_training_renders_the_same(config, device: str, tiny_scene: Path, tmp_path: Path) -> None:
    """The export path: FR layers trained under autocast fold into plain layers with the same renders."""
    method = "frinr-ngp" if config is tiny_ngp_config else "frinr-dvgo"
    trainer = autocast_trainer(config(method, tiny_scene, tmp_path, steps=6), device)
    run_steps(trainer, range(6))
    pipeline = trainer.pipeline
    pipeline.eval()
    camera, _ = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    with low_precision(device):
        render(pipeline.model, camera)  # FR weights cached under autocast
    before = render(pipeline.model, camera)
    fold_fourier_layers(pipeline.model)
    assert not any(isinstance(m, FourierLinear) for m in pipeline.model.modules())
    torch.testing.assert_close(render(pipeline.model, camera), before, rtol=1e-4, atol=1e-4)
