"""The skeleton every `frinr` runner shares: its flags, the arms and rates it trains, metrics.json, the table.

A runner (fit1d, fit2d, occupancy) is a :class:`Task`: it owns its target, how one network is built and
trained on it, what a trained network is measured by, and its figures. Everything else lives here once:
which arms run at which learning rates (tuned per arm by :mod:`frinr_core.tuning` for ``--compare``), how
each run is named, the fields every run record starts with, the verdict, metrics.json and the tables.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, ClassVar

import tyro
from rich.console import Console
from torch import nn

from frinr_core import io, tuning
from frinr_core.mlp import MLPConfig
from frinr_core.train import Arm, Bar, FitResult, TrainOptions, arms, count_parameters

Network = Annotated[MLPConfig, tyro.conf.OmitArgPrefixes]
Training = Annotated[TrainOptions, tyro.conf.OmitArgPrefixes]


@dataclass
class RunConfig:
    """The flags every runner takes; a runner's config adds its own and sets its defaults."""

    out: Path = Path("outputs")
    """Directory for metrics.json, each run's outputs and the figures."""
    compare: bool = False
    """Train the baseline and its FR twin on the same data, seed and steps, each at its own tuned learning
    rate unless --lr (one rate for both) or --lr-sweep (every rate of a grid) is given."""
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
    """The record field an arm is judged by (its learning rate, the verdict)."""
    higher: ClassVar[bool] = True
    """Whether a larger ``metric`` is better."""
    difference: ClassVar[str]
    """Format of FR − baseline in ``metric``, e.g. ``"{:+.2f} dB PSNR"``."""
    default_lr: ClassVar[float]
    """The learning rate of a single run without --lr, and the centre of a tuned comparison's search."""
    columns: list[str]
    """Table columns after the shared ones (name, lr, steps, seconds, params)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.rates = config.train.learning_rates(self.default_lr)  # checked before any target is loaded

    @abstractmethod
    def write_target(self) -> dict:
        """Write the target's files into ``config.out``; return metrics.json's description of the target."""

    @abstractmethod
    def train(self, arm: Arm, options: TrainOptions, lr: float, bar: Bar | None = None) -> Trained:
        """Build ``arm``'s network (seeded) and train it with ``options`` at ``lr``.

        With ``bar`` it is a search trial: progress goes to that stage's bar and nothing is measured along the
        way (no learning curve, no NTK); :meth:`score` judges it.
        """

    @abstractmethod
    def score(self, model: nn.Module) -> float:
        """``metric`` of a trained network, as cheaply as the search can rank by it (no files written)."""

    @abstractmethod
    def measure(self, trained: Trained, name: str) -> dict:
        """Write the run's outputs as ``name.*`` into ``config.out`` and return its metrics."""

    @abstractmethod
    def plot(self, runs: list[dict]) -> None:
        """The figures of the reported runs."""

    def row(self, run: dict) -> dict:
        """A run as a table row (the run itself unless a column needs flattening)."""
        return run

    def notes(self) -> list[str]:
        """Lines printed under the table that say what a column measures."""
        return []


