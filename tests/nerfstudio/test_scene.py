"""`frinr make-scene`: a Blender-format scene nerfstudio reads with the conventions of NeRF-synthetic."""

from __future__ import annotations

import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

from frinr_core.cli import main
from frinr_core.errors import InputError
from frinr_nerfstudio.tools import scene

VIEWS = {"train": 4, "val": 2, "test": 3}


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scene")
    return scene.make_scene(out, size=24, n_train=VIEWS["train"], n_val=VIEWS["val"], n_test=VIEWS["test"])


def _outputs(data: Path, split: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BlenderDataParserConfig(data=data).setup().get_dataparser_outputs(split)


def test_blender_parser_reads_every_split(made: Path) -> None:
    for split, count in VIEWS.items():
        outputs = _outputs(made, split)
        assert len(outputs.image_filenames) == count
        assert all(path.is_file() for path in outputs.image_filenames)
        assert outputs.cameras.width[0].item() == 24
        torch.testing.assert_close(outputs.cameras.camera_to_worlds[:, :, 3].norm(dim=-1), torch.full((count,), 4.0))


def test_images_are_rgba_with_a_transparent_background(made: Path) -> None:
    image = iio.imread(made / "train" / "r_0.png")
    assert image.shape == (24, 24, 4) and image.dtype == np.uint8
    alpha = image[..., 3]
    assert alpha[0, 0] == 0 and alpha[-1, -1] == 0  # corners: background
    assert 0.1 < (alpha == 255).mean() < 0.9  # objects cover part of the frame
    assert ((alpha > 0) & (alpha < 255)).any()  # anti-aliased edges


def test_nerfstudio_rays_see_what_the_png_shows_inside_the_scene_box(made: Path) -> None:
    """Cast nerfstudio's own rays (pixel centres, OpenGL poses) into the scene: coverage matches the PNG's
    alpha (an upside-down or shifted convention would not), and every surface hit lies in [-1.5, 1.5]³."""
    outputs = _outputs(made, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rays = outputs.cameras.generate_rays(camera_indices=1)  # (H, W) bundle
    origins = rays.origins.reshape(-1, 3).double().numpy()
    directions = rays.directions.reshape(-1, 3).double().numpy()
    t, _, _ = scene._cast(origins, directions)
    hit = np.isfinite(t).reshape(24, 24)
    alpha = iio.imread(outputs.image_filenames[1])[..., 3] / 255
    assert np.mean(hit == (alpha > 0.5)) > 0.97
    assert np.mean(hit == (alpha[::-1] > 0.5)) < 0.9
    points = origins[hit.ravel()] + t[hit.ravel(), None] * directions[hit.ravel()]
    assert np.abs(points).max() < 1.5


def test_same_seed_same_scene_other_seed_other_cameras(made: Path, tmp_path: Path) -> None:
    again = scene.make_scene(tmp_path / "again", size=24, n_train=4, n_val=2, n_test=3)
    assert (again / "transforms_train.json").read_text() == (made / "transforms_train.json").read_text()
    np.testing.assert_array_equal(iio.imread(again / "val" / "r_1.png"), iio.imread(made / "val" / "r_1.png"))
    other = scene.make_scene(tmp_path / "other", size=8, n_train=4, n_val=1, n_test=1, seed=1)
    assert (other / "transforms_train.json").read_text() != (made / "transforms_train.json").read_text()


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"size": 4}, "--size"), ({"n_test": 0}, "--n-test"), ({"n_train": -1}, "--n-train")],
)
def test_impossible_settings_are_input_errors(tmp_path: Path, settings: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        scene.make_scene(tmp_path, **settings)


def test_frinr_make_scene_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli"
    assert main(["make-scene", "--out", str(out), "--size", "8", "--n-train", "2", "--n-val", "1"]) == 0
    assert len(list((out / "train").glob("r_*.png"))) == 2 and (out / "test" / "r_4.png").is_file()
    assert main(["make-scene", "--out", str(out), "--n-val", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "frinr make-scene: error: --n-val must be at least 1 view, got 0"
    ]
