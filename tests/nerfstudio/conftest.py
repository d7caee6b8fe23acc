"""Fixtures for the plugin tests: the procedural demo scene, tiny, made on the fly (no download)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frinr_nerfstudio.scene import make_scene


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16×16 RGBA views: 6 train, 2 val, 2 test."""
    return make_scene(tmp_path_factory.mktemp("tiny_scene"), size=16, n_train=6, n_val=2, n_test=2)


@pytest.fixture(scope="session")
def tiny_capture(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny scene as one transforms.json capture (intrinsics, all views), readable by both nerfstudio-data
    and instant-ngp-data; ``aabb_scale`` 4 makes instant-ngp-data's box larger than the scene."""
    where = tmp_path_factory.mktemp("tiny_capture") / "capture"
    shutil.copytree(tiny_scene, where)
    frames, angle = [], None
    for split in ("train", "val", "test"):
        meta = json.loads((tiny_scene / f"transforms_{split}.json").read_text())
        angle = meta["camera_angle_x"]
        frames += [{"file_path": f["file_path"][2:] + ".png", "transform_matrix": f["transform_matrix"]}
                   for f in meta["frames"]]  # fmt: skip
    size = 16
    focal = size / 2 / math.tan(angle / 2)
    meta = {"fl_x": focal, "fl_y": focal, "cx": size / 2, "cy": size / 2, "w": size, "h": size, "aabb_scale": 4}
    (where / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))
    return where


# Sizes that make a CPU run take seconds: few steps, small batches, grids and hash tables.
TINY_NGP = [
    "--max-num-iterations", "4", "--vis", "tensorboard", "--pipeline.target-num-samples", "4096",
    "--pipeline.max-num-samples-per-ray", "64", "--pipeline.model.render-step-size", "0.05",
    "--pipeline.model.grid-resolution", "16", "--pipeline.model.field.log2-hashmap-size", "12",
]  # fmt: skip


def ns(command: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a nerfstudio console script of this environment; fail the test with its stderr tail."""
    script = Path(sys.executable).with_name(command)
    result = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} failed:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="session")
def trained_ngp(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.yml of a 4-step `ns-train frinr-ngp` run on the tiny scene, shared by the checkpoint tests."""
    out = tmp_path_factory.mktemp("trained_ngp")
    ns("ns-train", "frinr-ngp", *TINY_NGP, "--output-dir", str(out), "blender-data", "--data", str(tiny_scene))
    return next(out.glob("*/frinr-ngp/*/config.yml"))
