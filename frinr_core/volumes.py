"""Occupancy targets for `frinr occupancy`: a volume file, a triangle mesh or a built-in shape → boolean grid.

Every source ends as a boolean grid cropped to the shape's tight bounding box whose longest side has at most
``resolution`` voxels; voxel centres map to [-1, 1] on each axis (as the official code). Large volumes are
cropped and subsampled while still in their stored integer type, so a 512³ uint8 volume is never turned into
a float copy.

Each source also answers what is occupied *between* the grid's voxel centres, at its own resolution (the
full-resolution volume, the mesh itself, the built-in shape's formula): the truth for a held-out IoU on
points the network never trained on.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import scipy.io
import trimesh
from scipy import ndimage

from frinr_core.errors import InputError, first_line
from frinr_core.io import existing_file

BYTES_PER_VOXEL = 24
"""Peak working memory per grid voxel: target and predicted occupancy (bool), the float32 prediction, its
zero-padded copy and the float64 scratch of marching cubes, plus slack for chunked evaluation."""


def check_memory(resolution: int) -> None:
    """Refuse, before loading anything, a resolution whose grid cannot fit in the memory available now."""
    if resolution < 4:
        raise InputError(f"--resolution must be >= 4 voxels, got {resolution}")
    needed = resolution**3 * BYTES_PER_VOXEL
    available = psutil.virtual_memory().available
    if needed > available:
        raise InputError(
            f"--resolution {resolution} needs about {needed / 2**30:.1f} GiB for its {resolution}³ grid "
            f"({BYTES_PER_VOXEL} bytes per voxel) but only {available / 2**30:.1f} GiB is available; lower it"
        )


def coordinates(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Voxel-centre coordinates along each axis, spanning [-1, 1] (0 for an axis one voxel thick)."""
    return [np.linspace(-1, 1, n, dtype=np.float32) if n > 1 else np.zeros(1, np.float32) for n in shape]


@dataclass(frozen=True)
class Target:
    """An occupancy target: the grid a network trains on, and its source's occupancy anywhere in that grid."""

    grid: np.ndarray
    """(H, W, D) bool; voxel centres map to [-1, 1] on each axis."""
    inside: Callable[[np.ndarray], np.ndarray]
    """(N, 3) grid coordinates (voxel i's centre at i, fractions between) → (N,) bool: the source's occupancy
    there at its own resolution. Equal to ``grid`` at voxel centres; the truth at held-out points between them."""


def held_out_points(shape: tuple[int, int, int], limit: int, seed: int) -> np.ndarray:
    """Up to ``limit`` cell centres of the grid (half a voxel from every voxel centre), as (N, 3) grid coordinates.

    The points farthest from all training points; a seeded random subset when the grid has more cells.
    """
    axes = [np.arange(n - 1) + 0.5 if n > 1 else np.zeros(1) for n in shape]
    cells = math.prod(len(a) for a in axes)
    chosen = np.arange(cells) if cells <= limit else np.random.default_rng(seed).choice(cells, limit, replace=False)
    return np.stack([a[i] for a, i in zip(axes, np.unravel_index(chosen, [len(a) for a in axes]), strict=True)], -1)


def to_unit(points: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, 3) grid coordinates → the network's [-1, 1] coordinates (float32), as :func:`coordinates` maps centres."""
    scale = np.array([2 / (n - 1) if n > 1 else 0.0 for n in shape])
    return (np.where(scale > 0, points * scale - 1, 0.0)).astype(np.float32)


# --- volumes -------------------------------------------------------------------------------------------------


def load_volume(path: Path, key: str, resolution: int) -> Target:
    """A ``.mat`` (variable ``key``), the same zipped, or a ``.npy`` → cropped boolean grid (value ≥ max/2)."""
    path = existing_file(path, "volume")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            volume = np.load(path, mmap_mode="r", allow_pickle=False)  # memory-mapped: crop before reading
        except (ValueError, OSError) as error:
            raise InputError(f"cannot read {path} as .npy: {first_line(error)}") from None
    elif name.endswith(".zip"):
        volume = _load_zipped_mat(path, key)
    elif name.endswith(".mat"):
        with path.open("rb") as stream:
            volume = _read_mat(stream, key, str(path))
    else:
        raise InputError(f"unsupported volume format {path.suffix!r}: expected .mat, .mat inside .zip, or .npy")
    return binarize_and_crop(volume, resolution, str(path))


