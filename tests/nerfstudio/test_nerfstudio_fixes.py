"""nerfstudio_fixes: checkpoints under torch's weights_only loading, offline LPIPS, one-line InputErrors, large CPU
buffers reused, CPU workers for our runs only, and the version guard with its list of private names."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nerfstudio.engine.optimizers import AdamOptimizerConfig, Optimizers
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import Trainer

from frinr_core import metrics
from frinr_nerfstudio import nerfstudio_fixes
from frinr_nerfstudio.nerfstudio_fixes.lpips import MissingLpips, offline_lpips


@pytest.fixture
def no_safe_globals():
    """Start from torch's own allow-list (as a fresh process does) and restore whatever was there."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def _optimizers(model: torch.nn.Module) -> Optimizers:
    config = {
        "fields": {
            "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=100),
        }
    }
    return Optimizers(config, {"fields": list(model.parameters())})


def _saved_checkpoint(where: Path) -> Path:
    """A checkpoint written by nerfstudio's own Trainer.save_checkpoint after two optimizer steps."""
    model = torch.nn.Linear(3, 2)
    optimizers = _optimizers(model)
    for step in range(2):
        model(torch.ones(4, 3)).square().mean().backward()
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
    trainer = SimpleNamespace(
        checkpoint_dir=where,
        pipeline=model,
        optimizers=optimizers,
        grad_scaler=torch.amp.GradScaler("cpu", enabled=False),
        config=SimpleNamespace(save_only_latest_checkpoint=True),
    )
    Trainer.save_checkpoint(trainer, 2)
    return where / "step-000000002.ckpt"


def test_checkpoint_needs_the_allow_list_and_it_suffices(tmp_path: Path, no_safe_globals) -> None:
    path = _saved_checkpoint(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match="numpy"):
        torch.load(path, map_location="cpu")  # the default since torch 2.6: weights_only=True
    nerfstudio_fixes.install()
    state = torch.load(path, map_location="cpu")
    assert state["step"] == 2
    assert isinstance(state["schedulers"]["fields"]["_last_lr"][0], np.float64)  # why the allow-list exists
    resumed = _optimizers(torch.nn.Linear(3, 2))  # what `ns-train --load-dir` does with it
    resumed.load_optimizers(state["optimizers"])
    resumed.load_schedulers(state["schedulers"])
    assert math.isclose(
        resumed.optimizers["fields"].param_groups[0]["lr"], state["schedulers"]["fields"]["_last_lr"][0]
    )


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("payload", [np.zeros(3), _RunsCode(), np.float32(1.0)], ids=["ndarray", "reduce", "float32"])
def test_other_globals_are_still_refused(tmp_path: Path, payload: object) -> None:
    nerfstudio_fixes.install()
    torch.save({"step": 1, "extra": payload}, tmp_path / "other.ckpt")
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "other.ckpt")


