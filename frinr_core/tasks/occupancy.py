"""`frinr occupancy`: fit a 3D occupancy grid with a coordinate MLP — the paper's 3D experiment.

Flow: volume, mesh or built-in shape → cropped boolean grid (frinr_core.volumes) → baseline and/or FR
network from one builder → training on random point batches (MSE on 0/1, as the official code) → per run:
IoU on the full grid, the predicted occupancy (.npz) and a marching-cubes mesh (.ply); compare.png and
metrics.json for all runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import trimesh
import tyro
from rich.console import Console
from skimage.measure import marching_cubes
from torch import Tensor

from frinr_core import io, plots, volumes
from frinr_core.errors import InputError
from frinr_core.mlp import FourierConfig, MLPConfig, build_mlp
from frinr_core.train import Arm, TrainOptions, arms, count_parameters, fit, sweep

MAX_BATCH = 500_000
"""Points per step at most, as the official code's chunks."""


@dataclass
class OccupancyConfig:
    """Fit a 3D occupancy grid with SIREN or ReLU+PE, with or without FR (--compare: both)."""

    volume: Path | None = None
    """Occupancy volume: .mat (see --key), a .mat inside a .zip, or .npy; thresholded at half its maximum."""
    key: str = "hypercube"
    """Variable holding the volume in a .mat file."""
    mesh: Path | None = None
    """Triangle mesh (.obj, .ply, .stl, ...) turned into occupancy; holes are closed first (see README)."""
    resolution: int = 128
    """Voxels along the longest side of the cropped grid (a volume is only ever subsampled, never enlarged)."""
    out: Path = Path("outputs/occupancy")
    """Directory for metrics.json, target and predicted occupancy (.npz), meshes (.ply) and compare.png."""
    compare: bool = False
    """Train the baseline and its FR twin on the same data, seed and steps."""
    batch: int = 1 << 16
    """Random grid points per step (at most 500000)."""
    network: Annotated[MLPConfig, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: MLPConfig(
            arch="siren",
            hidden_features=256,
            hidden_layers=2,
            fr=True,
            fourier=FourierConfig(low_freqs=256, high_freqs=256, phases=8, alpha=0.001),
            pe_frequencies=10,
        )  # fmt: skip
    )
    train: Annotated[TrainOptions, tyro.conf.OmitArgPrefixes] = field(
        default_factory=lambda: TrainOptions(steps=300, lr=5e-3, lr_decay=0.2)
    )
    preset: str | None = None
    """Start from a preset in configs/ (see `frinr presets`); other flags override it."""
    config: Path | None = None
    """Start from a preset YAML file; other flags override it."""


def load_target(config: OccupancyConfig) -> tuple[np.ndarray, str]:
    """The boolean grid to fit and a name for its source; the memory check comes before any loading."""
    if config.volume is not None and config.mesh is not None:
        raise InputError("give --volume or --mesh, not both")
    volumes.check_memory(config.resolution)
    if config.volume is not None:
        return volumes.load_volume(config.volume, config.key, config.resolution), str(config.volume)
    if config.mesh is not None:
        return volumes.load_mesh(config.mesh, config.resolution), str(config.mesh)
    return volumes.procedural_shape(config.resolution), "built-in shape"


class Grid:
    """Coordinates of a (H, W, D) grid computed from flat indices, so no (H·W·D, 3) array is ever stored."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        self.axes = [torch.from_numpy(a) for a in volumes.coordinates(shape)]

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    def points(self, index: Tensor) -> Tensor:  # (N,) flat indices -> (N, 3) coordinates
        _, width, depth = self.shape
        i, j, k = index // (width * depth), (index // depth) % width, index % depth
        return torch.stack([self.axes[0][i], self.axes[1][j], self.axes[2][k]], dim=-1)

    def predict(self, model: torch.nn.Module, chunk: int = 1 << 18) -> np.ndarray:
        """The model on every voxel centre, float32 (H, W, D)."""
        values = np.empty(len(self), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(self), chunk):
                index = torch.arange(start, min(start + chunk, len(self)))
                values[start : start + len(index)] = model(self.points(index))[:, 0].numpy()
        return values.reshape(self.shape)


def iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two boolean grids."""
    union = np.logical_or(predicted, target).sum()
    return float(np.logical_and(predicted, target).sum() / union) if union else 1.0


def save_mesh(path: Path, values: np.ndarray, level: float = 0.5) -> bool:
    """Marching cubes of ``values`` at ``level`` in [-1, 1]³ coordinates, zero-padded so the mesh is closed.

    Returns False (and writes nothing) when the prediction never crosses ``level``.
    """
    if not values.min() < level < values.max():
        return False
    padded = np.pad(values, 1)
    spacing = tuple(2 / max(n - 1, 1) for n in values.shape)
    vertices, faces, _, _ = marching_cubes(padded, level, spacing=spacing)
    vertices -= 1 + np.asarray(spacing)  # padded index 1 is coordinate -1
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    return True


