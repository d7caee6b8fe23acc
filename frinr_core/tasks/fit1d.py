"""`frinr fit1d`: fit a 1D sum of sinusoids and watch spectral bias — the paper's 1D experiment.

Flow: target on 300 points of [-1, 1] → baseline and/or FR network from one builder → full-batch training,
recording the relative error at each target frequency and the empirical NTK spectrum at chosen steps →
fit.png, spectral_error.png (the paper's heat map, one panel per run), ntk.png, metrics.json, predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro
from rich.console import Console
from torch import Tensor

from frinr_core import io
from frinr_core.errors import InputError
from frinr_core.mlp import FourierConfig, MLPConfig, build_mlp
from frinr_core.ntk import eigenvalue_shares, empirical_ntk
from frinr_core.plots import plt  # headless backend already selected there
from frinr_core.train import Arm, TrainOptions, arms, count_parameters, fit, sweep


def _paper_network() -> MLPConfig:
    # Official 1D code: width 128, 3 FR hidden layers, L=H=64, P=16; sine frequency 5 for a fast start.
    return MLPConfig(
        arch="relu", hidden_features=128, hidden_layers=3, fr=True,
        fourier=FourierConfig(low_freqs=64, high_freqs=64, phases=16, alpha=0.05), omega0=5.0, first_omega0=5.0,
    )  # fmt: skip


@dataclass
class Fit1dConfig:
    """Fit a 1D sum of sinusoids with a ReLU or SIREN network, with or without FR (--compare: both)."""

    freqs: tuple[float, ...] = (1.5, 2.5, 3.5, 4.5)
    """Target frequencies in cycles per unit of x: y = Σ sin(2π f x) on [-1, 1]; multiples of 0.5 (whole FFT bins)."""
    quantize: bool = True
    """Staircase the target as the official code does, y = 2·round(Σ/2), which adds harmonics."""
    samples: int = 300
    """Points in [-1, 1] (the training set and the FFT length)."""
    out: Path = Path("outputs/fit1d")
    """Directory for metrics.json, predictions (.npy) and plots."""
    compare: bool = False
    """Train the baseline and its FR twin on the same data, seed and steps."""
    ntk_steps: tuple[int, ...] | None = None
    """Steps at which to measure the empirical NTK spectrum (0 = initialisation); default 0, middle and last."""
    network: Annotated[MLPConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=_paper_network)
    train: Annotated[TrainOptions, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: TrainOptions(steps=2000, lr=1e-4)
    )
    preset: str | None = None
    """Start from a preset in configs/ (see `frinr presets`); other flags override it."""
    config: Path | None = None
    """Start from a preset YAML file; other flags override it."""


def target_signal(freqs: tuple[float, ...], samples: int, quantize: bool) -> tuple[Tensor, Tensor, list[int]]:
    """``(x (N, 1), y (N, 1), FFT bin of each frequency)``; bin k is k/2 cycles per unit over [-1, 1]."""
    if samples < 8:
        raise InputError(f"--samples must be >= 8, got {samples}")
    if not freqs:
        raise InputError("--freqs needs at least one frequency")
    bins = []
    for f in freqs:
        k = 2 * f
        if not (math.isfinite(f) and f > 0 and abs(k - round(k)) < 1e-9 and round(k) < samples / 2):
            raise InputError(
                f"frequency {f} must be a positive multiple of 0.5 below {samples / 4} (the Nyquist limit of "
                f"{samples} samples on [-1, 1]) so it falls on an FFT bin"
            )
        bins.append(round(k))
    x = torch.linspace(-1, 1, samples, dtype=torch.float64)[:, None]  # (N, 1)
    y = sum(torch.sin(2 * math.pi * f * x) for f in freqs)
    if quantize:
        y = 2 * torch.round(y / 2)
    return x.float(), y.float(), bins


def relative_errors(prediction: np.ndarray, target: np.ndarray, bins: list[int]) -> list[float]:
    """``|F[f − y]|(k) / |F[y]|(k)`` at each bin k: 0 = that frequency is learnt, 1 = not at all."""
    residual = np.abs(np.fft.rfft(prediction - target))
    reference = np.abs(np.fft.rfft(target))
    return [float(residual[k] / max(reference[k], 1e-12)) for k in bins]


def run(config: Fit1dConfig) -> dict:
    x, y, bins = target_signal(config.freqs, config.samples, config.quantize)
    rates = config.train.learning_rates()
    steps = config.train.steps
    ntk_steps = sorted(set(config.ntk_steps if config.ntk_steps is not None else (0, steps // 2, steps)))
    if any(s < 0 or s > steps for s in ntk_steps):
        raise InputError(f"--ntk-steps must lie in 0 … {steps} (the training steps), got {list(ntk_steps)}")
    options = replace(config.train, eval_every=config.train.eval_every or max(1, steps // 100))
    config.out.mkdir(parents=True, exist_ok=True)
    target = y[:, 0].numpy()
    np.save(config.out / "target.npy", np.stack([x[:, 0].numpy(), target]))  # (2, N): x, y
    labels = [f"{f:g}" for f in config.freqs]
    predictions: dict[str, np.ndarray] = {}

    def run_one(arm: Arm, lr: float) -> dict:
        torch.manual_seed(config.train.seed)
        model = build_mlp(1, 1, arm.mlp, samples=config.samples)
        history: list[list[float]] = []  # relative error per frequency at each evaluation
        ntk: list[dict] = []

        def measure_ntk(step: int) -> None:
            if step in ntk_steps:
                ntk.append({"step": step, "shares": eigenvalue_shares(empirical_ntk(model, x))})

        def evaluate() -> float:
            history.append(relative_errors(model(x)[:, 0].numpy(), target, bins))
            return float(np.mean(history[-1]))

        measure_ntk(0)
        result = fit(
            model, lambda _: (x, y), options=options, lr=lr, evaluate=evaluate, metric="rel.err",
            description=f"{arm.name} lr={lr:g}", after_step=measure_ntk,
        )  # fmt: skip
        name = arm.name if len(rates) == 1 else f"{arm.name}_lr{lr:g}"
        with torch.no_grad():
            prediction = model(x)[:, 0].numpy()
        np.save(config.out / f"{name}.npy", prediction)
        predictions[f"{name}.npy"] = prediction
        return {
            "name": arm.name, "arch": arm.mlp.arch, "fr": arm.mlp.fr, "lr": lr, "steps": steps,
            "seconds": round(result.seconds, 3), "params": count_parameters(model),
            "mse": float(np.mean((prediction - target) ** 2)), "prediction": f"{name}.npy",
            "rel_error": dict(zip(labels, relative_errors(prediction, target, bins), strict=True)),
            "ntk": ntk, "rel_error_history": {"steps": [s for s, _ in result.curve], "values": history},
            "curve": result.curve,
        }  # fmt: skip

    best, grid = sweep(arms(config.network, config.compare), rates, run_one, "mse", higher=False)
    payload = {
        "target": {"freqs": list(config.freqs), "quantize": config.quantize, "samples": config.samples},
        "runs": best,
    }
    if len(rates) > 1:
        payload["sweep"] = [{k: v for k, v in run.items() if k != "curve"} for run in grid]
    io.write_json(config.out / "metrics.json", payload)
    _plot_fit(
        config.out / "fit.png", x[:, 0].numpy(), target, [(r["name"], predictions[r["prediction"]]) for r in best]
    )
    _plot_heat_maps(config.out / "spectral_error.png", best, labels)
    if ntk_steps:
        _plot_ntk(config.out / "ntk.png", best)
    rows = [{**r, **{f"err@{k}": v for k, v in r["rel_error"].items()}} for r in best]
    Console().print(io.markdown_table(rows, ["name", "lr", "steps", "seconds", "mse"] + [f"err@{k}" for k in labels]))
    return payload


def _plot_fit(path: Path, x: np.ndarray, target: np.ndarray, runs: list[tuple[str, np.ndarray]]) -> None:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(x, target, color="black", linewidth=2, label="target")
    for name, prediction in runs:
        ax.plot(x, prediction, label=name)
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_heat_maps(path: Path, runs: list[dict], labels: list[str]) -> None:
    """Relative error per target frequency (rows) over training (columns), one panel per run, scale 0 … 1."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(8, 1.2 + 0.35 * len(labels) * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=True):
        history = run["rel_error_history"]
        values = np.asarray(history["values"]).T  # (frequencies, evaluations)
        steps = history["steps"]
        image = ax.imshow(
            values, aspect="auto", cmap="magma_r", vmin=0, vmax=1, interpolation="nearest",
            extent=(0, steps[-1], len(labels) - 0.5, -0.5),
        )  # fmt: skip
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylabel("freq")
        ax.set_title(f"{run['name']} (lr {run['lr']:g}): |F[f-y]|/|F[y]|", fontsize=9)
        fig.colorbar(image, ax=ax, pad=0.01)
    axes[-1, 0].set_xlabel("training step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_ntk(path: Path, runs: list[dict]) -> None:
    """Share of the four largest NTK eigenvalues and of all the rest, grouped by measured step, per run."""
    categories = ["1st", "2nd", "3rd", "4th", "rest"]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs), 3.2), squeeze=False, sharey=True)
    for ax, run in zip(axes[0], runs, strict=True):
        width = 0.8 / max(1, len(run["ntk"]))
        for i, measured in enumerate(run["ntk"]):
            positions = np.arange(len(categories)) + (i - (len(run["ntk"]) - 1) / 2) * width
            ax.bar(positions, measured["shares"], width, label=f"step {measured['step']}")
        ax.set_xticks(range(len(categories)), categories)
        ax.set_ylim(0, 1)
        ax.set_title(f"{run['name']}: NTK eigenvalue shares", fontsize=9)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("share of trace")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
