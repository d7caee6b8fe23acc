"""Bad scenes fail up front with one line (stock nerfstudio: tracebacks, or failures only at ns-eval time)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.data.dataparsers.instant_ngp_dataparser import InstantNGPDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

from frinr_core.errors import InputError
from frinr_nerfstudio.nerfstudio_fixes.datacheck import check_scene, use_checked_parser
from frinr_nerfstudio.tools.scene import make_scene


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scene(tmp_path_factory.mktemp("good"), size=8, n_train=3, n_val=1, n_test=1)


def _variant(good: Path, where: Path, change: Callable[[Path], object]) -> Path:
    shutil.copytree(good, where)
    change(where)
    return where


BLENDER_CASES = {
    "missing directory": (lambda d: shutil.rmtree(d), "data directory not found"),
    "malformed JSON": (lambda d: (d / "transforms_train.json").write_text('{"frames": ['), "not valid JSON"),
    "no frames": (lambda d: (d / "transforms_val.json").write_text('{"camera_angle_x": 0.7}'), "'frames'"),
    "bad matrix": (
        lambda d: (d / "transforms_test.json").write_text(
            json.dumps({"camera_angle_x": 0.7, "frames": [{"file_path": "./test/r_0", "transform_matrix": [[1, 2]]}]})
        ),
        "4×4 'transform_matrix'",
    ),
    "missing image": (lambda d: (d / "train" / "r_1.png").unlink(), r"1 missing image file\(s\), e.g. .*r_1.png"),
    "no test split": (lambda d: (d / "transforms_test.json").unlink(), "has no test split"),
    "not a scene": (lambda d: (d / "transforms_train.json").unlink(), "not a Blender-format scene"),
}


@pytest.mark.parametrize("case", BLENDER_CASES)
def test_bad_blender_scene_is_one_line(good: Path, tmp_path: Path, case: str) -> None:
    change, message = BLENDER_CASES[case]
    data = _variant(good, tmp_path / "scene", change)
    with pytest.raises(InputError, match=message) as error:
        check_scene(data, "blender-data")
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match=message):  # what ns-train / ns-eval hit when nerfstudio sets up the parser
        use_checked_parser(BlenderDataParserConfig(data=data)).setup()


def test_good_scene_parses_as_stock_blender_does(good: Path) -> None:
    check_scene(good, "blender-data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = use_checked_parser(BlenderDataParserConfig(data=good)).setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 3


def _nerfstudio_capture(good: Path, where: Path, frames: int = 12) -> Path:
    """The Blender scene's train images as a nerfstudio-data capture (one transforms.json, intrinsics)."""
    shutil.copytree(good, where)
    blender = json.loads((good / "transforms_train.json").read_text())
    focal = 4 / math.tan(blender["camera_angle_x"] / 2)
    listed = [
        {"file_path": f["file_path"][2:] + ".png", "transform_matrix": f["transform_matrix"]} for f in blender["frames"]
    ]
    meta = {"fl_x": focal, "fl_y": focal, "cx": 4, "cy": 4, "w": 8, "h": 8, "frames": (listed * frames)[:frames]}
    (where / "transforms.json").write_text(json.dumps(meta))
    return where


def test_good_capture_passes(good: Path, tmp_path: Path) -> None:
    data = _nerfstudio_capture(good, tmp_path / "capture")
    check_scene(data, "nerfstudio-data")
    check_scene(data / "transforms.json", "nerfstudio-data")  # nerfstudio-data also takes the JSON itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = use_checked_parser(NerfstudioDataParserConfig(data=data)).setup()
        assert len(parser.get_dataparser_outputs("test").image_filenames) == 1


def _changed_capture(good: Path, where: Path, frames: int, changes: dict) -> Path:
    """A capture of ``frames`` images whose transforms.json has ``changes`` (a None value deletes the key)."""
    data = _nerfstudio_capture(good, where, frames)
    meta = {**json.loads((data / "transforms.json").read_text()), **changes}
    (data / "transforms.json").write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))
    return data


NERFSTUDIO_CASES = {  # (images in the capture, transforms.json changes (None deletes), message)
    "no intrinsics": (12, {"fl_x": None}, "has no fl_x"),
    "missing image": (
        12,
        {"frames": [{"file_path": "images/gone.png", "transform_matrix": torch.eye(4).tolist()}]},
        "gone.png",
    ),
    "split lists without test": (12, {"train_filenames": ["train/r_0.png"], "val_filenames": ["x"]}, "no test split"),
    "too few images for a test split": (5, {}, "has no test split: 5 images"),
}


