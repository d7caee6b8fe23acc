"""Presets: shipped inside the package (a wheel has them), parsed by tyro, typed by the config's fields."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from frinr_core import presets
from frinr_core.cli import commands, main, parse
from frinr_core.errors import InputError
from frinr_core.tasks.fit2d import Fit2dConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_preset_applies_to_its_runner():
    available = commands()
    shipped = presets.all_presets()
    assert {p.name for p in shipped} >= {"demo", "fit2d-pe-paper", "occupancy-cpu", "fit1d-cpu"}
    for preset in shipped:
        config = presets.apply(available[preset.task].config(), preset.settings)
        assert config != available[preset.task].config(), preset.name


def test_fit1d_decays_its_rate_but_the_paper_presets_keep_the_official_constant_rate():
    fit1d = commands()["fit1d"].config()
    assert fit1d.train.lr_decay == 0.1
    for name in ("fit1d-relu-paper", "fit1d-siren-paper"):
        paper = presets.defaults(fit1d, "fit1d", name, None).train
        assert (paper.steps, paper.lr, paper.lr_decay, paper.lr_milestones) == (10000, 1e-6, 1.0, ())


def test_the_top_level_configs_folder_is_the_package_folder():
    assert (ROOT / "configs").resolve() == (ROOT / "frinr_core" / "configs").resolve()


@dataclass
class Inner:
    rates: tuple[float, ...] = ()


@dataclass
class Example:
    where: Path | None = None
    name: str | None = None
    lr: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_field_types_decide_paths_tuples_and_numbers():
    config = presets.apply(Example(), {"where": "a/b.png", "name": "a/b", "lr": "1e-4", "inner": {"rates": [1, 2]}})
    assert config == Example(Path("a/b.png"), "a/b", 1e-4, Inner((1, 2)))
    with pytest.raises(InputError, match="'lr' must be a number"):
        presets.apply(Example(), {"lr": "fast"})
    with pytest.raises(InputError, match="unknown preset setting 'inner.rate'"):
        presets.apply(Example(), {"inner": {"rate": 1}})


def test_preset_then_file_then_flags(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("description: d\ntask: fit2d\nsettings:\n  size: 24\n  image: pics/a.png\n  train: {steps: 9}\n")
    config = parse(Fit2dConfig, "fit2d", ["--preset", "demo", f"--config={mine}", "--steps", "3"])
    assert (config.size, config.image, config.train.steps) == (24, Path("pics/a.png"), 3)
    assert config.compare and config.network.arch == "pe"  # from demo, untouched by the file and the flags
    assert parse(Fit2dConfig, "fit2d", ["--preset=demo", "--no-compare"]).compare is False


def test_a_preset_for_another_runner_is_refused(capsys):
    assert main(["fit1d", "--preset", "demo"]) == 2
    assert "is for `frinr fit2d`" in capsys.readouterr().err


def test_a_wheel_carries_the_presets(tmp_path):
    """Build a wheel from a copy of the sources, install it alone into a directory and run it from elsewhere."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for package in ("frinr_core", "frinr_nerfstudio"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel", source], check=True)
    (wheel,) = (tmp_path / "wheel").glob("frinr-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True)
    shutil.rmtree(source)  # nothing of the source tree is left to fall back on

    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}

    def frinr(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "frinr_core.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    located = [sys.executable, "-c", "import frinr_core; print(frinr_core.__file__)"]
    origin = subprocess.run(located, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(origin.strip()).is_relative_to(site)
    listing = frinr("presets")
    assert {line.split()[0] for line in listing.splitlines()} == {p.name for p in presets.all_presets()}
    frinr("fit2d", "--preset", "demo", "--steps", "5", "--out", "demo")
    payload = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert [(r["name"], r["steps"]) for r in payload["runs"]] == [("pe", 5), ("pe+fr", 5)]
    assert payload["comparison"]["rates"] == "tuned"  # the demo compares each arm at its own tuned rate
