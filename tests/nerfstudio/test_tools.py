"""`frinr compare` and `frinr export` on the tiny generated scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ns

from frinr_core import FourierLinear
from frinr_core.cli import main
from frinr_core.errors import InputError


def test_compare_isolates_failures_writes_summaries_and_resumes(tiny_scene: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "--methods", "no-such-method", "frinr-ngp", "nerfacto", "--data", str(tiny_scene), "--steps",
            "3", "--rays-per-batch", "64", "--views", "2", "--eval-views", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["method"]: row for row in summary["runs"]}
    assert rows["no-such-method"]["status"] == "failed" and "unknown method" in rows["no-such-method"]["error"]
    row = rows["frinr-ngp"]  # a failure before it did not stop it
    assert row["status"] == "ok" and row["steps"] == 3 and 0 < row["psnr"] < 60 and row["params"] > 0
    assert row["train_rays_per_second"] > 0 and row["peak_memory_mb"] > 0 and Path(row["checkpoint"]).exists()
    assert row["memory"] == "host (max RSS)"  # a CPU run: the process's resident memory
    assert row["eval_views"] == [0] and row["render_seconds_per_view"] > 0 and summary["eval_views"] == 1
    saved = yaml.load(Path(row["config"]).read_text(), Loader=yaml.Loader)  # loadable outside the training process
    assert saved.method_name == "frinr-ngp" and saved._target.__module__ == "nerfstudio.engine.trainer"
    builtin = rows["nerfacto"]  # a built-in method: moved to the CPU, torch encodings, LPIPS n/a offline
    assert builtin["status"] == "ok" and builtin["steps"] == 3 and 0 < builtin["psnr"] < 60
    assert builtin["lpips"] is None or 0 <= builtin["lpips"] <= 1
    markdown = (out / "summary.md").read_text()
    assert "| frinr-ngp |" in markdown and "no-such-method: " in markdown
    assert "Evaluated on test views [0] (the same for every method)" in markdown
    for figure in ("psnr.png", "views.png"):
        assert (out / figure).stat().st_size > 0

    finished = {m: (out / m / "result.json").stat().st_mtime_ns for m in ("frinr-ngp", "nerfacto")}
    capsys.readouterr()
    assert main(args) == 0
    assert "finished earlier" in capsys.readouterr().out
    for method, mtime in finished.items():
        assert (out / method / "result.json").stat().st_mtime_ns == mtime  # kept, not retrained


def test_each_child_gets_the_comparisons_settings_on_its_command_line(tiny_capture: Path) -> None:
    """frinr compare passes every setting explicitly (the downscale factor it decided too): nothing is left for a child
    to choose, or to ask about at a prompt."""
    import tyro

    from frinr_nerfstudio.tools.budgeted import BudgetRun, configure

    run = BudgetRun(method="frinr-ngp", data=tiny_capture, out=Path("out"), dataparser="nerfstudio-data", minutes=1.5,
                    downscale=2, eval_views=3)  # fmt: skip
    assert tyro.cli(BudgetRun, args=run.argv()) == run
    assert configure(run).pipeline.datamanager.dataparser.downscale_factor == 2
    with pytest.raises(InputError, match="blender-data has no downscale option"):
        configure(BudgetRun(method="frinr-ngp", data=tiny_capture, out=Path("out"), steps=1, downscale=2))
    with pytest.raises(InputError, match="exactly one budget"):
        BudgetRun(method="frinr-ngp", data=tiny_capture, out=Path("out"), steps=1, minutes=1.0).check()


def test_a_views_render_seconds_leave_out_the_metrics(monkeypatch, tmp_path: Path) -> None:
    """ns-eval times a view together with its metrics (LPIPS loads AlexNet on the first) and image writing; the
    render seconds of a comparison are the render's alone. On a fake clock each render takes 2 s, each view's metrics
    5 s."""
    from types import SimpleNamespace

    from torch.utils.data import Dataset

    from frinr_nerfstudio.tools import budgeted

    clock = [0.0]
    monkeypatch.setattr(budgeted.time, "perf_counter", lambda: clock[0])

    class Views(Dataset):
        cameras = SimpleNamespace(to=lambda device: None)

        def __len__(self) -> int:
            return 5

    class Model:
        def get_outputs_for_camera(self, camera) -> dict:
            clock[0] += 2.0
            return {}

    class Pipeline:
        model, device = Model(), "cpu"
        datamanager = SimpleNamespace(eval_dataset=Views())

        def get_average_eval_image_metrics(self, output_path: Path) -> dict:
            for view in self.datamanager.fixed_indices_eval_dataloader.image_indices:
                self.model.get_outputs_for_camera(view)
                clock[0] += 5.0  # metrics and images
            return {"psnr": 20.0, "fps": 1 / 7}

    pipeline = Pipeline()
    result = budgeted.evaluate(pipeline, 3, tmp_path)
    assert result["eval_views"] == [0, 2, 4] and result["render_seconds_per_view"] == 2.0
    assert "get_outputs_for_camera" not in vars(pipeline.model)  # the timing wrapper is gone afterwards

    def finish_queued_gpu_work(device) -> None:  # a GPU render returns before its kernels finish: 1 s more here
        clock[0] += 1.0

    monkeypatch.setattr(torch.cuda, "synchronize", finish_queued_gpu_work)
    pipeline.device = "cuda"
    assert budgeted.evaluate(pipeline, 3, tmp_path)["render_seconds_per_view"] == 3.0


@pytest.mark.parametrize(("args", "message"), [([], "--data is required"), (["--data", "/no/such/dir"], "not found")])
def test_compare_bad_input(args, message, tmp_path: Path, capsys) -> None:
    assert main(["compare", "--steps", "1", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_export_renders_the_same_as_a_smaller_baseline_checkpoint(trained_ngp: Path, tmp_path: Path) -> None:
    from nerfstudio.utils.eval_utils import eval_setup

    assert main(["export", "--load-config", str(trained_ngp), "--out", str(tmp_path)]) == 0
    (exported,) = tmp_path.glob("*/frinr-ngp-baseline/*/config.yml")
    _, fr_pipeline, fr_checkpoint, _ = eval_setup(trained_ngp, test_mode="test")
    _, folded_pipeline, folded_checkpoint, _ = eval_setup(exported, test_mode="test")
    fr_heads = {name for name, m in fr_pipeline.model.field.named_modules() if isinstance(m, FourierLinear)}
    assert {name.split(".")[0] for name in fr_heads} == {"density_head", "colour_head"}
    assert all(type(folded_pipeline.model.field.get_submodule(name)) is torch.nn.Linear for name in fr_heads)
    assert folded_checkpoint.stat().st_size < fr_checkpoint.stat().st_size
    for pipeline in (fr_pipeline, folded_pipeline):
        pipeline.eval()
    for camera, _ in fr_pipeline.datamanager.fixed_indices_eval_dataloader:
        with torch.no_grad():
            expected = fr_pipeline.model.get_outputs_for_camera(camera)["rgb"]
            got = folded_pipeline.model.get_outputs_for_camera(camera)["rgb"]
        assert (got - expected).abs().max().item() <= 1e-4
    ns("ns-eval", "--load-config", str(exported), "--output-path", str(tmp_path / "eval.json"))


def test_export_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["export", "--load-config", str(tmp_path / "missing.yml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_every_benchmarked_fr_variant_names_real_settings() -> None:
    """The FR sweeps' variants (dotted paths into a method's config, dicts entered by key, callables mapping the old
    value) all resolve: a renamed setting fails here, not an hour into a sweep."""
    import copy

    from nerfstudio.configs.method_configs import all_methods

    from benchmarks.bench_dvgo import cpu_recipe
    from benchmarks.nerf import apply
    from benchmarks.sweep_fr import VARIANTS

    for method, variants in VARIANTS.items():
        for overrides in variants.values():
            config = copy.deepcopy(all_methods[method])
            if method == "frinr-dvgo":
                cpu_recipe(config)
            apply(config, overrides)
    config = copy.deepcopy(all_methods["frinr-dvgo"])
    mlps = config.optimizers["mlps"]
    before = (mlps["optimizer"].lr, mlps["scheduler"].lr_final)
    apply(config, VARIANTS["frinr-dvgo"]["paper-lr-x3"])
    assert (mlps["optimizer"].lr, mlps["scheduler"].lr_final) == pytest.approx((3 * before[0], 3 * before[1]))
    assert config.pipeline.model.field.rgbnet.fr
    apply(config, VARIANTS["frinr-dvgo"]["baseline"])
    assert not config.pipeline.model.field.rgbnet.fr
    with pytest.raises(KeyError, match="no setting"):
        apply(config, {"pipeline.model.field.rgbnet.no_such": 1})


def test_every_capture_sweep_variant_names_real_settings() -> None:
    """The capture sweep's variants (dotted paths into frinr-ngp's model config) all resolve and keep their values."""
    from benchmarks.nerf import apply
    from benchmarks.sweep_captures import VARIANTS
    from frinr_nerfstudio.method.models.ngp import NGPModelConfig

    for overrides in VARIANTS.values():
        model = NGPModelConfig()
        apply(model, overrides)
        assert model.near_plane == overrides["near_plane"] and model.far_plane == overrides["far_plane"]
        assert model.object_sphere == overrides["object_sphere"]  # stated, so "defaults" keeps its meaning