INSTANT_NGP_CASES = {  # (images in the capture, transforms.json changes (None deletes), message)
    "no focal length": (20, {"fl_x": None}, "needs a focal length"),
    "missing image": (
        20,
        {"frames": [{"file_path": "images/0005.jpg", "transform_matrix": torch.eye(4).tolist()}] * 20},
        r"20 missing image file\(s\), e.g. \S*/images/0005.jpg \(nor with .png appended",
    ),  # stock: logged, skipped, training goes on without them; the path named is the one the JSON wrote
    "one-image test split": (12, {}, "would have 1 test image"),
}


def test_good_instant_ngp_capture_passes(good: Path, tmp_path: Path) -> None:
    data = _nerfstudio_capture(good, tmp_path / "capture", frames=20)
    check_scene(data, "instant-ngp-data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = use_checked_parser(InstantNGPDataParserConfig(data=data)).setup()
        assert parser.get_dataparser_outputs("test").cameras.shape == (2,)


CAPTURE_PARSERS = {"nerfstudio-data": (NerfstudioDataParserConfig, NERFSTUDIO_CASES),
                   "instant-ngp-data": (InstantNGPDataParserConfig, INSTANT_NGP_CASES)}  # fmt: skip


@pytest.mark.parametrize(
    ("dataparser", "case"), [(name, case) for name, (_, cases) in CAPTURE_PARSERS.items() for case in cases]
)
def test_bad_capture_is_one_line(good: Path, tmp_path: Path, dataparser: str, case: str) -> None:
    """The check and the swapped-in parser both refuse the capture, in one line."""
    parser_config, cases = CAPTURE_PARSERS[dataparser]
    frames, changes, message = cases[case]
    data = _changed_capture(good, tmp_path / "capture", frames, changes)
    with pytest.raises(InputError, match=message) as error:
        check_scene(data, dataparser)
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match=message):
        use_checked_parser(parser_config(data=data)).setup()


def test_missing_capture_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data directory not found"):
        check_scene(tmp_path / "nowhere", "nerfstudio-data")


def test_unknown_dataparser_is_named(good: Path) -> None:
    with pytest.raises(InputError, match="unknown dataparser 'colmap'"):
        check_scene(good, "colmap")


def test_explicit_blender_data_subcommand_is_checked_too(good: Path, tmp_path: Path) -> None:
    """`ns-train frinr-ngp blender-data --data BAD`: the stock parser would fail deep in imageio; ours says why."""
    data = _variant(good, tmp_path / "scene", lambda d: (d / "train" / "r_1.png").unlink())
    ns_train = Path(sys.executable).with_name("ns-train")
    command = [str(ns_train), "frinr-ngp", "--vis", "tensorboard", "--output-dir", str(tmp_path / "out")]
    command += ["blender-data", "--data", str(data)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("frinr: error:")]
    assert len(errors) == 1 and "missing image file" in errors[0] and "r_1.png" in errors[0]


def test_downscaled_images_must_exist_and_auto_downscale_picks_what_nerfstudio_would(
    good: Path, tmp_path: Path
) -> None:
    """ns-process-data writes images_2/4/8; nerfstudio-data with a factor N reads every image from images_N/."""
    from PIL import Image

    from frinr_nerfstudio.nerfstudio_fixes.datacheck import auto_downscale

    data = _nerfstudio_capture(good, tmp_path / "capture")
    assert auto_downscale(data) == 1  # small images: no downscale
    with pytest.raises(InputError, match=r"missing image file.*downscale 2 reads images_2/") as error:
        check_scene(data, "nerfstudio-data", downscale=2)
    assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="images_2/"):
        use_checked_parser(NerfstudioDataParserConfig(data=data, downscale_factor=2)).setup()
    with pytest.raises(InputError, match="blender-data has no downscale"):
        check_scene(good, "blender-data", downscale=2)

    frames = json.loads((data / "transforms.json").read_text())["frames"]
    first = data / frames[0]["file_path"]
    Image.new("RGB", (3400, 1700)).save(first)  # a phone-sized first image: 3400 px > 1600
    assert auto_downscale(data) == 1  # no images_2/ to read: nerfstudio keeps full resolution
    for factor in (2, 4):
        (data / f"images_{factor}").mkdir()
        for frame in frames:
            Image.new("RGB", (3400 // factor, 1700 // factor)).save(
                data / f"images_{factor}" / Path(frame["file_path"]).name
            )
    assert auto_downscale(data) == 4  # 3400 / 2 > 1600, 3400 / 4 <= 1600
    check_scene(data, "nerfstudio-data", downscale=4)