def run(config: OccupancyConfig) -> dict:
    if not 1 <= config.batch <= MAX_BATCH:
        raise InputError(f"--batch must be 1 … {MAX_BATCH} points, got {config.batch}")
    rates = config.train.learning_rates()
    target, source = load_target(config)
    grid = Grid(target.shape)
    flat_target = torch.from_numpy(target.reshape(-1))  # (H·W·D,) bool view
    config.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(config.out / "target.npz", occupancy=target)
    save_mesh(config.out / "target.ply", target.astype(np.float32))
    # Learning-curve IoU on a fixed random sample of voxels; the reported IoU is on the full grid.
    probe = torch.randint(
        len(grid), (min(len(grid), 1 << 17),), generator=torch.Generator().manual_seed(config.train.seed)
    )
    probe_points, probe_target = grid.points(probe), flat_target[probe].numpy()

    def batch(generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(grid), (min(config.batch, len(grid)),), generator=generator)
        return grid.points(index), flat_target[index, None].float()

    views: dict[str, np.ndarray] = {}  # occupancy file -> predicted occupancy, for compare.png

    def run_one(arm: Arm, lr: float) -> dict:
        torch.manual_seed(config.train.seed)
        model = build_mlp(3, 1, arm.mlp, samples=max(target.shape))
        result = fit(
            model, batch, options=config.train, lr=lr, metric="iou", description=f"{arm.name} lr={lr:g}",
            evaluate=lambda: iou(model(probe_points)[:, 0].numpy() >= 0.5, probe_target),
        )  # fmt: skip
        name = arm.name if len(rates) == 1 else f"{arm.name}_lr{lr:g}"
        values = grid.predict(model)
        occupied = values >= 0.5
        np.savez_compressed(config.out / f"{name}.npz", occupancy=occupied)
        views[f"{name}.npz"] = occupied
        meshed = save_mesh(config.out / f"{name}.ply", values)
        return {
            "name": arm.name, "arch": arm.mlp.arch, "fr": arm.mlp.fr, "lr": lr, "steps": config.train.steps,
            "batch": config.batch, "seconds": round(result.seconds, 3), "params": count_parameters(model),
            "iou": iou(occupied, target), "occupancy": f"{name}.npz", "mesh": f"{name}.ply" if meshed else None,
            "curve": result.curve,
        }  # fmt: skip

    best, runs_grid = sweep(arms(config.network, config.compare), rates, run_one, "iou")
    payload = {"source": source, "grid": list(target.shape), "occupied": int(target.sum()), "runs": best}
    if len(rates) > 1:
        payload["sweep"] = [{k: v for k, v in run.items() if k != "curve"} for run in runs_grid]
    io.write_json(config.out / "metrics.json", payload)
    plots.curves(config.out / "iou_curve.png", {r["name"]: r["curve"] for r in best}, "step", "IoU (probe points)")
    _plot_comparison(config.out / "compare.png", target, [(r, views[r["occupancy"]]) for r in best])
    Console().print(io.markdown_table(best, ["name", "lr", "steps", "batch", "seconds", "params", "iou"]))
    return payload


def shaded_view(occupied: np.ndarray) -> np.ndarray:
    """A Lambert-shaded depth rendering looking down the last axis: surface detail without an OpenGL context."""
    hit = occupied.any(axis=2)  # (H, W)
    depth = np.where(hit, occupied.argmax(axis=2), occupied.shape[2]).astype(np.float32)
    d_i, d_j = np.gradient(depth)
    normal = np.stack([-d_i, -d_j, np.ones_like(depth)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    light = np.array([0.5, 0.4, 0.77]) / np.linalg.norm([0.5, 0.4, 0.77])
    return np.where(hit, 0.15 + 0.85 * (normal @ light).clip(0, 1), 1.0)


def _plot_comparison(path: Path, target: np.ndarray, runs: list[tuple[dict, np.ndarray]]) -> None:
    """One column per volume (target, then each run): a shaded rendering above the middle slice."""
    middle = target.shape[0] // 2
    renders = [("target", shaded_view(target))] + [
        (f"{r['name']}  IoU {r['iou']:.4f}", shaded_view(o)) for r, o in runs
    ]
    slices = [("middle slice", target[middle].astype(float))]
    slices += [(f"middle slice {r['name']}", o[middle].astype(float)) for r, o in runs]
    plots.image_grid(path, [renders, slices], cmap="gray")
