"""Presets: YAML files that set a runner's defaults; command-line flags override them.

The shipped presets live inside the package, in ``frinr_core/configs/``, and are read with
``importlib.resources``: they are package data, so a wheel install (``pip install .``) has them exactly as an
editable install or a source checkout does. The repository's top-level ``configs/`` is a symlink to that
folder — the place the README points to, with no second copy to keep in step.

A preset names its runner and says in one line what it reproduces::

    description: Paper 2D setting, ReLU, FR hidden layers (L=H=128, P=32, alpha 0.05)
    task: fit2d
    settings:
      network: {arch: relu, hidden_features: 256, hidden_layers: 3}
      train: {steps: 3000, lr: 1.0e-4}

YAML cannot say that a string is a path or a list a tuple; the config dataclass's field types do (see
:func:`apply`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from frinr_core.errors import InputError, first_line

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@dataclass(frozen=True)
class Preset:
    name: str
    task: str
    description: str
    settings: dict[str, Any]


def _parse(name: str, text: str, where: str) -> Preset:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"preset {where} is not valid YAML: {first_line(error)}") from None
    if not isinstance(data, dict) or not {"task", "description"} <= data.keys():
        raise InputError(f"preset {where} must be a mapping with 'task', 'description' and 'settings'")
    return Preset(name, str(data["task"]), str(data["description"]), data.get("settings") or {})


def read_preset(path: Path) -> Preset:
    """A preset file of the user's own (``--config FILE``)."""
    if not path.is_file():
        raise InputError(f"preset file not found: {path}")
    return _parse(path.stem, path.read_text(), str(path))


def _shipped() -> dict[str, Traversable]:
    folder = resources.files("frinr_core") / "configs"
    return {item.name.removesuffix(".yaml"): item for item in folder.iterdir() if item.name.endswith(".yaml")}


def all_presets() -> list[Preset]:
    return [_parse(name, item.read_text(), name) for name, item in sorted(_shipped().items())]


def find_preset(name: str) -> Preset:
    shipped = _shipped()
    if name not in shipped:
        raise InputError(f"unknown preset {name!r}; available: {', '.join(sorted(shipped))}")
    return _parse(name, shipped[name].read_text(), name)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field type ``hint`` takes it where YAML cannot tell: paths, tuples, floats like 1e-4."""
    kinds = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if value is None or (isinstance(value, str) and str in kinds):
        return value
    for kind in kinds:
        origin = typing.get_origin(kind) or kind
        if origin is Path and isinstance(value, str):
            return Path(value)
        if origin is tuple and isinstance(value, list):
            return tuple(value)
        if origin is float and isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise InputError(f"preset setting {where!r} must be a number, got {value!r}") from None
    return value


def apply(config: Any, settings: dict[str, Any], where: str = "") -> Any:
    """A copy of dataclass ``config`` with ``settings`` (nested dicts for nested dataclasses) applied."""
    if not isinstance(settings, dict):
        raise InputError(f"preset setting {where or 'settings'} must be a mapping, got {settings!r}")
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in settings.items():
        if key not in names:
            raise InputError(f"unknown preset setting {where + key!r}; known: {', '.join(sorted(names))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current):
            changes[key] = apply(current, value, f"{where}{key}.")
        else:
            changes[key] = _coerce(value, hints[key], where + key)
    return dataclasses.replace(config, **changes)


def defaults(config: Any, task: str, preset: str | None, path: Path | None) -> Any:
    """``config`` with the shipped ``preset`` and then the preset file at ``path`` applied (either may be None)."""
    for chosen in (find_preset(preset) if preset else None, read_preset(path) if path else None):
        if chosen is None:
            continue
        if chosen.task != task:
            raise InputError(f"preset {chosen.name!r} is for `frinr {chosen.task}`, not `frinr {task}`")
        config = apply(config, chosen.settings)
    return config
