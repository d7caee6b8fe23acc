"""The skeleton every `frinr` runner shares: its flags, the arms and rates it trains, metrics.json, the table.

A runner (fit1d, fit2d, occupancy) is a :class:`Task`: it owns its target, how one network is built and
trained on it, what a trained network is measured by, and its figures. Everything else lives here once:
which arms run at which learning rates, how each run is named, the fields every run record starts with,
writing metrics.json and printing the table.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar

import tyro
from rich.console import Console
from torch import nn

from frinr_core import io
from frinr_core.mlp import MLPConfig
from frinr_core.train import Arm, FitResult, TrainOptions, arms, count_parameters, sweep

Network = Annotated[MLPConfig, tyro.conf.OmitArgPrefixes]
Training = Annotated[TrainOptions, tyro.conf.OmitArgPrefixes]


@dataclass
class RunConfig:
    """The flags every runner takes; a runner's config adds its own and sets its defaults."""

    out: Path = Path("outputs")
    """Directory for metrics.json, each run's outputs and the figures."""
    compare: bool = False
    """Train the baseline and its FR twin on the same data, seed and steps."""
    network: Network = field(default_factory=MLPConfig)
    train: Training = field(default_factory=TrainOptions)
    preset: str | None = None
    """Start from a preset in configs/ (see `frinr presets`); other flags override it."""
    config: Path | None = None
    """Start from a preset YAML file; other flags override it."""


@dataclass
class Trained:
    """One trained network, its training record, and what the task measured while it trained."""

    model: nn.Module
    fit: FitResult
    during: dict = field(default_factory=dict)
    """Record fields measured during training (fit1d: NTK spectra and the error history)."""


class Task(ABC):
    """What one runner owns. Constructing it loads and checks the target; nothing is written yet."""

    metric: ClassVar[str]
    """The record field an arm is judged by (its best learning rate, the comparison)."""
    higher: ClassVar[bool] = True
    """Whether a larger ``metric`` is better."""
    columns: list[str]
    """Table columns after the shared ones (name, lr, steps, seconds, params)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.rates = config.train.learning_rates()  # checked before any target is loaded

    @abstractmethod
    def write_target(self) -> dict:
        """Write the target's files into ``config.out``; return metrics.json's description of the target."""

    @abstractmethod
    def train(self, arm: Arm, options: TrainOptions, lr: float) -> Trained:
        """Build ``arm``'s network (seeded) and train it with ``options`` at ``lr``."""

    @abstractmethod
    def measure(self, trained: Trained, name: str) -> dict:
        """Write the run's outputs as ``name.*`` into ``config.out`` and return its metrics."""

    @abstractmethod
    def plot(self, runs: list[dict]) -> None:
        """The figures of the reported runs."""

    def row(self, run: dict) -> dict:
        """A run as a table row (the run itself unless a column needs flattening)."""
        return run


def run(task: Task) -> dict:
    """Train the task's arms at their learning rates, write metrics.json and the figures, print the table."""
    config, rates = task.config, task.rates
    config.out.mkdir(parents=True, exist_ok=True)
    header = task.write_target()

    def run_one(arm: Arm, lr: float) -> dict:
        trained = task.train(arm, config.train, lr)
        name = arm.name if len(rates) == 1 else f"{arm.name}_lr{lr:g}"
        return {
            "name": arm.name, "arch": arm.mlp.arch, "fr": arm.mlp.fr, "lr": lr, "steps": config.train.steps,
            "seconds": round(trained.fit.seconds, 3), "params": count_parameters(trained.model),
            **task.measure(trained, name), **trained.during, "curve": trained.fit.curve,
        }  # fmt: skip

    best, grid = sweep(arms(config.network, config.compare), rates, run_one, task.metric, task.higher)
    payload = {**header, "runs": best}
    if len(rates) > 1:
        payload["sweep"] = [{k: v for k, v in r.items() if k != "curve"} for r in grid]
    io.write_json(config.out / "metrics.json", payload)
    task.plot(best)
    columns = ["name", "lr", "steps", "seconds", "params", *task.columns]
    Console().print(io.markdown_table([task.row(r) for r in best], columns))
    return payload
