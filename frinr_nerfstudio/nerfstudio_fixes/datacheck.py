"""Scene validation before training: a bad scene fails in one line, not deep inside nerfstudio.

Stock nerfstudio 1.1.5 on bad input (checked by hand, see tests/nerfstudio/test_datacheck.py):
- missing data directory: blender-data raises FileNotFoundError from ``load_from_json``;
  nerfstudio-data an ``AssertionError`` (``Data directory … does not exist``).
- malformed transforms JSON: ``json.JSONDecodeError`` traceback; a missing key a bare ``KeyError: 'frames'``.
- missing image files: blender-data fails in imageio (first image) or later in the dataloader (others);
  nerfstudio-data fails when the images are first loaded, after setup.
- instant-ngp-data: logs and skips frames whose image is missing, and trains on the rest; with exactly one image
  in a split it mis-shapes that split's cameras (numpy reads a one-element index tensor as a scalar), so
  ``ns-eval`` fails in nerfstudio's camera slicing.
- no test split: blender-data a FileNotFoundError only when ``ns-eval`` asks for ``transforms_test.json``,
  after training; nerfstudio-data with split lists but no ``test_filenames`` a RuntimeError then, and with
  fewer than 10 images and the default 0.9 train fraction silently an empty eval set.

:func:`check_scene` catches each of these up front with an :class:`~frinr_core.errors.InputError`; the
``Checked*`` parsers run it when nerfstudio sets the dataparser up (our pipelines swap them in with
:func:`use_checked_parser`), so ``ns-train``, ``ns-eval`` and ``ns-viewer`` with our methods fail before any
work is done.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from nerfstudio.data.datamanagers.base_datamanager import DataManagerConfig
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig
from nerfstudio.data.dataparsers.blender_dataparser import Blender, BlenderDataParserConfig
from nerfstudio.data.dataparsers.instant_ngp_dataparser import InstantNGP, InstantNGPDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import Nerfstudio, NerfstudioDataParserConfig
from PIL import Image

from frinr_core.errors import InputError

BLENDER_SPLITS = ("train", "val", "test")


def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"malformed {path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise InputError(f"malformed {path}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _check_frames(meta: dict, path: Path) -> list[dict]:
    """The non-empty list of frames, each with a file_path and a finite 3×4 or 4×4 transform_matrix."""
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"malformed {path}: needs a non-empty 'frames' list")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise InputError(f"malformed {path}: frame {i} has no 'file_path' string")
        try:
            matrix = np.asarray(frame.get("transform_matrix"), dtype=np.float64)
        except (TypeError, ValueError):
            matrix = np.zeros(0)
        if matrix.shape not in ((3, 4), (4, 4)) or not np.isfinite(matrix).all():
            raise InputError(f"malformed {path}: frame {i} needs a finite 4×4 'transform_matrix'")
    return frames


def _check_images(paths: list[Path], listed_in: Path, also: str = "") -> None:
    """``paths`` are the files a parser will open; the error names one of them as the JSON wrote it (``also``: the
    other name a parser would have tried)."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{listed_in.name} lists {len(missing)} missing image file(s), e.g. {missing[0]}{also}")


def _data_directory(data: Path) -> None:
    if not data.exists():
        raise InputError(f"data directory not found: {data}")


def check_blender(data: Path) -> None:
    """A NeRF-synthetic scene: transforms_{train,val,test}.json with camera_angle_x and frames, PNGs present."""
    data = Path(data)
    _data_directory(data)
    if not data.is_dir():
        raise InputError(f"blender-data needs a directory with transforms_*.json, got a file: {data}")
    for split in BLENDER_SPLITS:
        path = data / f"transforms_{split}.json"
        if not path.is_file():
            if split == "train":
                raise InputError(f"not a Blender-format scene: {path.name} not found in {data}")
            raise InputError(f"scene {data} has no {split} split: {path.name} not found")
        meta = _read_json(path)
        angle = meta.get("camera_angle_x")
        if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 < angle < math.pi:
            raise InputError(f"malformed {path}: needs 'camera_angle_x' in radians, in (0, π)")
        frames = _check_frames(meta, path)
        _check_images([data / (frame["file_path"].replace("./", "") + ".png") for frame in frames], path)


INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def _read_capture(data: Path, dataparser: str) -> tuple[Path, dict, list[dict]]:
    """A capture's transforms.json (``data`` is its directory or the JSON itself): path, contents, checked frames."""
    _data_directory(data)
    path = data if data.suffix == ".json" else data / "transforms.json"
    if not path.is_file():
        raise InputError(f"not a {dataparser} scene: {path.name} not found in {data}")
    meta = _read_json(path)
    return path, meta, _check_frames(meta, path)


MAX_AUTO_RESOLUTION = 1600  # nerfstudio-data's: its automatic downscale keeps the long side at most this


def auto_downscale(data: Path) -> int:
    """The downscale factor nerfstudio-data picks by itself for a capture: the smallest power of two bringing the first
    image's long side to 1600 pixels or less among the images_N/ folders that exist (ns-process-data writes 2, 4, 8)."""
    path, meta, frames = _read_capture(Path(data), "nerfstudio-data")
    first = path.parent / frames[0]["file_path"]
    with Image.open(first) as image:
        long_side = max(image.size)
    factor = 1
    while long_side / factor > MAX_AUTO_RESOLUTION and (path.parent / f"images_{factor * 2}" / first.name).is_file():
        factor *= 2
    return factor


