"""The training loop every runner shares: seeding, Adam with exponential decay, progress bars."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn

from frinr_core.errors import InputError
from frinr_core.mlp import MLPConfig


@dataclass
class TrainOptions:
    """Optimisation settings shared by every runner (Adam, full-batch unless the runner samples)."""

    steps: int = 2000
    lr: float | None = None
    """Adam learning rate for every arm. Unset: --compare tunes each arm's rate on its own (see README, "Fair
    comparisons") and a single run uses the runner's default (fit1d 1e-4, fit2d 1e-3, occupancy 5e-3)."""
    lr_sweep: str | None = None
    """Comma-separated learning rates, e.g. 1e-4,1e-3: every arm is trained at each and reported at its best."""
    lr_decay: float = 1.0
    """Learning-rate factor: applied at each of lr_milestones, or reached smoothly at the last step without them."""
    lr_milestones: tuple[int, ...] = ()
    """Steps at which the learning rate is multiplied by lr_decay (the official 2D code: 3000, decay 0.1)."""
    seed: int = 0
    eval_every: int | None = None
    """Steps between evaluations for the learning curve (default: 20 points per run)."""

    def learning_rates(self, default: float) -> list[float]:
        """The rates to train every arm at: the sweep, else ``lr``, else ``default`` (checked, with the schedule)."""
        if self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.lr_decay) and self.lr_decay > 0):
            raise InputError(f"--lr-decay must be a finite number > 0, got {self.lr_decay}")
        if self.lr_sweep is None:
            rates = [default if self.lr is None else self.lr]
        else:
            try:
                rates = [float(item) for item in self.lr_sweep.split(",") if item.strip()]
            except ValueError:
                raise InputError(f"--lr-sweep must be comma-separated numbers, got {self.lr_sweep!r}") from None
        bad = [rate for rate in rates if not (math.isfinite(rate) and rate > 0)]
        if not rates or bad:
            raise InputError(f"learning rates must be finite and > 0, got {bad or 'none'}")
        return rates

    def compressed(self, steps: int) -> TrainOptions:
        """These options for a shorter run of ``steps``: the same schedule, its milestones scaled to fit."""
        milestones = tuple(max(1, round(m * steps / self.steps)) for m in self.lr_milestones)
        return replace(self, steps=steps, lr_milestones=milestones)


@dataclass(frozen=True)
class Arm:
    """One network variant of a comparison: a baseline or its FR twin."""

    name: str
    mlp: MLPConfig


def arms(mlp: MLPConfig, compare: bool) -> list[Arm]:
    """The arms to train: ``mlp`` alone, or with ``compare`` its baseline and FR versions."""
    variants = [replace(mlp, fr=False), replace(mlp, fr=True)] if compare else [mlp]
    return [Arm(f"{m.arch}+fr" if m.fr else m.arch, m) for m in variants]


class Diverged(InputError):
    """The loss became NaN or infinite: the learning rate is too high for this network."""


@dataclass
class FitResult:
    seconds: float
    """Wall time of the optimisation steps alone (evaluations excluded)."""
    curve: list[tuple[int, float]] = field(default_factory=list)
    """(step, evaluation metric) pairs."""
    final_loss: float = math.nan


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Bar:
    """A rich progress bar that one run, or every run of a search stage, advances step by step."""

    def __init__(self, description: str, total: int) -> None:
        columns = (
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3e}  {task.fields[metric]}"), TimeElapsedColumn(),
            TimeRemainingColumn(),
        )  # fmt: skip
        self.progress = Progress(*columns, transient=False)
        self.task = self.progress.add_task(description, total=total, loss=math.nan, metric="")

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *_) -> None:
        self.progress.stop()

    def advance(self, loss: float, **fields: str) -> None:
        self.progress.update(self.task, advance=1, loss=loss, **fields)


def fit(
    model: nn.Module,
    batch: Callable[[torch.Generator], tuple[Tensor, Tensor]],
    *,
    options: TrainOptions,
    lr: float,
    evaluate: Callable[[], float] | None = None,
    metric: str = "psnr",
    loss_fn: Callable[[Tensor, Tensor], Tensor] = nn.functional.mse_loss,
    description: str = "train",
    after_step: Callable[[int], None] | None = None,
    bar: Bar | None = None,
) -> FitResult:
    """Optimise ``model`` on ``batch(generator) -> (inputs, targets)`` for ``options.steps`` Adam steps.

    ``evaluate()`` is called every ``eval_every`` steps and at the end to draw the learning curve; it runs
    under ``torch.no_grad`` and its time is not counted in ``seconds``. ``after_step(step)`` is called after
    every step, untimed, for measurements at chosen steps (e.g. the empirical NTK in fit1d). Progress shows
    on ``bar`` when given (a search stage's), else on a bar of this run's own.
    """
    steps = options.steps
    eval_every = options.eval_every or max(1, steps // 20)
    generator = torch.Generator().manual_seed(options.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if options.lr_milestones:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(options.lr_milestones), options.lr_decay)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: options.lr_decay ** (step / steps))
    result = FitResult(seconds=0.0)
    with nullcontext(bar) if bar is not None else Bar(description, steps) as shown:
        for step in range(1, steps + 1):
            start = time.perf_counter()
            inputs, targets = batch(generator)
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            result.seconds += time.perf_counter() - start
            result.final_loss = float(loss.detach())
            if not math.isfinite(result.final_loss):
                raise Diverged(f"{description}: loss is {result.final_loss} at step {step}; lower the learning rate")
            fields = {}
            if evaluate is not None and (step % eval_every == 0 or step == steps):
                with torch.no_grad():
                    result.curve.append((step, evaluate()))
                fields["metric"] = f"{metric} {result.curve[-1][1]:.3f}"
            if after_step is not None:
                after_step(step)
            shown.advance(result.final_loss, **fields)
    return result
