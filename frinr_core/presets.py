"""Presets: YAML files in ``configs/`` that set a runner's defaults; command-line flags override them.

A preset names its runner and says in one line what it reproduces::

    description: Paper 2D setting, ReLU, FR hidden layers (L=H=128, P=32, alpha 0.05)
    task: fit2d
    settings:
      network: {arch: relu, hidden_features: 256, hidden_layers: 3}
      train: {steps: 3000, lr: 1.0e-4}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from frinr_core.errors import InputError, first_line

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Preset:
    name: str
    task: str
    description: str
    settings: dict[str, Any]


def read_preset(path: Path) -> Preset:
    if not path.is_file():
        raise InputError(f"preset file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"preset {path} is not valid YAML: {first_line(error)}") from None
    if not isinstance(data, dict) or not {"task", "description"} <= data.keys():
        raise InputError(f"preset {path} must be a mapping with 'task', 'description' and 'settings'")
    return Preset(path.stem, str(data["task"]), str(data["description"]), data.get("settings") or {})


def all_presets() -> list[Preset]:
    return [read_preset(path) for path in sorted(CONFIG_DIR.glob("*.yaml"))]


def find_preset(name: str) -> Preset:
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.name for p in all_presets())
        raise InputError(f"unknown preset {name!r}; available: {known}")
    return read_preset(path)


def apply(config: Any, settings: dict[str, Any], where: str = "") -> Any:
    """A copy of dataclass ``config`` with ``settings`` (nested dicts for nested dataclasses) applied."""
    if not isinstance(settings, dict):
        raise InputError(f"preset setting {where or 'settings'} must be a mapping, got {settings!r}")
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in settings.items():
        if key not in names:
            raise InputError(f"unknown preset setting {where + key!r}; known: {', '.join(sorted(names))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            value = apply(current, value, f"{where}{key}.")
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, str) and (isinstance(current, Path) or key in ("image", "out", "volume", "mesh")):
            value = Path(value)
        changes[key] = value
    return dataclasses.replace(config, **changes)


def defaults_from_argv(config: Any, task: str, argv: list[str]) -> Any:
    """``config`` with the ``--preset NAME`` or ``--config FILE`` given in ``argv`` applied, if any."""
    for flag, lookup in (("--preset", find_preset), ("--config", lambda value: read_preset(Path(value)))):
        for index, arg in enumerate(argv):
            value = arg.split("=", 1)[1] if arg.startswith(flag + "=") else None
            if arg == flag and index + 1 < len(argv):
                value = argv[index + 1]
            if value is not None:
                preset = lookup(value)
                if preset.task != task:
                    raise InputError(f"preset {preset.name!r} is for `frinr {preset.task}`, not `frinr {task}`")
                config = apply(config, preset.settings)
    return config