def check_nerfstudio(
    data: Path, eval_mode: str = "fraction", train_split_fraction: float = 0.9, downscale_factor: int | None = None
) -> None:
    """A nerfstudio-data capture: transforms.json (or the JSON itself) with intrinsics, frames and images.

    ``eval_mode`` and ``train_split_fraction`` are the dataparser's, to check that an eval split exists;
    ``downscale_factor`` N > 1 reads every image from images_N/ (as the parser does), so those must exist.
    """
    path, meta, frames = _read_capture(Path(data), "nerfstudio-data")
    for i, frame in enumerate(frames):
        missing = [key for key in INTRINSICS if key not in meta and key not in frame]
        if missing:
            raise InputError(f"malformed {path}: frame {i} has no {', '.join(missing)} (nor has the file)")
    _check_images([path.parent / frame["file_path"] for frame in frames], path)
    if downscale_factor is not None and downscale_factor < 1:
        raise InputError(f"the downscale factor must be a positive integer, got {downscale_factor}")
    if downscale_factor and downscale_factor > 1:
        folder = path.parent / f"images_{downscale_factor}"
        scaled = [folder / Path(frame["file_path"]).name for frame in frames]
        _check_images(scaled, path, f" (downscale {downscale_factor} reads {folder.name}/; ns-process-data writes it)")
    if any(f"{split}_filenames" in meta for split in BLENDER_SPLITS):
        for split in BLENDER_SPLITS:
            if not isinstance(meta.get(f"{split}_filenames"), list) or not meta[f"{split}_filenames"]:
                raise InputError(f"scene {data} has no {split} split: {path.name} lacks '{split}_filenames'")
    elif eval_mode == "fraction" and len(frames) - math.ceil(len(frames) * train_split_fraction) < 1:
        raise InputError(
            f"scene {data} has no test split: {len(frames)} images with train fraction {train_split_fraction}"
            " leave none for evaluation"
        )


def check_instant_ngp(data: Path, eval_mode: str = "fraction", train_split_fraction: float = 0.9) -> None:
    """An instant-ngp-data capture: transforms.json (or the JSON itself) with a focal length, frames and images
    (``file_path`` as is or with ``.png``, as the parser looks them up), and splits of two images or more."""
    path, meta, frames = _read_capture(Path(data), "instant-ngp-data")
    if not any(key in meta for key in ("fl_x", "x_fov", "camera_angle_x")):
        raise InputError(f"malformed {path}: needs a focal length (fl_x, x_fov or camera_angle_x)")
    images = [path.parent / frame["file_path"] for frame in frames]
    missing = [p for p in images if not p.is_file() and not p.with_name(p.name + ".png").is_file()]
    _check_images(missing, path, " (nor with .png appended, which instant-ngp-data also tries)")
    if eval_mode == "fraction":
        n_eval = len(frames) - math.ceil(len(frames) * train_split_fraction)
        if n_eval < 2:
            raise InputError(
                f"scene {data} would have {n_eval} test image(s) ({len(frames)} images, train fraction "
                f"{train_split_fraction}); instant-ngp-data needs 2 or more (nerfstudio 1.1.5 mis-shapes one)"
            )


SCENE_CHECKS = {
    "blender-data": check_blender,
    "nerfstudio-data": check_nerfstudio,
    "instant-ngp-data": check_instant_ngp,
}


def check_scene(data: Path, dataparser: str, downscale: int | None = None) -> None:
    """Raise :class:`InputError` with a one-line message if nerfstudio's ``dataparser`` cannot use ``data`` (read with
    ``downscale``, for nerfstudio-data)."""
    if dataparser not in SCENE_CHECKS:
        raise InputError(f"unknown dataparser {dataparser!r}; choose from {', '.join(SCENE_CHECKS)}")
    if dataparser == "nerfstudio-data":
        check_nerfstudio(Path(data), downscale_factor=downscale)
    elif downscale is not None:
        raise InputError(f"{dataparser} has no downscale option; drop --downscale")
    else:
        SCENE_CHECKS[dataparser](Path(data))


class CheckedBlender(Blender):
    """nerfstudio's Blender parser, validating the whole scene when it is set up."""

    def __init__(self, config: BlenderDataParserConfig):
        check_blender(config.data)
        super().__init__(config)


class CheckedNerfstudio(Nerfstudio):
    """nerfstudio's nerfstudio-data parser, validating the capture when it is set up."""

    def __init__(self, config: NerfstudioDataParserConfig):
        check_nerfstudio(config.data, config.eval_mode, config.train_split_fraction, config.downscale_factor)
        super().__init__(config)


class CheckedInstantNGP(InstantNGP):
    """nerfstudio's instant-ngp-data parser, validating the capture when it is set up."""

    def __init__(self, config: InstantNGPDataParserConfig):
        check_instant_ngp(config.data, config.eval_mode, config.train_split_fraction)
        super().__init__(config)


CHECKED_PARSERS = {Blender: CheckedBlender, Nerfstudio: CheckedNerfstudio, InstantNGP: CheckedInstantNGP}


def use_checked_parser(config: DataParserConfig) -> DataParserConfig:
    """Point a stock blender-data / nerfstudio-data / instant-ngp-data config at its validating parser (in place;
    others untouched).

    Done by our pipelines before they build the datamanager, so the check runs whichever dataparser
    subcommand the user picked, including an explicit ``blender-data``.
    """
    config._target = CHECKED_PARSERS.get(config._target, config._target)
    return config


def scene_dataparser(datamanager: DataManagerConfig) -> DataParserConfig:
    """The datamanager's dataparser config, pointed at the data it will read (in place), as nerfstudio's datamanager
    does only when it is built: ``ns-train --data`` sets the datamanager's path, not the dataparser's."""
    if getattr(datamanager, "data", None) is not None:
        datamanager.dataparser.data = Path(datamanager.data)
    return datamanager.dataparser
