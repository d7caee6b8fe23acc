"""Fixtures for the plugin tests: the procedural demo scene, tiny, made on the fly (no download)."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallbackLocation

from frinr_nerfstudio.tools.scene import make_scene


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


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]
"""Device-dependent tests run on each: ``make test`` on a GPU machine covers the CUDA path too."""


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


# In-process trainers: nerfstudio's own Trainer on the tiny scene, sized to take seconds.


def tiny_ngp_config(method: str, scene: Path, out: Path, steps: int):
    """The method's own config on the tiny scene with the sizes of ``TINY_NGP``."""
    from nerfstudio.configs.method_configs import all_methods

    config = copy.deepcopy(all_methods[method])
    config.set_timestamp()
    config.output_dir, config.vis, config.max_num_iterations = out, "tensorboard", steps
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=scene)
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 10**6
    config.steps_per_save = 10**6
    config.pipeline.target_num_samples, config.pipeline.max_num_samples_per_ray = 4096, 64
    model = config.pipeline.model
    model.render_step_size, model.grid_resolution, model.field.log2_hashmap_size = 0.05, 16, 12
    return config


def tiny_dvgo_config(method: str, scene: Path, out: Path, steps: int, **model: object):
    """The method's own config on the tiny scene, with grids and batches small enough for a test."""
    from nerfstudio.configs.method_configs import all_methods

    config = copy.deepcopy(all_methods[method])
    config.set_timestamp()
    config.output_dir, config.vis, config.max_num_iterations = out, "tensorboard", steps
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=scene)
    config.pipeline.datamanager.train_num_rays_per_batch = 128
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 10**6
    config.steps_per_save = 10**6
    settings = {"coarse_steps": 4, "upscale_steps": (2, 4), "mask_resolution": 16, **model}
    for name, value in settings.items():
        setattr(config.pipeline.model, name, value)
    config.pipeline.model.coarse.voxels = 16**3
    config.pipeline.model.coarse.alpha_init = 9e-4  # a few steps push seen surfaces over bbox_thres (1e-3)
    config.pipeline.model.fine.voxels = 20**3
    return config


def make_trainer(config):
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


def run_steps(trainer, steps: range) -> None:
    """The trainer's own loop body: callbacks before each iteration, then the iteration."""
    for step in steps:
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        trainer.train_iteration(step)


def render_psnr(pipeline) -> float:
    """PSNR of the first test view, rendered by the model in eval mode."""
    pipeline.eval()
    camera, batch = next(iter(pipeline.datamanager.fixed_indices_eval_dataloader))
    with torch.no_grad():
        outputs = pipeline.model.get_outputs_for_camera(camera)
    pipeline.train()
    return pipeline.model.get_image_metrics_and_images(outputs, batch)[0]["psnr"]
