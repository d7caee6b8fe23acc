"""Backends follow the model's device, are recorded in the run's config, and checkpoints move between machines.

No GPU here: a GPU host is simulated by patching ``torch.cuda.is_available`` and the import probes (tinycudann,
nerfacc's kernels), and a fake tinycudann stands in for the real one. Models are built for a device but never moved
to it, so no CUDA code runs.
"""

from __future__ import annotations

import copy
import importlib.abc
import logging
import sys
from pathlib import Path

import pytest
import torch
import yaml
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.data.scene_box import SceneBox
from torch import nn

from frinr_core.errors import InputError
from frinr_nerfstudio.method.models.dvgo import DVGOModelConfig
from frinr_nerfstudio.method.models.ngp import NGPModelConfig
from frinr_nerfstudio.method.samplers import NerfaccOccGrid, TorchOccGrid
from frinr_nerfstudio.nerfstudio_fixes import backends

BOX = SceneBox(aabb=torch.tensor([[-1.0] * 3, [1.0] * 3]))


class FakeTcnnEncoding(nn.Module):
    """Stands in for ``tinycudann.Encoding``: a module with tiny-cuda-nn's one flat parameter vector."""

    def __init__(self, n_input_dims: int, encoding_config: dict) -> None:
        super().__init__()
        self.params = nn.Parameter(torch.zeros(16))


def simulate_gpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process believes it runs on a CUDA machine with tinycudann and nerfacc's kernels."""
    import nerfstudio.field_components.encodings as encodings
    import nerfstudio.utils.external as external

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(external, "TCNN_EXISTS", True)
    monkeypatch.setattr(encodings, "TCNN_EXISTS", True)
    monkeypatch.setattr(encodings, "tcnn", type("tcnn", (), {"Encoding": FakeTcnnEncoding}))
    monkeypatch.setattr(backends, "nerfacc_kernel_problem", lambda: None)


@pytest.fixture
def gpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    simulate_gpu_host(monkeypatch)


def small_ngp(**settings) -> NGPModelConfig:
    config = NGPModelConfig(grid_levels=2, render_step_size=0.05, **settings)
    config.field.log2_hashmap_size, config.field.num_levels = 10, 2
    return config


def built(config, device: str):
    """The model nerfstudio's pipeline builds for ``device`` (settled, then populated; not moved)."""
    config.object_sphere = "off"  # a capture's parser without its files: nothing to find a sphere in
    config.settle(NerfstudioDataParserConfig(), device)
    return config.setup(scene_box=BOX, num_train_data=1, device=device)


def uses_tcnn(model) -> bool:
    return model.field.encoding.tcnn_encoding is not None


def test_auto_resolves_from_the_models_device_not_the_host(gpu_host) -> None:
    assert backends.hash_encoding("auto", "cuda:0") == "tcnn" and backends.occupancy_grid("auto", "cuda") == "nerfacc"
    assert backends.hash_encoding("auto", "cpu") == "torch" and backends.occupancy_grid("auto", "cpu") == "torch"
    on_gpu, on_cpu = built(small_ngp(), "cuda"), built(small_ngp(), "cpu")  # a GPU host, --machine.device-type cpu
    assert uses_tcnn(on_gpu) and isinstance(on_gpu.occupancy_grid, NerfaccOccGrid) and on_gpu.use_nerfacc
    assert on_gpu.config.grid_resolution == 128
    assert not uses_tcnn(on_cpu) and isinstance(on_cpu.occupancy_grid, TorchOccGrid) and not on_cpu.use_nerfacc
    assert on_cpu.config.grid_resolution == 64 and on_cpu.config.field.implementation == "torch"
    dvgo = DVGOModelConfig(mask_resolution=16)
    dvgo.coarse.voxels, dvgo.fine.voxels = 8**3, 8**3
    assert isinstance(built(copy.deepcopy(dvgo), "cuda").occupancy_grid, NerfaccOccGrid)
    assert isinstance(built(dvgo, "cpu").occupancy_grid, TorchOccGrid)


def test_without_cuda_auto_is_torch_and_tcnn_is_a_one_line_error() -> None:
    assert backends.hash_encoding("auto", "cpu") == backends.occupancy_grid("auto", "cpu") == "torch"
    config = small_ngp()
    config.field.implementation = "tcnn"
    with pytest.raises(
        InputError, match=r"implementation tcnn .*cannot run here.*--pipeline.model.field.implementation"
    ):
        built(config, "cpu")


