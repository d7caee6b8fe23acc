"""The `frinr` command: one tyro-parsed subcommand per runner, presets applied before flags.

Subcommands of other packages (the nerfstudio plugin's `compare`, `export`, `make-scene`) register
through the ``frinr.commands`` entry-point group, so this core never imports them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import tyro

from frinr_core import presets
from frinr_core.errors import first_line


@dataclass(frozen=True)
class Command:
    """A `frinr` subcommand: a dataclass config parsed by tyro, and the function that runs it."""

    config: type
    run: Callable[[Any], object]
    summary: str


@dataclass
class PresetsConfig:
    """List the shipped presets (configs/) with their one-line descriptions."""

    task: str | None = None
    """Only presets for this subcommand."""


def list_presets(config: PresetsConfig) -> None:
    rows = [p for p in presets.all_presets() if config.task in (None, p.task)]
    width = max((len(p.name) for p in rows), default=0)
    for preset in rows:
        print(f"{preset.name:<{width}}  [{preset.task}]  {preset.description}")


def commands() -> dict[str, Command]:
    from frinr_core.tasks import fit1d, fit2d, occupancy

    found = {
        "fit1d": Command(fit1d.Fit1dConfig, fit1d.run, "fit a 1D signal, per-frequency error and NTK spectra"),
        "fit2d": Command(fit2d.Fit2dConfig, fit2d.run, "fit an image (the paper's 2D experiment)"),
        "occupancy": Command(occupancy.OccupancyConfig, occupancy.run, "fit a 3D occupancy volume, IoU and meshes"),
        "presets": Command(PresetsConfig, list_presets, "list presets with their descriptions"),
    }
    for entry in entry_points(group="frinr.commands"):
        found[entry.name] = entry.load()
    return found


def parse(config_type: type, name: str, args: list[str]) -> Any:
    """``args`` as a ``config_type``, with the ``--preset``/``--config`` they name as defaults under the flags.

    tyro reads the arguments twice: first for which preset they name (help and unknown flags are left for
    the second pass), then with that preset's settings as the defaults every other flag overrides.
    """
    prog = f"frinr {name}"
    default = config_type()
    if {"preset", "config"} <= {f.name for f in dataclasses.fields(config_type)}:
        named, _ = tyro.cli(config_type, args=args, prog=prog, add_help=False, return_unknown_args=True)
        default = presets.defaults(default, name, named.preset, named.config)
    return tyro.cli(config_type, default=default, args=args, prog=prog)


def _print_help(available: dict[str, Command]) -> None:
    print("usage: frinr COMMAND [--preset NAME | --config FILE] [FLAGS]   (frinr COMMAND --help for flags)\n")
    print("commands:")
    for name, command in available.items():
        print(f"  {name:<12} {command.summary}")
    print("\npresets (--preset NAME):")
    list_presets(PresetsConfig())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    available = commands()
    if not argv or argv[0] in ("-h", "--help"):
        _print_help(available)
        return 0
    name, args = argv[0], argv[1:]
    if name not in available:
        print(f"frinr: error: unknown command {name!r}; choose from {', '.join(available)}", file=sys.stderr)
        return 2
    command = available[name]
    try:
        command.run(parse(command.config, name, args))
    except ValueError as error:  # InputError and invalid settings (e.g. FourierLinear arguments)
        if os.environ.get("FRINR_DEBUG"):
            raise
        print(f"frinr {name}: error: {first_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
