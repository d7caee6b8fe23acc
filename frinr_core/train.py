"""The training loop every runner shares: seeding, Adam with exponential decay, progress, sweeps."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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
    lr: float = 1e-3
    lr_sweep: str | None = None
    """Comma-separated learning rates, e.g. 1e-4,1e-3: every arm is trained at each and reported at its best."""
    lr_decay: float = 1.0
    """Learning-rate factor: applied at each of lr_milestones, or reached smoothly at the last step without them."""
    lr_milestones: tuple[int, ...] = ()
    """Steps at which the learning rate is multiplied by lr_decay (the official 2D code: 3000, decay 0.1)."""
    seed: int = 0
    eval_every: int | None = None
    """Steps between evaluations for the learning curve (default: 20 points per run)."""

    def learning_rates(self) -> list[float]:
        if self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if not (math.isfinite(self.lr_decay) and self.lr_decay > 0):
            raise InputError(f"--lr-decay must be a finite number > 0, got {self.lr_decay}")
        if self.lr_sweep is None:
            rates = [self.lr]
        else:
            try:
                rates = [float(item) for item in self.lr_sweep.split(",") if item.strip()]
            except ValueError:
                raise InputError(f"--lr-sweep must be comma-separated numbers, got {self.lr_sweep!r}") from None
        bad = [rate for rate in rates if not (math.isfinite(rate) and rate > 0)]
        if not rates or bad:
            raise InputError(f"learning rates must be finite and > 0, got {bad or 'none'}")
        return rates


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
) -> FitResult:
    """Optimise ``model`` on ``batch(generator) -> (inputs, targets)`` for ``options.steps`` Adam steps.

    ``evaluate()`` is called every ``eval_every`` steps and at the end to draw the learning curve; it runs
    under ``torch.no_grad`` and its time is not counted in ``seconds``. ``after_step(step)`` is called after
    every step, untimed, for measurements at chosen steps (e.g. the empirical NTK in fit1d).
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
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3e}  {task.fields[metric]}"), TimeElapsedColumn(), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=steps, loss=math.nan, metric="")
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
            shown = {}
            if evaluate is not None and (step % eval_every == 0 or step == steps):
                with torch.no_grad():
                    result.curve.append((step, evaluate()))
                shown["metric"] = f"{metric} {result.curve[-1][1]:.3f}"
            if after_step is not None:
                after_step(step)
            progress.update(task, advance=1, loss=result.final_loss, **shown)
    return result


def sweep(
    variants: list[Arm], rates: list[float], run_one: Callable[[Arm, float], dict], metric: str, higher: bool = True
) -> tuple[list[dict], list[dict]]:
    """Train every arm at every learning rate; return (each arm's best run, the whole grid).

    A run that diverges is kept in the grid as ``{metric: None, "diverged": reason}`` when other rates
    remain, so one bad learning rate never sinks a sweep.
    """
    grid, best = [], {}
    for arm in variants:
        for lr in rates:
            try:
                run = run_one(arm, lr)
            except Diverged as error:
                if len(rates) == 1:
                    raise
                grid.append({"name": arm.name, "lr": lr, metric: None, "diverged": str(error)})
                continue
            grid.append(run)
            current = best.get(arm.name)
            if current is None or (run[metric] > current[metric] if higher else run[metric] < current[metric]):
                best[arm.name] = run
        if arm.name not in best:
            raise InputError(f"every learning rate diverged for {arm.name}: {rates}")
    return [best[arm.name] for arm in variants], grid