def test_uncaught_input_error_is_one_line_after_install() -> None:
    code = (
        "from frinr_nerfstudio import nerfstudio_fixes as fixes; fixes.install(); fixes.install()\n"
        "from frinr_core.errors import InputError; raise InputError('scene has no test split')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "warn" not in line.lower()]
    assert result.returncode == 1 and errors == ["frinr: error: scene has no test split"]


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's allocator settings")
def test_a_freed_large_buffer_is_reused_after_install_not_faulted_in_again() -> None:
    """A training step frees and reallocates its 64 MB hash-table gradient; after install(), once the first few steps'
    blocks are on the heap (an aligned request is a few bytes larger than the block it freed, so the first reuses wait
    for freed neighbours to merge), an allocation reuses freed pages. Stock glibc unmaps every such block on free
    and faults in all 16 384 pages again each time."""
    code = (
        "import resource, torch\n"
        "from frinr_nerfstudio import nerfstudio_fixes; nerfstudio_fixes.install()\n"
        "def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for step in range(8): grad = torch.zeros(1 << 24); del grad\n"
        "before = faults(); grad = torch.zeros(1 << 24); print(faults() - before)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    pages = (1 << 24) * 4 // 4096
    assert int(result.stdout.split()[-1]) < pages // 10


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch):
    """AlexNet's weights cannot be downloaded (whether or not they are cached here)."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", refuse)
    metrics.load_lpips.cache_clear()
    yield
    metrics.load_lpips.cache_clear()


def _nerfacto():
    from nerfstudio.data.scene_box import SceneBox
    from nerfstudio.models.nerfacto import NerfactoModelConfig

    box = SceneBox(aabb=torch.tensor([[-1.5] * 3, [1.5] * 3]))
    return NerfactoModelConfig().setup(scene_box=box, num_train_data=2, metadata={})


def test_nerfacto_builds_offline_with_the_guard(offline, caplog: pytest.LogCaptureFixture) -> None:
    import torchmetrics.image.lpip as lpip

    real = lpip.LearnedPerceptualImagePatchSimilarity
    with pytest.raises(urllib.error.URLError):
        _nerfacto()  # stock nerfstudio offline
    with offline_lpips():
        first, second = _nerfacto(), _nerfacto()
    assert isinstance(first.lpips, MissingLpips) and isinstance(second.lpips, MissingLpips)
    assert torch.isnan(first.lpips(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)))
    assert len([r for r in caplog.records if "LPIPS unavailable" in r.getMessage()]) == 1
    assert lpip.LearnedPerceptualImagePatchSimilarity is real  # scoped: frinr_core's load_lpips still sees None


def test_every_private_or_patched_name_still_exists() -> None:
    """A nerfstudio (or nerfacc, torch) upgrade that renames one of them fails here, not in a user's run."""
    import importlib
    import inspect

    for module_name, name in nerfstudio_fixes.PRIVATE_SYMBOLS:
        if module_name == "nerfacc.cuda._backend":  # importing it builds CUDA kernels where nvcc exists: read it
            source = Path(importlib.util.find_spec(module_name).origin).read_text()
            assert f"{name} = " in source, f"{module_name}.{name}"
            continue
        module = importlib.import_module(module_name)
        owner_name, _, attribute = name.rpartition(".")
        if owner_name:  # an instance attribute set in the class's __init__
            owner = getattr(module, owner_name)
            assert f"self.{attribute} =" in inspect.getsource(owner.__init__), f"{module_name}.{name}"
        else:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_version_guard_matches_the_pin_and_skips_the_private_fix_on_another_version(monkeypatch, caplog) -> None:
    import re

    import torch.multiprocessing as mp

    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert re.findall(r'"nerfstudio\s*([<>=~!][^"]*)"', pyproject) == [f"=={nerfstudio_fixes.NERFSTUDIO_VERSION}"]

    monkeypatch.setattr(mp, "spawn", lambda *args, **kwargs: None)  # a fresh process's stock spawn
    monkeypatch.setattr(nerfstudio_fixes.importlib.metadata, "version", lambda name: "1.2.0")
    with caplog.at_level("WARNING", logger="frinr"):
        nerfstudio_fixes.install()
    (line,) = [r.getMessage() for r in caplog.records if "nerfstudio 1.2.0" in r.getMessage()]
    assert "not patched: CPU workers" in line and "\n" not in line
    assert not getattr(mp.spawn, "frinr", False)


def test_cpu_workers_only_for_our_pipelines(monkeypatch) -> None:
    """A built-in method's CPU DDP run keeps nerfstudio's stock worker; ours gets the gloo one."""
    import copy

    import torch.multiprocessing as mp
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.scripts.train import _distributed_worker

    from frinr_nerfstudio.nerfstudio_fixes import distributed

    called = []
    monkeypatch.setattr(mp, "spawn", lambda fn, args=(), *rest, **kwargs: called.append(fn))
    distributed.route_cpu_workers()
    for method, expected in (("nerfacto", _distributed_worker), ("frinr-ngp", distributed._worker)):
        config = copy.deepcopy(all_methods[method])
        mp.spawn(_distributed_worker, args=(print, 2, 2, 0, "tcp://127.0.0.1:1", config, None, "cpu"))
        assert called[-1] is expected, method
    mp.spawn(_distributed_worker, args=(print, 2, 2, 0, "tcp://127.0.0.1:1", config, None, "cuda"))
    assert called[-1] is _distributed_worker  # CUDA runs keep the stock worker and NCCL