def _load_zipped_mat(path: Path, key: str) -> np.ndarray:
    """Read the ``.mat`` inside a zip straight from the archive stream (nothing unpacked to disk)."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path} is not a valid zip archive") from None
    with archive:
        members = [m for m in archive.namelist() if m.lower().endswith(".mat")]
        if len(members) != 1:
            raise InputError(f"{path} must hold exactly one .mat file, found {len(members)}: {members}")
        with archive.open(members[0]) as stream:
            return _read_mat(stream, key, f"{path}:{members[0]}")


def _read_mat(stream, key: str, where: str) -> np.ndarray:
    try:
        variables = scipy.io.loadmat(stream, variable_names=[key])
    except NotImplementedError:  # scipy's message for HDF5-based files
        raise InputError(f"{where} is a MATLAB v7.3 (HDF5) file; save it with -v7 or as .npy") from None
    except Exception as error:  # scipy raises ValueError, MatReadError, TypeError... for corrupt files
        raise InputError(f"cannot read {where} as a .mat file: {first_line(error)}") from None
    if key not in variables:
        stream.seek(0)
        names = [name for name, _, _ in scipy.io.whosmat(stream)]
        raise InputError(f"{where} has no variable {key!r} (--key); it holds: {', '.join(names) or 'nothing'}")
    return variables[key]


def _occupied_box(volume: np.ndarray, level) -> tuple[slice, ...]:
    """The tight bounding box of ``volume >= level``, from per-axis maxima (no full-size boolean copy)."""
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        occupied = np.flatnonzero(volume.max(axis=others) >= level)  # (n,) small per-axis profile
        box.append(slice(occupied[0], occupied[-1] + 1))
    return tuple(box)


def binarize_and_crop(volume: np.ndarray, resolution: int, where: str) -> Target:
    """Threshold at half the maximum, crop to the occupied bounding box, subsample to ``resolution``.

    Works on the stored dtype throughout: per-axis maxima find the box, nearest-neighbour index sampling
    (the official code's ``zoom(order=0)``) shrinks it, and only the small result is thresholded. Grid
    coordinate u along an axis reads source voxel ⌊(u + ½)/scale⌋ — the voxel centres exactly the grid's
    samples, the points between them the source voxels the subsampling skipped (so the cropped source is
    kept: a 512³ uint8 volume stays in memory, as it was read, while the grid trains).
    """
    if volume.ndim != 3 or min(volume.shape) == 0:
        raise InputError(f"{where}: expected a non-empty 3D volume, got shape {volume.shape}")
    if not (np.issubdtype(volume.dtype, np.number) or volume.dtype == bool):
        raise InputError(f"{where}: expected numbers, got values of type {volume.dtype}")
    peak = volume.max()
    if np.issubdtype(volume.dtype, np.floating) and not math.isfinite(peak):
        raise InputError(f"{where}: the volume contains NaN or infinite values")
    if not peak > 0:
        raise InputError(f"{where}: the volume is empty (maximum {peak}); nothing to fit")
    half = peak / 2 if volume.dtype != bool else True
    cropped = volume[_occupied_box(volume, half)]
    scale = min(1.0, resolution / max(cropped.shape))
    sizes = [max(1, int(n * scale + 0.5)) for n in cropped.shape]

    def source(axis: int, u: np.ndarray) -> np.ndarray:  # grid coordinates along an axis → source indices
        return np.minimum(((u + 0.5) / scale).astype(np.int64), cropped.shape[axis] - 1)

    grid = np.asarray(cropped[np.ix_(*(source(axis, np.arange(size)) for axis, size in enumerate(sizes)))] >= half)
    return Target(grid, lambda points: np.asarray(cropped[tuple(source(a, points[:, a]) for a in range(3))] >= half))


# --- meshes --------------------------------------------------------------------------------------------------


def load_mesh(path: Path, resolution: int) -> Target:
    """A triangle mesh → boolean grid over its bounding box (longest side ``resolution`` voxels).

    The surface is rasterised (faces subdivided below half a voxel, so the shell has no gaps), the enclosed
    space filled, and each voxel the surface passes through kept only if its centre is inside the mesh.
    Holes in a non-watertight mesh are first closed by a fan of triangles from each boundary loop to its
    centroid — right for the small, roughly flat holes of scans such as the Stanford bunny's base. A surface
    that still encloses nothing (an open sheet) is refused. Between voxel centres the mesh itself is the truth.
    """
    path = existing_file(path, "mesh")
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as error:  # trimesh raises many types for unknown or corrupt files
        raise InputError(f"cannot read mesh {path}: {first_line(error)}") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"mesh {path} has no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise InputError(f"mesh {path} has NaN or infinite vertex coordinates")
    if not mesh.is_watertight:
        mesh = close_holes(mesh)
    lower, upper = mesh.bounds
    pitch = float((upper - lower).max()) / resolution
    if pitch <= 0:
        raise InputError(f"mesh {path} has zero extent")
    shape = np.maximum(np.ceil((upper - lower) / pitch).astype(np.int64), 1)
    vertices, _ = trimesh.remesh.subdivide_to_size(mesh.vertices, mesh.faces, max_edge=pitch / 2)
    cells = np.clip(np.floor((vertices - lower) / pitch).astype(np.int64), 0, shape - 1)
    shell = np.zeros(shape, dtype=bool)
    shell[tuple(cells.T)] = True
    solid = ndimage.binary_fill_holes(shell)
    if solid.sum() == shell.sum():
        raise InputError(f"mesh {path} encloses no volume at --resolution {resolution} (an open surface?)")

    def inside(points: np.ndarray) -> np.ndarray:  # (N, 3) grid coordinates; voxel i's centre is lower + (i + ½)·pitch
        return mesh.contains(lower + (points + 0.5) * pitch)

    surface = np.argwhere(shell)  # (S, 3): voxels the surface passes through, inside only if their centre is
    solid[tuple(surface.T)] = inside(surface)
    return Target(solid, inside)


def close_holes(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh`` with every boundary loop closed by a triangle fan to the loop's centroid."""
    edges = mesh.edges_sorted[trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)]  # (E, 2)
    if len(edges) == 0:
        return mesh
    loops = trimesh.graph.connected_components(edges, min_len=1)
    loop_of = np.full(len(mesh.vertices), -1)
    for index, loop in enumerate(loops):
        loop_of[loop] = index
    centroids = np.stack([mesh.vertices[loop].mean(axis=0) for loop in loops])  # (loops, 3)
    fans = np.column_stack([edges, len(mesh.vertices) + loop_of[edges[:, 0]]])  # (E, 3)
    return trimesh.Trimesh(np.vstack([mesh.vertices, centroids]), np.vstack([mesh.faces, fans]), process=False)


# --- built-in shape ------------------------------------------------------------------------------------------


def _shape_formula(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A bumpy blob with fine ridges and a thin ring through it, as occupancy at coordinates in [-1, 1]³."""
    radius = 0.65 + 0.08 * np.sin(5 * x) * np.sin(4 * y + 1) * np.sin(6 * z) + 0.025 * np.sin(31 * x) * np.sin(29 * y)
    blob = x * x + y * y + (1.2 * z) ** 2 < radius * radius
    ring = (np.sqrt(x * x + z * z) - 0.8) ** 2 + y * y < 0.08**2
    return blob | ring


def procedural_shape(resolution: int) -> Target:
    """The built-in shape: detail at several scales, no files needed; its formula is the truth between voxels.

    The ridges (period about 0.2) are what a spectrally biased network blurs first.
    """
    step = 2 / (resolution - 1)
    axis = np.arange(resolution) * step - 1
    full = _shape_formula(*np.meshgrid(axis, axis, axis, indexing="ij", sparse=True))  # (N, N, N)
    box = _occupied_box(full, True)
    start = np.array([s.start for s in box])
    return Target(full[box], lambda points: _shape_formula(*((points + start) * step - 1).T))
