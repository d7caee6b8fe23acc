"""`frinr make-scene`: a procedural NeRF-synthetic-style scene, rendered by analytic ray casting.

The demo and the tests need a Blender-format scene without a download. This one is rendered from code
alone: a checkered plate, a latitude/longitude-checkered sphere, a finely striped rotated box and a
ring-striped small sphere, lit by one Lambertian light with hard shadows. The textures have detail down
to a few pixels at 64×64, so a method's ability to fit high frequencies shows in its test PSNR.

Conventions follow NeRF-synthetic exactly, so nerfstudio's ``blender-data`` parser reads it unchanged:
world z up, OpenGL camera-to-world matrices (camera looks down its -z, y up), cameras at radius 4 looking
at the origin, ``camera_angle_x`` as lego's, RGBA PNGs with straight alpha and a transparent background,
everything inside nerfstudio's [-1.5, 1.5]³ scene box.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from frinr_core.cli import Command
from frinr_core.errors import InputError

CAMERA_ANGLE_X = 0.6911112070083618  # NeRF-synthetic's horizontal field of view (radians)
CAMERA_RADIUS = 4.0
LIGHT = np.array([0.4, 0.3, 1.0]) / np.linalg.norm([0.4, 0.3, 1.0])
SUPERSAMPLING = 3  # SUPERSAMPLING² stratified rays per pixel: anti-aliased edges (soft alpha) and textures


@dataclass(frozen=True)
class Primitive:
    """A sphere (``half`` is None) or a box rotated about z by ``angle``, with a procedural texture."""

    center: tuple[float, float, float]
    texture: str
    radius: float = 0.0
    half: tuple[float, float, float] | None = None
    angle: float = 0.0  # radians about z (boxes only)


SCENE = (
    Primitive((0.0, 0.0, -0.45), "plate", half=(0.82, 0.82, 0.06)),
    Primitive((-0.3, 0.25, 0.2), "globe", radius=0.6),
    Primitive((0.48, -0.43, -0.09), "stripes", half=(0.3, 0.3, 0.3), angle=0.6),
    Primitive((0.52, 0.52, -0.19), "rings", radius=0.2),
)


def _rotation(angle: float) -> np.ndarray:  # (3, 3) world -> local for a rotation about z
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _intersect(prim: Primitive, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest positive hit distance (N,) (inf on a miss) and the world-space normal (N, 3)."""
    center = np.asarray(prim.center)
    if prim.half is None:
        oc = origins - center  # (N, 3)
        b = (oc * dirs).sum(-1)
        disc = b**2 - ((oc**2).sum(-1) - prim.radius**2)
        root = np.sqrt(np.maximum(disc, 0.0))
        t = np.where(-b - root > 1e-6, -b - root, -b + root)
        t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
        normal = (origins + t[:, None] * dirs - center) / prim.radius
        return t, normal
    rot = _rotation(prim.angle)
    o, d = (origins - center) @ rot.T, dirs @ rot.T  # local frame
    half = np.asarray(prim.half)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t0, t1 = (-half - o) * inv, (half - o) * inv
    near, far = np.minimum(t0, t1), np.maximum(t0, t1)
    t_near, t_far = np.nan_to_num(near, nan=-np.inf).max(-1), np.nan_to_num(far, nan=np.inf).min(-1)
    t = np.where(t_near > 1e-6, t_near, t_far)
    t = np.where((t_near <= t_far) & (t > 1e-6), t, np.inf)
    local = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    axis = np.abs(local / half).argmax(-1)  # the face hit is the one the point lies on
    normal = np.zeros_like(local)
    normal[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
    return t, normal @ rot


def _texture(prim: Primitive, points: np.ndarray) -> np.ndarray:
    """Albedo (N, 3) of hit points (N, 3): high-frequency patterns, a few pixels per period at 64²."""
    local = (points - np.asarray(prim.center)) @ _rotation(prim.angle).T
    if prim.texture == "plate":  # checker of 0.1-unit cells
        cells = np.floor(local[:, :2] / 0.1).sum(-1) % 2
        colors = np.where(cells[:, None] > 0, [0.92, 0.9, 0.82], [0.25, 0.35, 0.55])
    elif prim.texture == "globe":  # latitude/longitude checker, 12 × 24 cells
        unit = local / prim.radius
        lat = np.arccos(np.clip(unit[:, 2], -1, 1))
        lon = np.arctan2(unit[:, 1], unit[:, 0])
        cells = (np.floor(lat / math.pi * 12) + np.floor((lon + math.pi) / (2 * math.pi) * 24)) % 2
        colors = np.where(cells[:, None] > 0, [0.85, 0.12, 0.1], [0.97, 0.95, 0.9])
    elif prim.texture == "stripes":  # diagonal stripes of period 0.08 in the box's frame
        phase = np.sin(2 * math.pi * (local[:, 0] + local[:, 1] + local[:, 2]) / 0.08)
        colors = np.where(phase[:, None] > 0, [0.1, 0.2, 0.75], [0.98, 0.8, 0.15])
    else:  # rings: horizontal bands of period 0.05 with a smooth (not binary) profile
        phase = 0.5 + 0.5 * np.sin(2 * math.pi * local[:, 2] / 0.05)
        colors = phase[:, None] * np.array([0.1, 0.7, 0.3]) + (1 - phase[:, None]) * np.array([0.05, 0.1, 0.08])
    return colors


def _cast(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hit distance (N,), index of the primitive hit (N,) and normal (N, 3) of the nearest hit."""
    hits = [_intersect(prim, origins, dirs) for prim in SCENE]
    t = np.stack([h[0] for h in hits])  # (P, N)
    index = t.argmin(0)
    normals = np.stack([h[1] for h in hits])[index, np.arange(len(index))]
    return t[index, np.arange(len(index))], index, normals


def _shade(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight colour (N, 3) and coverage (N,) of rays: albedo × (ambient + Lambert), hard shadows."""
    t, index, normals = _cast(origins, dirs)
    hit = np.isfinite(t)
    points = origins + np.where(hit, t, 0.0)[:, None] * dirs
    albedo = np.zeros_like(points)
    for i, prim in enumerate(SCENE):
        mask = hit & (index == i)
        albedo[mask] = _texture(prim, points[mask])
    lambert = np.clip(normals @ LIGHT, 0.0, 1.0)
    shadow_t, _, _ = _cast(points + 1e-4 * normals, np.broadcast_to(LIGHT, points.shape))
    lit = np.where(np.isfinite(shadow_t), 0.0, lambert)
    return albedo * (0.35 + 0.65 * lit)[:, None], hit.astype(np.float64)


def camera_to_world(position: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world (4, 4) for a camera at ``position`` looking at the origin, world z up."""
    back = position / np.linalg.norm(position)  # camera +z points away from what it looks at
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    matrix = np.eye(4)
    matrix[:3, :3] = np.stack([right, up, back], axis=1)
    matrix[:3, 3] = position
    return matrix


def render(c2w: np.ndarray, size: int) -> np.ndarray:
    """An RGBA uint8 image (size, size, 4) seen by the camera ``c2w``, straight (not premultiplied) alpha."""
    focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING  # stratified sub-pixel positions
    v, u, sv, su = np.meshgrid(np.arange(size), np.arange(size), offsets, offsets, indexing="ij")
    x, y = (u + su - 0.5 * size) / focal, -(v + sv - 0.5 * size) / focal  # OpenGL: y up, looking down -z
    dirs = np.stack([x, y, -np.ones_like(x)], -1).reshape(-1, 3) @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    color, alpha = _shade(np.broadcast_to(c2w[:3, 3], dirs.shape), dirs)
    color = color.reshape(size, size, -1, 3)  # (H, W, S², 3)
    alpha = alpha.reshape(size, size, -1, 1)
    coverage = alpha.mean(2)  # (H, W, 1)
    straight = (color * alpha).sum(2) / np.maximum(alpha.sum(2), 1.0)
    rgba = np.concatenate([straight, coverage], -1)
    return (np.clip(rgba, 0, 1) * 255).round().astype(np.uint8)


def _positions(rng: np.random.Generator, count: int, split: str) -> np.ndarray:
    """(count, 3) camera centres on the sphere of radius 4: random over the upper hemisphere for train/val
    (as NeRF-synthetic), an evenly spaced ring at 30° elevation for test."""
    if split == "test":
        azimuth = np.linspace(0, 2 * math.pi, count, endpoint=False) + 0.3
        elevation = np.full(count, math.radians(30))
    else:
        azimuth = rng.uniform(0, 2 * math.pi, count)
        elevation = np.arcsin(rng.uniform(math.sin(math.radians(8)), math.sin(math.radians(75)), count))
    return CAMERA_RADIUS * np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], -1
    )


def make_scene(out: Path, *, size: int = 64, n_train: int = 40, n_val: int = 5, n_test: int = 5, seed: int = 0) -> Path:
    """Render the scene into ``out``: transforms_{train,val,test}.json and {train,val,test}/r_i.png; returns ``out``."""
    if not 8 <= size <= 2048:
        raise InputError(f"--size must be between 8 and 2048 pixels, got {size}")
    counts = {"train": n_train, "val": n_val, "test": n_test}
    for split, count in counts.items():
        if count < 1:
            raise InputError(f"--n-{split} must be at least 1 view, got {count}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out is a file, not a directory: {out}")
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i, position in enumerate(_positions(rng, count, split)):
            c2w = camera_to_world(position)
            iio.imwrite(out / split / f"r_{i}.png", render(c2w, size))
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
        meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}
        (out / f"transforms_{split}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


@dataclass
class MakeSceneConfig:
    """Render the procedural demo scene in Blender (NeRF-synthetic) format, so the NeRF demo needs no download."""

    out: Path = Path("frinr-scene")
    """Directory to write transforms_*.json and the train/val/test PNGs into."""
    size: int = 64
    """Image width and height in pixels."""
    n_train: int = 40
    """Training views (random over the upper hemisphere)."""
    n_val: int = 5
    """Validation views (random over the upper hemisphere)."""
    n_test: int = 5
    """Test views (a ring at 30° elevation)."""
    seed: int = 0
    """Seed of the random camera positions."""


def run(config: MakeSceneConfig) -> Path:
    out = make_scene(
        config.out, size=config.size, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test, seed=config.seed
    )
    total = config.n_train + config.n_val + config.n_test
    print(f"wrote {total} views ({config.size}×{config.size}) to {out}")
    print(f"train with: ns-train frinr-ngp blender-data --data {out}")
    return out


COMMAND = Command(MakeSceneConfig, run, "render the procedural demo scene (Blender format)")