def test_saved_config_records_what_auto_meant(gpu_host, tmp_path: Path, tiny_capture: Path) -> None:
    """ns-train saves config.yml before the model exists; our TrainerConfig settles first, so the file says which
    modules the checkpoint will hold — on a GPU host with --machine.device-type cpu, the CPU's — and the object
    sphere of the scene that ``--data`` names (the tiny scene's cameras orbit its object)."""
    from nerfstudio.configs.method_configs import all_methods

    for device, expected in (("cpu", ("torch", "torch", 64, False)), ("cuda", ("tcnn", "nerfacc", 128, True))):
        config = copy.deepcopy(all_methods["frinr-ngp"])
        config.output_dir, config.machine.device_type = tmp_path / device, device
        config.pipeline.datamanager.dataparser = NerfstudioDataParserConfig()
        config.pipeline.datamanager.data = tiny_capture  # what ns-train --data sets
        config.mixed_precision = True
        config.set_timestamp()
        config.save_config()
        saved = yaml.load((config.get_base_dir() / "config.yml").read_text(), Loader=yaml.Loader)
        model = saved.pipeline.model
        recorded = (model.field.implementation, model.occupancy_backend, model.grid_resolution, saved.mixed_precision)
        assert recorded == expected and model.contraction == "on" and model.background_color == "learned"
        assert model.cone_angle == 0.02  # the step growth with contraction (CONTRACTED_CONE_ANGLE)
        assert isinstance(model.object_sphere, tuple) and len(model.object_sphere) == 4


