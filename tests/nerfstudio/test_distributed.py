"""nerfstudio's own multi-process training on CPU (gloo): two ranks stay identical."""

from __future__ import annotations

import copy

import torch
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.scripts.train import launch
from nerfstudio.utils import comms

from frinr_core import FourierLinear
from frinr_nerfstudio.method.config import frinr_ngp
from frinr_nerfstudio.nerfstudio_fixes.distributed import route_cpu_workers


def _train_and_dump(local_rank: int, world_size: int, config, global_rank: int = 0) -> None:
    """Runs in each spawned rank: record parameters before and after training, and the cached FR weights."""
    torch.manual_seed(global_rank)  # ranks start from different random states: DDP must reconcile them
    trainer = config.setup(local_rank=local_rank, world_size=world_size)
    trainer.setup()
    model = trainer.pipeline.model
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer.train()
    fr_layers = [m for m in model.modules() if isinstance(m, FourierLinear)]
    torch.save(
        {
            "before": before,
            "after": {k: v.detach().clone() for k, v in model.named_parameters()},
            "cached_weights": [layer.weight.clone() for layer in fr_layers],
            "fresh_weights": [(layer.coeffs @ layer.bases).detach() for layer in fr_layers],
            "grid": model.occupancy_grid.binaries.clone(),
        },
        config.get_base_dir() / f"rank{global_rank}.pt",
    )
    comms.synchronize()


def test_two_cpu_ranks_keep_identical_parameters(tiny_scene, tmp_path):
    route_cpu_workers()
    config = copy.deepcopy(frinr_ngp.config)
    config.set_timestamp()
    config.output_dir = tmp_path
    config.data = tiny_scene
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=tiny_scene)
    config.max_num_iterations = 6
    config.steps_per_eval_batch = config.steps_per_eval_image = config.steps_per_eval_all_images = 10**6
    config.steps_per_save = 10**6
    config.save_only_latest_checkpoint = True
    config.vis = "tensorboard"
    config.machine.device_type, config.machine.num_devices = "cpu", 2
    config.pipeline.datamanager.train_num_rays_per_batch = 64
    config.pipeline.model.grid_resolution, config.pipeline.model.grid_levels = 16, 1
    launch(_train_and_dump, num_devices_per_machine=2, config=config, device_type="cpu")

    ranks = [torch.load(config.get_base_dir() / f"rank{r}.pt") for r in (0, 1)]
    for name, value in ranks[0]["after"].items():
        torch.testing.assert_close(ranks[1]["after"][name], value, rtol=0, atol=0, msg=f"ranks differ in {name}")
    assert any(not torch.equal(ranks[0]["before"][k], v) for k, v in ranks[0]["after"].items()), "nothing trained"
    assert ranks[0]["cached_weights"], "frinr-ngp has FR layers"
    for rank in ranks:
        for cached, fresh in zip(rank["cached_weights"], rank["fresh_weights"], strict=True):
            torch.testing.assert_close(cached, fresh)  # the weight cache followed every update
    torch.testing.assert_close(ranks[0]["cached_weights"], ranks[1]["cached_weights"], rtol=0, atol=0)
    assert torch.equal(ranks[0]["grid"], ranks[1]["grid"])
