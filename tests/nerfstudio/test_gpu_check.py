"""`frinr gpu-check` (`make gpu-check`): one line without CUDA; every check's code path exercised here on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from frinr_nerfstudio.tools.gpu_check import GpuCheckConfig, run


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_without_cuda_one_line_and_nothing_run(tmp_path: Path) -> None:
    frinr = Path(sys.executable).with_name("frinr")
    result = subprocess.run([str(frinr), "gpu-check", "--out", str(tmp_path / "check")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.count("\n") == 1 and "no CUDA device" in result.stdout
    assert not (tmp_path / "check").exists()


def test_smoke_runs_every_check_and_writes_the_report(tmp_path: Path) -> None:
    """The same steps a GPU runs, on the CPU with tiny budgets: nothing in the script is untested code."""
    report = run(GpuCheckConfig(smoke=True, out=tmp_path))
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["verdict"] == report["verdict"] == "PASS", {k: v.get("error") for k, v in saved["checks"].items()}
    assert set(saved["checks"]) == {
        "fr_gradients", "frinr_ngp_mixed_precision", "frinr_ngp_torch_backends", "frinr_dvgo", "cpu_checkpoint_on_gpu"
    }  # fmt: skip
    ngp = saved["checks"]["frinr_ngp_mixed_precision"]
    assert ngp["viewer_renders"] == 2 and ngp["train_rays_per_second"] > 0 and ngp["test_psnr"] > 0
    assert saved["checks"]["cpu_checkpoint_on_gpu"]["psnr_against_cpu_render"] > 35
    assert {"torch", "nerfacc", "tinycudann", "nerfacc_kernels"} <= saved["versions"].keys()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_check_passes_on_this_gpu(tmp_path: Path) -> None:
    assert run(GpuCheckConfig(out=tmp_path))["verdict"] == "PASS"
