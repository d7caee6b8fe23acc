"""frinr-dvgo(-baseline): registration, both stages, progressive upscaling, checkpoints at any stage, ns-eval."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from conftest import make_trainer, render_psnr, run_steps
from conftest import tiny_dvgo_config as tiny_config
from nerfstudio.data.dataparsers.instant_ngp_dataparser import InstantNGPDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.callbacks import TrainingCallbackLocation

from frinr_core import FourierLinear
from frinr_core.errors import InputError
from frinr_nerfstudio.method.fields.dvgo import grid_resolution
from frinr_nerfstudio.method.models.base import CONTRACTED_CONE_ANGLE
from frinr_nerfstudio.method.models.dvgo import DVGOModelConfig

METHODS = ("frinr-dvgo", "frinr-dvgo-baseline")


def test_methods_are_registered_and_differ_only_by_fr() -> None:
    from nerfstudio.configs.method_configs import all_descriptions, all_methods

    for name in METHODS:
        assert name in all_methods and all_descriptions[name]
        assert isinstance(all_methods[name].pipeline.model, DVGOModelConfig)
    fr, baseline = all_methods["frinr-dvgo"], copy.deepcopy(all_methods["frinr-dvgo-baseline"])
    assert fr.pipeline.model.field.rgbnet.fr and not baseline.pipeline.model.field.rgbnet.fr
    baseline.method_name = fr.method_name
    baseline.pipeline.model.set_fr(True)  # the one switch (rgbnet; the density decoder's head, when on)
    assert baseline == fr


@pytest.mark.parametrize("method", METHODS)
def test_few_steps_through_both_stages(method: str, tiny_scene: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_config(method, tiny_scene, tmp_path, steps=9))  # fine from 4, upscales at 6, 8
    model = trainer.pipeline.model
    coarse_resolution = model.field.density.resolution
    assert not model.field.fine and model.field.k0.grid.shape[1] == 3
    assert not model.contracted and model.cone_angle() == 0  # blender-data: bounded, uniform steps as DVGO
    trainer.train()

    field = model.field
    assert field.fine and field.k0.grid.shape[1] == field.config.k0_channels
    assert field.density.resolution == grid_resolution(field.aabb, 20**3) != coarse_resolution  # after 2 upscales
    assert any(isinstance(m, FourierLinear) for m in field.rgbnet.modules()) == (method == "frinr-dvgo")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for name, params in model.get_param_groups().items():  # the optimizers train the final grids
        assert trainer.optimizers.optimizers[name].param_groups[0]["params"] == params


def test_optional_fr_density_decoder_trains(tiny_scene: Path, tmp_path: Path) -> None:
    config = tiny_config("frinr-dvgo", tiny_scene, tmp_path, steps=7)
    config.pipeline.model.field.density_decoder = True
    trainer = make_trainer(config)
    field = trainer.pipeline.model.field
    head = {k: v.clone() for k, v in field.density_head.state_dict().items()}
    assert field.density.grid.shape[1] == 1  # the coarse stage reads raw density
    trainer.train()
    assert field.density.grid.shape[1] == field.config.density_features
    assert any(isinstance(m, FourierLinear) for m in field.density_head.modules())
    assert any(not torch.equal(head[k], v) for k, v in field.density_head.state_dict().items()), "decoder trained"


def test_coarse_geometry_sets_the_fine_box_and_the_empty_space_mask() -> None:
    config = DVGOModelConfig(mask_resolution=32)
    config.coarse.voxels, config.fine.voxels = 16**3, 20**3
    model = config.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.5] * 3, [1.5] * 3])), num_train_data=1)
    with torch.no_grad():  # two opaque blocks of coarse nodes (spacing 0.2) with empty space between them
        model.field.density.grid[0, 0, 2:4, 5:9, 6:12] = 30.0
        model.field.density.grid[0, 0, 11:13, 5:9, 6:12] = 30.0
    model.start_fine()

    tight = torch.tensor([[-1.1, -0.5, -0.3], [0.9, 0.1, 0.7]])  # extreme opaque nodes
    grown = tight + (tight[1] - tight[0]) * 0.025 * torch.tensor([[-1.0], [1.0]])  # world_bound_scale 1.05
    torch.testing.assert_close(model.field.aabb, grown)
    assert model.field.fine and model.field.k0.grid.shape[1] == 12
    assert model.field.density.resolution == grid_resolution(grown, 20**3 // 16)  # before 4 upscales
    occupied = model.occupancy_grid.occupied(torch.tensor([[-1.0, -0.2, 0.2], [0.8, -0.2, 0.2], [-0.1, -0.2, 0.2]]))
    assert occupied.tolist() == [True, True, False]  # both blocks kept, the gap between them known empty


def test_contracted_space_keeps_geometry_beyond_the_scene_box() -> None:
    config = DVGOModelConfig(mask_resolution=16, contraction="on")
    config.coarse.voxels, config.fine.voxels = 16**3, 20**3
    model = config.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3])), num_train_data=1)
    assert model.occupancy_grid.levels == 4 and model.cone_angle() == CONTRACTED_CONE_ANGLE
    torch.testing.assert_close(model.field.aabb, torch.tensor([[-2.0] * 3, [2.0] * 3]))  # all of contracted space
    with torch.no_grad():  # opaque coarse nodes at contracted x = 1.73 (world 3.75) and 2 (infinity), y, z = ±0.13
        model.field.density.grid[0, 0, 14:, 7:9, 7:9] = 30.0
    model.start_fine()

    assert model.field.aabb[1, 0] > 1.9 and model.field.aabb[0, 0] > 1.5  # the fine box hugs that far slab
    torch.testing.assert_close(model.occupancy_grid.aabbs[0], torch.tensor([-1.0] * 3 + [1.0] * 3))  # still the world
    # world x = 2 is contracted 1.47: next to the opaque nodes (the pooled coarse opacity is high) but outside the box
    points = torch.tensor([[3.75, 0.0, 0.0], [0.0, 0.0, 0.0], [-3.75, 0.0, 0.0], [2.0, 0.0, 0.0]])
    assert model.occupancy_grid.occupied(points).tolist() == [True, False, False, False]
    density = model.field.density_fn(points)[:, 0]
    assert density[0] > 0 and torch.isfinite(density).all()


@pytest.mark.parametrize("dataparser", [NerfstudioDataParserConfig, InstantNGPDataParserConfig])
def test_real_captures_train_in_contracted_space(dataparser, tiny_capture: Path, tmp_path: Path) -> None:
    """nerfstudio-data and instant-ngp-data captures: contraction on by default, both stages, a finite render."""
    config = tiny_config("frinr-dvgo", tiny_capture, tmp_path, steps=9)
    # two test views: stock instant-ngp-data mis-shapes the cameras of a one-image split (nerfstudio 1.1.5)
    config.pipeline.datamanager.dataparser = dataparser(data=tiny_capture, train_split_fraction=0.8)
    trainer = make_trainer(config)
    model = trainer.pipeline.model
    assert model.contracted and model.occupancy_grid.levels == config.pipeline.model.contraction_levels > 1
    trainer.train()
    assert model.field.fine and bool((model.field.aabb.abs() <= 2).all())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0 < render_psnr(trainer.pipeline) < 100


def test_upscale_keeps_the_image_and_rebuilds_the_optimizer(tiny_scene: Path, tmp_path: Path) -> None:
    trainer = make_trainer(tiny_config("frinr-dvgo", tiny_scene, tmp_path, steps=30, upscale_steps=(25,)))
    run_steps(trainer, range(29))  # coarse, then 25 fine steps: the upscale callback runs at step 29
    model, optimizer = trainer.pipeline.model, trainer.optimizers.optimizers["grids"]
    old_grid, old_shape = model.field.density.grid, model.field.density.grid.shape
    assert optimizer.state, "Adam has moments before the upscale"
    before, shift = render_psnr(trainer.pipeline), float(model.field.act_shift)

    for callback in trainer.callbacks:
        callback.run_callback_at_location(29, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    new_grid = model.field.density.grid
    assert new_grid is not old_grid and new_grid.shape[2:] > old_shape[2:]
    assert optimizer.param_groups[0]["params"][0] is new_grid and not optimizer.state
    field = model.field
    assert field.act_shift == shift - 1  # DVGO thins the density after each upscale ...
    field.act_shift += 1
    resampled = render_psnr(trainer.pipeline)  # ... which aside, the upscaled grids render the same image
    field.act_shift -= 1
    assert before > 12 and abs(resampled - before) < 0.5, (before, resampled)

    trainer.train_iteration(29)  # trains on at the new size
    trainer.train_iteration(30)
    assert optimizer.state[new_grid]["exp_avg"].shape == new_grid.shape


def test_checkpoint_reload_mid_schedule(tiny_scene: Path, tmp_path: Path) -> None:
    config = tiny_config("frinr-dvgo", tiny_scene, tmp_path, steps=7)
    trainer = make_trainer(config)
    run_steps(trainer, range(7))  # fine stage after its first upscale (step 6); the second is at step 8
    trainer.save_checkpoint(6)
    saved = {k: v.clone() for k, v in trainer.pipeline.model.state_dict().items()}

    resumed = copy.deepcopy(config)
    resumed.load_dir, resumed.max_num_iterations = config.get_checkpoint_dir(), 3
    trainer = make_trainer(resumed)  # a fresh model built at coarse size, loaded at fine size
    model = trainer.pipeline.model
    for key, value in saved.items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)
    assert trainer._start_step == 7
    trainer.train()  # resumes through the second upscale, to the full fine grid
    assert model.field.density.resolution == grid_resolution(model.field.aabb, 20**3)


def test_ns_eval_writes_psnr_and_ssim(tiny_scene: Path, tmp_path: Path) -> None:
    from nerfstudio.scripts.eval import ComputePSNR

    config = tiny_config("frinr-dvgo-baseline", tiny_scene, tmp_path, steps=6)
    make_trainer(config).train()
    config.save_config()
    output = tmp_path / "eval.json"
    ComputePSNR(load_config=config.get_base_dir() / "config.yml", output_path=output).main()
    results = json.loads(output.read_text())["results"]
    assert {"psnr", "ssim"} <= results.keys() and results["psnr"] > 0


def test_bad_schedule_is_a_clear_error(tiny_scene: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="upscale_steps increasing"):
        make_trainer(tiny_config("frinr-dvgo", tiny_scene, tmp_path, steps=2, upscale_steps=(4, 2)))
    config = tiny_config("frinr-dvgo", tiny_scene, tmp_path, steps=2)
    config.pipeline.model.fine.alpha_init = 1.0
    with pytest.raises(InputError, match="fine.alpha_init"):
        make_trainer(config)
