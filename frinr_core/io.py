"""Reading targets and writing results: images in, images and JSON out."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from skimage.transform import resize
from torch import Tensor

from frinr_core.errors import InputError, first_line


def existing_file(path: Path, what: str) -> Path:
    """``path`` if it is a readable file, else an :class:`InputError` saying what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_dir():
        raise InputError(f"{what} is a directory, not a file: {path}")
    return path


def load_image(path: Path | None, size: int | None = None) -> Tensor:
    """An image as float32 (H, W, C) in [0, 1], C = 1 (grayscale) or 3 (RGB).

    Any 8- or 16-bit PNG/JPEG/TIFF imageio reads; alpha is composited on white. ``size`` resizes the long
    side (anti-aliased). Without ``path`` it is scikit-image's bundled astronaut, so runs work offline.
    """
    if size is not None and size < 1:
        raise InputError(f"--size must be a positive number of pixels, got {size}")
    if path is None:
        from skimage import data

        pixels = data.astronaut()
    else:
        path = existing_file(path, "image")
        try:
            pixels = iio.imread(path)
        except Exception as error:  # imageio raises many types for undecodable files
            reason = first_line(error)
            raise InputError(f"cannot read image {path}: not a readable PNG/JPEG/TIFF ({reason})") from None
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[-1] > 4 and pixels.shape[0] <= 4:
        pixels = pixels[0]  # multi-page TIFF or animated image: first frame
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"unsupported image layout {pixels.shape}: expected grayscale, RGB or RGBA")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise InputError(f"image has zero size: {pixels.shape[1]}×{pixels.shape[0]}")
    if pixels.dtype == np.uint8:
        image = pixels.astype(np.float32) / 255
    elif pixels.dtype == np.uint16:
        image = pixels.astype(np.float32) / 65535
    elif np.issubdtype(pixels.dtype, np.floating):
        image = pixels.astype(np.float32)
        if not np.isfinite(image).all():
            raise InputError("image contains NaN or infinite values")
        image = image.clip(0, 1)
    else:
        raise InputError(f"unsupported pixel type {pixels.dtype}: expected 8- or 16-bit")
    if image.shape[-1] in (2, 4):  # gray+alpha or RGBA: composite on white
        color, alpha = image[..., :-1], image[..., -1:]
        image = color * alpha + (1 - alpha)
    if size is not None:
        height, width = image.shape[:2]
        scale = size / max(height, width)
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = resize(image, shape, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(image))


def to_uint8(image: Tensor) -> np.ndarray:
    """(H, W, C) float image → uint8 array, clipped to [0, 1]; C = 1 is saved as grayscale."""
    array = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def save_image(path: Path, image: Tensor) -> np.ndarray:
    """Write an 8-bit PNG and return exactly the pixels written."""
    pixels = to_uint8(image)
    iio.imwrite(path, pixels)
    return pixels


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub markdown table of ``columns`` from ``rows``; floats to 4 significant digits, None as n/a."""

    def cell(value) -> str:
        if value is None:
            return "n/a"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