def run(task: Task) -> dict:
    """Train the task's arms at their learning rates, write metrics.json and the figures, print the tables."""
    started = time.perf_counter()
    config, options = task.config, task.config.train
    config.out.mkdir(parents=True, exist_ok=True)
    header = task.write_target()
    variants = arms(config.network, config.compare)
    tuned = config.compare and options.lr is None and options.lr_sweep is None

    def run_one(arm: Arm, lr: float) -> dict:
        trained = task.train(arm, options, lr)
        name = arm.name if len(task.rates) == 1 else f"{arm.name}_lr{lr:g}"
        return {
            "name": arm.name, "arch": arm.mlp.arch, "fr": arm.mlp.fr, "lr": lr, "steps": options.steps,
            "seconds": round(trained.fit.seconds, 3), "params": count_parameters(trained.model),
            **task.measure(trained, name), **trained.during, "curve": trained.fit.curve,
        }  # fmt: skip

    def trial(arm: Arm, lr: float, steps: int, bar: Bar) -> float:
        return task.score(task.train(arm, options.compressed(steps), lr, bar).model)

    grid: list[dict] = []
    if tuned:
        tune = partial(
            tuning.tune, default=task.default_lr, steps=options.steps, metric=task.metric, higher=task.higher
        )
        best = [tune(arm, partial(trial, arm), partial(run_one, arm)) for arm in variants]
    else:
        best, grid = tuning.sweep(variants, task.rates, run_one, task.metric, task.higher)
    payload = {**header, "runs": best}
    if len(task.rates) > 1:
        payload["sweep"] = [{k: v for k, v in r.items() if k != "curve"} for r in grid]
    if config.compare:
        trained_steps = options.steps * len(grid or best) + sum(r.get("search", {}).get("steps", 0) for r in best)
        payload["comparison"] = _comparison(task, best, tuned, trained_steps, time.perf_counter() - started)
    io.write_json(config.out / "metrics.json", payload)
    task.plot(best)
    _print(task, payload)
    return payload


def _comparison(task: Task, runs: list[dict], tuned: bool, steps: int, seconds: float) -> dict:
    """FR − baseline in the task's metric, and how the two arms' rates were chosen, in one line."""
    baseline, fr = runs
    rates = task.rates
    if tuned:
        how = "each arm at its tuned rate"
    elif len(rates) > 1:
        how = f"each arm at its best rate of the sweep {', '.join(f'{r:g}' for r in rates)}"
    else:
        how = f"both arms shared one rate, {rates[0]:g}, not tuned per arm"
    difference = fr[task.metric] - baseline[task.metric]
    better = "higher" if task.higher else "lower"
    return {
        "rates": "tuned" if tuned else "sweep" if len(rates) > 1 else "shared", "metric": task.metric,
        "higher_is_better": task.higher, "difference": difference,
        "verdict": f"FR − baseline: {task.difference.format(difference)} ({better} is better; {how})",
        "steps": steps, "seconds": round(seconds, 3),
    }  # fmt: skip


def _search_rows(run: dict, metric: str) -> list[dict]:
    """One table row per stage of ``run``'s search: each rate tried there and its ``metric`` (or "diverged")."""
    trials = run["search"]["trials"]
    rows = []
    for stage in dict.fromkeys(t["stage"] for t in trials):
        tried = sorted((t for t in trials if t["stage"] == stage), key=lambda t: t["lr"])
        results = [f"{t['lr']:g}: " + ("diverged" if t.get("diverged") else f"{t[metric]:.4g}") for t in tried]
        rows.append({"arm": run["name"], "stage": stage, "steps": tried[0]["steps"], metric: ", ".join(results)})
    return rows


def _print(task: Task, payload: dict) -> None:
    """The runs' table; for a tuned comparison each search stage's results; the cost and the verdict."""
    console = Console()
    runs = payload["runs"]
    columns = ["name", "lr", "steps", "seconds", "params", *task.columns]
    console.print(io.markdown_table([task.row(r) for r in runs], columns), soft_wrap=True)
    for note in task.notes():
        console.print(note)
    searched = [r for r in runs if "search" in r]
    if searched:
        console.print("\nlearning-rate search (successive halving; the chosen rate then trains the full budget)")
        rows = [row for r in searched for row in _search_rows(r, task.metric)]
        console.print(io.markdown_table(rows, ["arm", "stage", "steps", task.metric]), soft_wrap=True)
    for r in searched:
        if r["search"]["at_edge"]:
            console.print(
                f"{r['name']}: the chosen rate {r['lr']:g} is still the edge of the search after "
                f"{r['search']['added']} added rates; a rate beyond it might do better"
            )
    if "comparison" in payload:
        comparison = payload["comparison"]
        console.print(f"\ncost: {comparison['steps']} training steps, {comparison['seconds']:.0f} s")
        console.print(comparison["verdict"], style="bold")