def test_cpu_trained_run_loads_on_a_gpu_host(trained_ngp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ns-eval / ns-viewer / ns-render / frinr export on a GPU host rebuild the recorded torch modules."""
    config = yaml.load(trained_ngp.read_text(), Loader=yaml.Loader)
    model_config = config.pipeline.model
    assert (model_config.field.implementation, model_config.occupancy_backend) == ("torch", "torch")
    state = torch.load(next(trained_ngp.parent.glob("nerfstudio_models/*.ckpt")), weights_only=False)["pipeline"]
    model_state = {k[len("_model.") :]: v for k, v in state.items() if k.startswith("_model.")}
    simulate_gpu_host(monkeypatch)
    model = built(copy.deepcopy(model_config), "cuda")
    assert not uses_tcnn(model) and isinstance(model.occupancy_grid, TorchOccGrid)
    model.load_state_dict(model_state)
    assert torch.equal(model.occupancy_grid.binaries, model_state["occupancy_grid.binaries"])


def test_gpu_trained_run_on_a_cpu_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its nerfacc grid loads into the torch grid (same cells); its tiny-cuda-nn hash encoding cannot be rebuilt here,
    which is one line naming the setting, at build time or (for a run saved before recording) at load time."""
    with monkeypatch.context() as patched:
        simulate_gpu_host(patched)
        trained = built(small_ngp(contraction="on", grid_resolution=32), "cuda")
        with torch.no_grad():
            trained.occupancy_grid.binaries.copy_(torch.rand(trained.occupancy_grid.binaries.shape) > 0.5)
            trained.occupancy_grid.occs.copy_(torch.rand(trained.occupancy_grid.occs.shape))
        state, recorded = trained.state_dict(), copy.deepcopy(trained.config)
    assert (recorded.field.implementation, recorded.occupancy_backend) == ("tcnn", "nerfacc")
    with pytest.raises(InputError, match="implementation tcnn"):
        built(copy.deepcopy(recorded), "cpu")

    recorded.field.implementation = "torch"  # a run trained with torch encodings and nerfacc's grid
    cpu = built(copy.deepcopy(recorded), "cpu")
    assert isinstance(cpu.occupancy_grid, TorchOccGrid)
    grid_state = {k: v for k, v in state.items() if k.startswith("occupancy_grid.")}
    cpu.load_state_dict({**cpu.state_dict(), **grid_state})
    assert torch.equal(cpu.occupancy_grid.binaries, state["occupancy_grid.binaries"])
    torch.testing.assert_close(cpu.occupancy_grid.aabbs, state["occupancy_grid.aabbs"])

    old_style = built(small_ngp(contraction="on", grid_resolution=32), "cpu")  # saved before recording: auto
    with pytest.raises(InputError, match=r"hash encoding is tiny-cuda-nn's .*load it where tinycudann runs"):
        old_style.load_state_dict(state)


def test_torch_checkpoint_into_tcnn_model_names_the_setting(gpu_host) -> None:
    cpu_state = built(small_ngp(grid_resolution=32), "cpu").state_dict()
    with pytest.raises(InputError, match=r"set implementation: torch .*--pipeline.model.field.implementation torch"):
        built(small_ngp(grid_resolution=32), "cuda").load_state_dict(cpu_state)


def test_grid_checkpoints_convert_both_ways_and_from_before_the_layout_change() -> None:
    box = torch.tensor([-1.0, -2.0, -1.0, 1.0, 2.0, 1.0])
    torch_grid = TorchOccGrid(box, resolution=8, levels=2)
    with torch.no_grad():
        torch_grid.binaries.copy_(torch.rand(torch_grid.binaries.shape) > 0.5)
        torch_grid.occs.uniform_(-1, 1)
    nerfacc_grid = NerfaccOccGrid(roi_aabb=box, resolution=8, levels=2)
    torch.testing.assert_close(nerfacc_grid.aabbs, torch_grid.aabbs)  # the same level boxes
    nerfacc_grid.load_state_dict(torch_grid.state_dict())
    assert torch.equal(nerfacc_grid.binaries, torch_grid.binaries) and (nerfacc_grid.occs >= 0).all()
    back = TorchOccGrid(box, resolution=8, levels=2)
    back.load_state_dict(nerfacc_grid.state_dict())
    assert torch.equal(back.binaries, torch_grid.binaries)
    points = torch.rand(500, 3) * 4 - 2
    assert torch.equal(back.occupied(points), torch_grid.occupied(points))

    old = {k: v for k, v in torch_grid.state_dict().items() if k != "aabbs"}  # frinr before 2026-12
    old |= {"center": torch.tensor([0.0, 0.0, 0.0]), "half_extent": torch.tensor([1.0, 2.0, 1.0])}
    restored = TorchOccGrid(torch.zeros(6), resolution=8, levels=2)
    restored.load_state_dict(old)
    torch.testing.assert_close(restored.aabbs, torch_grid.aabbs)


def test_resuming_a_run_rebuilds_its_recorded_backends(trained_ngp: Path, monkeypatch, tmp_path: Path) -> None:
    """``ns-train frinr-ngp --load-dir RUN/nerfstudio_models`` on a GPU host: auto takes the run's recorded torch
    modules, so its checkpoint loads."""
    from nerfstudio.configs.method_configs import all_methods

    simulate_gpu_host(monkeypatch)
    config = copy.deepcopy(all_methods["frinr-ngp"])
    config.output_dir, config.machine.device_type = tmp_path, "cuda"
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig()
    config.load_dir = trained_ngp.parent / "nerfstudio_models"
    config.set_timestamp()
    config.save_config()
    model = config.pipeline.model
    assert (model.field.implementation, model.occupancy_backend, model.grid_resolution) == ("torch", "torch", 16)


class FailingBuild(importlib.abc.MetaPathFinder):
    """Makes ``import nerfacc.cuda._backend`` fail as a broken nvcc build does, counting the attempts."""

    attempts = 0

    def find_spec(self, name, path, target=None):
        if name == "nerfacc.cuda._backend":
            FailingBuild.attempts += 1
            raise RuntimeError("Error building extension 'nerfacc_cuda': nvcc fatal : Unsupported gpu architecture")
        return None


def test_failed_nerfacc_build_is_said_once_and_falls_back(monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delitem(sys.modules, "nerfacc.cuda._backend", raising=False)
    monkeypatch.setattr(sys, "meta_path", [FailingBuild(), *sys.meta_path])
    backends.nerfacc_kernel_problem.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="frinr"):
            choices = [backends.occupancy_grid("auto", "cuda") for _ in range(3)]
            models = [built(small_ngp(), "cuda") for _ in range(2)]  # model constructions do not retry the build
    finally:
        backends.nerfacc_kernel_problem.cache_clear()
    assert choices == ["torch"] * 3 and all(isinstance(m.occupancy_grid, TorchOccGrid) for m in models)
    assert FailingBuild.attempts == 1
    messages = [r.getMessage() for r in caplog.records if "nerfacc" in r.getMessage()]
    assert len(messages) == 1 and "Unsupported gpu architecture" in messages[0] and "\n" not in messages[0]


def test_built_ins_render_in_smaller_chunks_on_the_cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """nerfacto's 32 768-ray rendering chunk held 12–14 GB on the CPU; adapt_to_machine caps it there, not on CUDA."""
    from nerfstudio.configs.method_configs import all_methods

    from frinr_nerfstudio.nerfstudio_fixes.machine import CPU_EVAL_CHUNK, adapt_to_machine

    stock = all_methods["nerfacto"].pipeline.model.eval_num_rays_per_chunk
    assert stock > CPU_EVAL_CHUNK
    on_cpu = copy.deepcopy(all_methods["nerfacto"])
    adapt_to_machine(on_cpu)
    assert on_cpu.pipeline.model.eval_num_rays_per_chunk == CPU_EVAL_CHUNK
    small = copy.deepcopy(all_methods["frinr-ngp"])
    adapt_to_machine(small)
    assert (
        small.pipeline.model.eval_num_rays_per_chunk == all_methods["frinr-ngp"].pipeline.model.eval_num_rays_per_chunk
    )
    simulate_gpu_host(monkeypatch)
    on_gpu = copy.deepcopy(all_methods["nerfacto"])
    adapt_to_machine(on_gpu)
    assert on_gpu.pipeline.model.eval_num_rays_per_chunk == stock
