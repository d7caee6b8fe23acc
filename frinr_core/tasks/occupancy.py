"""`frinr occupancy`: fit a 3D occupancy grid with a coordinate MLP — the paper's 3D experiment.

Flow: volume, mesh or built-in shape → cropped boolean grid (frinr_core.volumes) → baseline and/or FR
network from one builder → training on random point batches (MSE on 0/1, as the official code) → per run:
IoU on the full grid (the paper's metric: the very points trained on), IoU on held-out points between them
(judged by the source at its own resolution), the predicted occupancy (.npz) and a marching-cubes mesh (.ply);
compare.png and metrics.json for all runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy import ndimage
from skimage.measure import marching_cubes
from torch import Tensor

from frinr_core import paper, plots, runner, volumes
from frinr_core.errors import InputError
from frinr_core.mlp import MLPConfig, build_mlp
from frinr_core.runner import Network, RunConfig, Trained, Training
from frinr_core.train import Arm, Bar, TrainOptions, fit

MAX_BATCH = 500_000
"""Points per step at most, as the official code's chunks."""
HELD_OUT = 1 << 18
"""Held-out points at most (cell centres of the grid, a random subset of them on large grids)."""


@dataclass
class OccupancyConfig(RunConfig):
    """Fit a 3D occupancy grid with SIREN or ReLU+PE, with or without FR (--compare: both)."""

    volume: Path | None = None
    """Occupancy volume: .mat (see --key), a .mat inside a .zip, or .npy; thresholded at half its maximum."""
    key: str = "hypercube"
    """Variable holding the volume in a .mat file."""
    mesh: Path | None = None
    """Triangle mesh (.obj, .ply, .stl, ...) turned into occupancy; holes are closed first (see README)."""
    resolution: int = 128
    """Voxels along the longest side of the cropped grid (a volume is only ever subsampled, never enlarged)."""
    batch: int = 1 << 16
    """Random grid points per step (at most 500000)."""
    out: Path = Path("outputs/occupancy")
    network: Network = field(
        default_factory=lambda: MLPConfig(
            arch="siren",
            hidden_features=256,
            hidden_layers=2,
            fr=True,
            fourier=paper.occupancy(sine=True),
            pe_frequencies=10,
        )  # fmt: skip
    )
    train: Training = field(default_factory=lambda: TrainOptions(steps=300, lr_decay=0.2))


def load_target(config: OccupancyConfig) -> tuple[volumes.Target, str]:
    """The target to fit and a name for its source; the memory check comes before any loading."""
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


def predict(model: torch.nn.Module, points: Tensor, chunk: int = 1 << 18) -> np.ndarray:
    """The model at (N, 3) points, float32 (N,)."""
    with torch.no_grad():
        return torch.cat([model(part)[:, 0] for part in points.split(chunk)]).numpy()


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


class Occupancy(runner.Task):
    metric = "iou"
    difference = "{:+.4f} IoU"
    default_lr = 5e-3
    columns = ["batch", "iou", "iou_heldout"]

    def __init__(self, config: OccupancyConfig) -> None:
        super().__init__(config)
        if not 1 <= config.batch <= MAX_BATCH:
            raise InputError(f"--batch must be 1 … {MAX_BATCH} points, got {config.batch}")
        target, self.source = load_target(config)
        self.target = target.grid
        self.grid = Grid(self.target.shape)
        # Held-out IoU: points between the voxel centres, judged by the source at its own resolution.
        held_out = volumes.held_out_points(self.target.shape, HELD_OUT, config.train.seed)  # (N, 3) grid coordinates
        self.held_out = torch.from_numpy(volumes.to_unit(held_out, self.target.shape))
        self.held_out_target = target.inside(held_out)
        # What the grid alone tells about those points: the target grid interpolated trilinearly, as a reference.
        interpolated = ndimage.map_coordinates(self.target.astype(np.float32), held_out.T, order=1) >= 0.5
        self.held_out_reference = iou(interpolated, self.held_out_target)
        self.flat_target = torch.from_numpy(self.target.reshape(-1))  # (H·W·D,) bool view
        # Learning-curve IoU on a fixed random sample of voxels; the reported IoU is on the full grid.
        generator = torch.Generator().manual_seed(config.train.seed)
        probe = torch.randint(len(self.grid), (min(len(self.grid), 1 << 17),), generator=generator)
        self.probe_points, self.probe_target = self.grid.points(probe), self.flat_target[probe].numpy()
        self.views: dict[str, np.ndarray] = {}  # occupancy file -> predicted occupancy, for compare.png

    def write_target(self) -> dict:
        np.savez_compressed(self.config.out / "target.npz", occupancy=self.target)
        save_mesh(self.config.out / "target.ply", self.target.astype(np.float32))
        return {
            "source": self.source, "grid": list(self.target.shape), "occupied": int(self.target.sum()),
            "held_out": {
                "points": len(self.held_out), "occupied": int(self.held_out_target.sum()),
                "iou_interpolated_target": self.held_out_reference,
            },
        }  # fmt: skip

    def batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(self.grid), (min(self.config.batch, len(self.grid)),), generator=generator)
        return self.grid.points(index), self.flat_target[index, None].float()

    def train(self, arm: Arm, options: TrainOptions, lr: float, bar: Bar | None = None) -> Trained:
        torch.manual_seed(options.seed)
        model = build_mlp(3, 1, arm.mlp, samples=max(self.target.shape))
        result = fit(
            model, self.batch, options=options, lr=lr, metric="iou", description=f"{arm.name} lr={lr:g}", bar=bar,
            evaluate=None if bar else lambda: self.score(model),
        )  # fmt: skip
        return Trained(model, result)

    def score(self, model: torch.nn.Module) -> float:
        """IoU on the probe points (a fixed random sample of the grid): the learning curve and the search."""
        return iou(predict(model, self.probe_points) >= 0.5, self.probe_target)

    def measure(self, trained: Trained, name: str) -> dict:
        values = self.grid.predict(trained.model)
        occupied = values >= 0.5
        np.savez_compressed(self.config.out / f"{name}.npz", occupancy=occupied)
        self.views[f"{name}.npz"] = occupied
        meshed = save_mesh(self.config.out / f"{name}.ply", values)
        return {
            "batch": self.config.batch, "iou": iou(occupied, self.target),
            "iou_heldout": iou(predict(trained.model, self.held_out) >= 0.5, self.held_out_target),
            "occupancy": f"{name}.npz", "mesh": f"{name}.ply" if meshed else None,
        }  # fmt: skip

    def notes(self) -> list[str]:
        return [
            f"iou: the grid trained on (the paper's metric); iou_heldout: {len(self.held_out)} points halfway between "
            f"its voxel centres, judged by the source at its own resolution (the target grid itself, interpolated "
            f"trilinearly, scores {self.held_out_reference:.4f} there)"
        ]

    def plot(self, runs: list[dict]) -> None:
        out = self.config.out
        plots.curves(out / "iou_curve.png", {r["name"]: r["curve"] for r in runs}, "step", "IoU (probe points)")
        _plot_comparison(out / "compare.png", self.target, [(r, self.views[r["occupancy"]]) for r in runs])


def run(config: OccupancyConfig) -> dict:
    return runner.run(Occupancy(config))


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
        (f"{r['name']}  IoU {r['iou']:.4f} (held-out {r['iou_heldout']:.4f})", shaded_view(o)) for r, o in runs
    ]
    slices = [("middle slice", target[middle].astype(float))]
    slices += [(f"middle slice {r['name']}", o[middle].astype(float)) for r, o in runs]
    plots.image_grid(path, [renders, slices], cmap="gray")
