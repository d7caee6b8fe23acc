"""The ns-train methods: registered through the entry point, identical but for FR, trainable on a CPU."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_NGP, ns

METHODS = ("frinr-ngp", "frinr-ngp-baseline")


def test_methods_are_registered_with_nerfstudio() -> None:
    from nerfstudio.configs.method_configs import all_descriptions, all_methods

    from frinr_nerfstudio.method.models.ngp import NGPModelConfig

    for name in METHODS:
        assert name in all_methods and all_descriptions[name]
        assert isinstance(all_methods[name].pipeline.model, NGPModelConfig)
        assert all_methods[name].machine.device_type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_dynamic_batch_is_instant_ngps_on_cuda_and_a_quarter_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU budget of minutes gets four times the steps (BENCHMARKS.md, *captures*); a GPU keeps instant-ngp's 2**18.
    Both methods of the pair get the same batch."""
    from frinr_nerfstudio.method.config import CPU_TARGET_SAMPLES, fr_and_baseline, ngp_trainer_config

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    on_cpu = fr_and_baseline("x", ngp_trainer_config, "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU host
    on_gpu = fr_and_baseline("x", ngp_trainer_config, "")
    assert CPU_TARGET_SAMPLES == 1 << 16
    assert [spec.config.pipeline.target_num_samples for spec in on_cpu] == [CPU_TARGET_SAMPLES] * 2
    assert [spec.config.pipeline.target_num_samples for spec in on_gpu] == [1 << 18] * 2
    assert [spec.config.machine.device_type for spec in on_gpu] == ["cuda"] * 2


def test_adam_is_fused_and_stays_fused_when_it_loads_an_unfused_state() -> None:
    """Every frinr optimizer takes torch's fused step; resuming a run saved with the unfused one (before 2026-12-06)
    continues it with the same update, still fused (mixed precision's grad scaler relies on that)."""
    from nerfstudio.configs.method_configs import all_methods

    from frinr_nerfstudio.method.config import FusedAdamOptimizerConfig

    for name in (*METHODS, "frinr-dvgo", "frinr-dvgo-baseline"):
        optimizers = all_methods[name].optimizers.values()
        assert all(isinstance(group["optimizer"], FusedAdamOptimizerConfig) for group in optimizers)
    torch.manual_seed(0)
    unfused_param, fused_param = torch.nn.Parameter(torch.randn(64)), torch.nn.Parameter(torch.zeros(64))
    unfused = torch.optim.Adam([unfused_param], lr=1e-2, eps=1e-15)
    for _ in range(3):
        unfused_param.grad = torch.randn(64)
        unfused.step()
    fused = FusedAdamOptimizerConfig(lr=1e-2, eps=1e-15).setup([fused_param])
    with torch.no_grad():
        fused_param.copy_(unfused_param)
    fused.load_state_dict(copy.deepcopy(unfused.state_dict()))  # as from a checkpoint: no shared tensors
    assert fused.param_groups[0]["fused"] is True
    grad = torch.randn(64)
    unfused_param.grad = grad.clone()
    unfused.step()
    scaler = torch.amp.GradScaler("cpu")  # hands the step scaled gradients, which only a fused step takes
    scaler.scale((fused_param * grad).sum()).backward()
    scaler.step(fused)
    torch.testing.assert_close(fused_param, unfused_param)


def test_baseline_differs_only_by_fr() -> None:
    from nerfstudio.configs.method_configs import all_methods

    fr, baseline = all_methods["frinr-ngp"], copy.deepcopy(all_methods["frinr-ngp-baseline"])
    heads = ("density_head", "colour_head")
    assert all(getattr(fr.pipeline.model.field, head).fr for head in heads)
    assert not any(getattr(baseline.pipeline.model.field, head).fr for head in heads)
    baseline.method_name = fr.method_name
    baseline.pipeline.model.set_fr(True)  # the one switch
    assert baseline == fr


@pytest.mark.parametrize("method", METHODS)
def test_ns_train_few_steps_on_cpu(method: str, tiny_scene: Path, tmp_path: Path) -> None:
    """The real command, no device flag; only sizes are shrunk (iterations, batch, grids, step) to take seconds."""
    ns_train = Path(sys.executable).with_name("ns-train")
    command = [str(ns_train), method, "--data", str(tiny_scene), "--max-num-iterations", "4", "--vis", "tensorboard"]
    command += ["--output-dir", str(tmp_path), "--pipeline.target-num-samples", "4096"]
    command += ["--pipeline.max-num-samples-per-ray", "64", "--pipeline.model.render-step-size", "0.05"]
    command += ["--pipeline.model.grid-resolution", "16", "--pipeline.model.field.log2-hashmap-size", "12"]
    command += ["blender-data"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = next(tmp_path.glob(f"*/{method}/*"))
    config = yaml.load((run_dir / "config.yml").read_text(), Loader=yaml.Loader)
    assert config.machine.device_type == "cpu"
    checkpoint = torch.load(next((run_dir / "nerfstudio_models").glob("step-*.ckpt")), weights_only=False)
    state = checkpoint["pipeline"]
    assert checkpoint["step"] == 3
    assert state["_model.occupancy_grid.binaries"].shape[0] == 1  # blender-data: bounded, one grid level
    assert any(key.endswith(".coeffs") for key in state) == (method == "frinr-ngp")
    assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


@pytest.mark.parametrize("dataparser", ["nerfstudio-data", "instant-ngp-data"])
def test_real_capture_formats_train(dataparser: str, tiny_capture: Path, tmp_path: Path) -> None:
    """Captures (not Blender scenes) go through the contracted field and the multi-level grid and train."""
    data = tiny_capture
    ns(
        "ns-train",
        "frinr-ngp",
        *TINY_NGP,
        "--output-dir",
        str(tmp_path / "out"),
        dataparser,
        "--data",
        str(data),
        "--train-split-fraction",
        "0.8",
    )
    run_dir = next((tmp_path / "out").glob("*/frinr-ngp/*"))
    state = torch.load(next((run_dir / "nerfstudio_models").glob("step-*.ckpt")), weights_only=False)["pipeline"]
    assert state["_model.occupancy_grid.binaries"].shape[0] == 4  # contraction on: the multi-level grid
    assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())
    assert any(key.endswith(".coeffs") for key in state)
