"""Figures written next to metrics.json (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def curves(path: Path, series: dict[str, list[tuple[float, float]]], xlabel: str, ylabel: str) -> None:
    """One line per named series of (x, y) points."""
    curve_panels(path, [(xlabel, ylabel, series)])


def curve_panels(path: Path, panels: list[tuple[str, str, dict[str, list[tuple[float, float]]]]]) -> None:
    """Side-by-side panels of (xlabel, ylabel, {name: [(x, y), ...]}), one line per series."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (xlabel, ylabel, series) in zip(axes[0], panels, strict=True):
        for name, points in series.items():
            xs, ys = zip(*points, strict=True) if points else ((), ())
            ax.plot(xs, ys, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def image_grid(path: Path, rows: list[list[tuple[str, np.ndarray | None]]], cmap: str | None = None) -> None:
    """Titled images in [0, 1] in a grid; each row a list of (title, HxW or HxWxC array, or None for a gap)."""
    ncols = max(len(row) for row in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 3.2 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for c, (title, image) in enumerate(row):
            if image is None:
                continue
            axes[r, c].imshow(image, cmap=cmap if image.ndim == 2 else None, vmin=0, vmax=1)
            axes[r, c].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def signal_fit(path: Path, x: np.ndarray, target: np.ndarray, runs: list[tuple[str, np.ndarray]]) -> None:
    """A 1D target (thick, black) and each named prediction over it."""
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


def spectral_error_maps(path: Path, runs: list[dict], labels: list[str]) -> None:
    """Relative error per target frequency (rows) over training (columns), one panel per fit1d run, scale 0 … 1."""
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


def ntk_shares(path: Path, runs: list[dict]) -> None:
    """Share of the four largest NTK eigenvalues and of all the rest, grouped by measured step, per fit1d run."""
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
