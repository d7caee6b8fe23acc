"""`frinr export`: fold every FR layer into a plain linear layer and save the run as its baseline method.

FR only changes how a weight is trained; the trained weight ``W = coeffs @ bases`` is an ordinary
matrix. Folding it gives exactly the baseline method's network, so the export loads as that method
(``frinr-ngp`` → ``frinr-ngp-baseline``) and ``ns-viewer``, ``ns-render`` and ``ns-eval`` run it at the
baseline's speed from a smaller checkpoint (out×in weights instead of out×M coefficients).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from frinr_core import FourierLinear, fold_fourier_layers
from frinr_core.cli import Command
from frinr_core.errors import InputError
from frinr_core.io import existing_file


@dataclass
class ExportConfig:
    """Fold a trained FR run into its baseline method: same renders, baseline speed, smaller checkpoint."""

    load_config: Path | None = None
    """The run's config.yml (written by ns-train)."""
    out: Path = Path("outputs/export")
    """Directory for the exported run (nerfstudio layout: <experiment>/<method>/<timestamp>/config.yml)."""


def export(config: ExportConfig) -> Path:
    """Write the folded run; returns the exported config.yml."""
    from nerfstudio.configs.method_configs import all_methods
    from nerfstudio.utils.eval_utils import eval_setup

    load_config = existing_file(config.load_config, "--load-config") if config.load_config else None
    if load_config is None:
        raise InputError("--load-config is required: the config.yml of a trained frinr run")
    trained, pipeline, _, step = eval_setup(load_config, test_mode="inference")
    baseline = f"{trained.method_name}-baseline"
    if baseline not in all_methods:
        raise InputError(f"{trained.method_name} has no registered baseline ({baseline}); nothing to fold into")
    folded = sum(isinstance(m, FourierLinear) for m in pipeline.model.modules())
    if folded == 0:
        raise InputError(f"{load_config} has no FR layers to fold")
    fold_fourier_layers(pipeline.model)

    exported = copy.deepcopy(trained)
    exported.pipeline.model.set_fr(False)
    exported.method_name, exported.output_dir, exported.load_dir = baseline, config.out.resolve(), None
    checkpoint_dir = exported.get_checkpoint_dir()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step, "pipeline": pipeline.state_dict()}, checkpoint_dir / f"step-{step:09d}.ckpt")
    exported.save_config()
    path = exported.get_base_dir() / "config.yml"
    Console().print(f"folded {folded} FR layers; {baseline} run written to {path}")
    return path


COMMAND = Command(ExportConfig, export, "fold FR layers of a trained run into its baseline method")
