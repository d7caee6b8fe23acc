"""Checkpoints of our methods load where torch >= 2.6 (weights_only=True) breaks stock nerfstudio."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import TINY_NGP, ns

from frinr_nerfstudio import nerfstudio_fixes


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
    nerfstudio_fixes.install()  # what importing our method configs does in every ns-* command
    before = torch.load(saved, map_location="cpu")
    after = torch.load(resumed, map_location="cpu")  # weights_only=True: the allow-list makes this load
    assert after["step"] == before["step"] + 2
    assert "optimizers" in after and after["pipeline"].keys() == before["pipeline"].keys()


def test_a_run_saved_before_the_package_layout_changed_still_loads(trained_ngp: Path, tmp_path: Path) -> None:
    """config.yml names classes by module path; runs written before method/, nerfstudio_fixes/ and tools/ existed say
    frinr_nerfstudio.models.ngp, frinr_nerfstudio.pipelines, ... and must load as they are."""
    import re

    from nerfstudio.utils.eval_utils import eval_setup

    old = re.sub(r"frinr_nerfstudio\.(method|nerfstudio_fixes|tools)\.", "frinr_nerfstudio.", trained_ngp.read_text())
    assert "frinr_nerfstudio.models.ngp.NGPModelConfig" in old and "frinr_nerfstudio.method" not in old
    (tmp_path / "config.yml").write_text(old)  # the same run (its output_dir names the checkpoints), old names
    _, pipeline, _, step = eval_setup(tmp_path / "config.yml", test_mode="test")
    assert type(pipeline.model).__module__ == "frinr_nerfstudio.method.models.ngp" and step == 3
