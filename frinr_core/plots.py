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
