"""Checkpoints of our methods load where torch >= 2.6 (weights_only=True) breaks stock nerfstudio."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import TINY_NGP, ns

from frinr_nerfstudio import compat


def test_ns_eval_writes_psnr_and_ssim(trained_ngp: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    ns("ns-eval", "--load-config", str(trained_ngp), "--output-path", str(out))
    results = json.loads(out.read_text())["results"]
    assert {"psnr", "ssim"} <= results.keys()
    assert 0 < results["psnr"] < 60 and 0 <= results["ssim"] <= 1
    assert "lpips" not in results or results["lpips"] == results["lpips"]  # absent offline, never NaN


def test_resume_continues_from_the_saved_step(trained_ngp: Path, tiny_scene: Path, tmp_path: Path) -> None:
    checkpoints = trained_ngp.parent / "nerfstudio_models"
    (saved,) = checkpoints.glob("step-*.ckpt")
    ns("ns-train", "frinr-ngp", *TINY_NGP, "--max-num-iterations", "2", "--load-dir", str(checkpoints),
       "--output-dir", str(tmp_path), "blender-data", "--data", str(tiny_scene))  # fmt: skip
    (resumed,) = tmp_path.glob("*/frinr-ngp/*/nerfstudio_models/step-*.ckpt")
    compat.install()  # what importing our method configs does in every ns-* command
    before = torch.load(saved, map_location="cpu")
    after = torch.load(resumed, map_location="cpu")  # weights_only=True: the allow-list makes this load
    assert after["step"] == before["step"] + 2
    assert "optimizers" in after and after["pipeline"].keys() == before["pipeline"].keys()
