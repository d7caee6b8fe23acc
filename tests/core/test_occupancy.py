"""`frinr occupancy`: the three input kinds, their errors, the memory refusal and a tiny end-to-end run."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import trimesh

from frinr_core import volumes
from frinr_core.cli import main
from frinr_core.errors import InputError
from frinr_core.mlp import FourierConfig, MLPConfig
from frinr_core.tasks.occupancy import OccupancyConfig, iou, run
from frinr_core.train import TrainOptions

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "occupancy"
TINY = MLPConfig(arch="siren", hidden_features=16, hidden_layers=1, fourier=FourierConfig(4, 4, 2, 0.001))


def tiny_config(out: Path, **changes) -> OccupancyConfig:
    train = TrainOptions(steps=changes.pop("steps", 15), lr=5e-3, lr_decay=0.2, lr_sweep=changes.pop("sweep", None))
    return OccupancyConfig(out=out, resolution=16, batch=2048, network=TINY, train=train, **changes)


def box_volume() -> np.ndarray:
    """A 40³ uint8 volume, 0/200, with an occupied 10×20×30 box at a known place and a below-half speck."""
    volume = np.zeros((40, 40, 40), dtype=np.uint8)
    volume[5:15, 10:30, 4:34] = 200
    volume[30, 30, 30] = 90  # under half the maximum: not occupied, so not part of the bounding box
    return volume


def test_volume_formats_agree_and_crop_to_the_box(tmp_path):
    volume = box_volume()
    np.save(tmp_path / "v.npy", volume)
    scipy.io.savemat(tmp_path / "v.mat", {"hypercube": volume, "other": np.ones(3)})
    with zipfile.ZipFile(tmp_path / "v.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(tmp_path / "v.mat", "inner/v.mat")
    grids = [volumes.load_volume(tmp_path / name, "hypercube", 64).grid for name in ("v.npy", "v.mat", "v.zip")]
    for grid in grids:
        assert grid.dtype == bool and grid.shape == (10, 20, 30) and grid.all()


def test_volume_is_subsampled_to_the_resolution(tmp_path):
    volume = np.zeros((64, 64, 64), dtype=np.float32)
    volume[:, :32, :] = 1.0
    volume[10:20, 40:50, 0:5] = 1.0
    grid = volumes.binarize_and_crop(volume, 16, "test").grid
    assert grid.shape == (16, 13, 16)  # box 64×50×64 scaled by 1/4
    assert grid[:, :8].all() and not grid[:, 9:12, 8:].any()


def test_mat_key_and_archive_errors(tmp_path):
    scipy.io.savemat(tmp_path / "v.mat", {"volume": box_volume()})
    with pytest.raises(InputError, match="no variable 'hypercube'.*volume"):
        volumes.load_volume(tmp_path / "v.mat", "hypercube", 16)
    assert volumes.load_volume(tmp_path / "v.mat", "volume", 16).grid.any()
    with zipfile.ZipFile(tmp_path / "none.zip", "w") as archive:
        archive.writestr("readme.txt", "no volume here")
    with pytest.raises(InputError, match="exactly one .mat"):
        volumes.load_volume(tmp_path / "none.zip", "hypercube", 16)
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a valid zip"):
        volumes.load_volume(tmp_path / "broken.zip", "hypercube", 16)
    (tmp_path / "broken.mat").write_bytes(b"garbage" * 20)
    with pytest.raises(InputError, match="cannot read"):
        volumes.load_volume(tmp_path / "broken.mat", "hypercube", 16)


@pytest.mark.parametrize(
    ("values", "message"),
    [(np.zeros((4, 4, 4)), "empty"), (np.full((4, 4, 4), np.nan), "NaN"), (np.ones((4, 4)), "3D")],
)
def test_bad_volumes_are_refused(tmp_path, values, message):
    np.save(tmp_path / "v.npy", values)
    with pytest.raises(InputError, match=message):
        volumes.load_volume(tmp_path / "v.npy", "hypercube", 16)


def test_watertight_and_holed_meshes_fill_alike(tmp_path):
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    box.export(tmp_path / "box.stl")
    side = box.face_normals[:, 0] < -0.5  # the two triangles of the x = -1 side
    holed = trimesh.Trimesh(box.vertices, box.faces[~side], process=False)
    assert not holed.is_watertight
    holed.export(tmp_path / "holed.obj")
    closed = volumes.load_mesh(tmp_path / "box.stl", 16).grid
    assert closed.shape == (16, 8, 4) and closed.all()
    np.testing.assert_array_equal(volumes.load_mesh(tmp_path / "holed.obj", 16).grid, closed)


def test_open_and_empty_meshes_are_refused(tmp_path):
    sheet = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [1, 1, 0.2], [0, 1, 0.2]], [[0, 1, 2], [0, 2, 3]])
    sheet.export(tmp_path / "sheet.ply")
    with pytest.raises(InputError, match="encloses no volume"):
        volumes.load_mesh(tmp_path / "sheet.ply", 16)
    (tmp_path / "empty.obj").write_text("# nothing\n")
    with pytest.raises(InputError, match="no triangles"):
        volumes.load_mesh(tmp_path / "empty.obj", 16)


def test_memory_refusal_comes_before_loading(tmp_path):
    config = tiny_config(tmp_path, volume=tmp_path / "missing.npy")
    config.resolution = 100_000
    with pytest.raises(InputError, match=r"--resolution 100000 needs about .* GiB"):
        run(config)


def test_built_in_shape_end_to_end(tmp_path):
    payload = run(tiny_config(tmp_path, compare=True))
    for name in ("metrics.json", "compare.png", "iou_curve.png", "target.npz", "target.ply", "siren.npz"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["runs"] == json.loads(json.dumps(payload["runs"]))
    target = np.load(tmp_path / "target.npz")["occupancy"]
    assert list(target.shape) == saved["grid"] and max(target.shape) <= 16 and target.sum() == saved["occupied"]
    for run_ in saved["runs"]:
        predicted = np.load(tmp_path / run_["occupancy"])["occupancy"]
        union = np.logical_or(predicted, target).sum()
        assert run_["iou"] == pytest.approx(np.logical_and(predicted, target).sum() / union)
        assert 0 <= run_["iou_heldout"] <= 1
    assert saved["held_out"]["points"] == np.prod(np.array(target.shape) - 1)  # every cell centre of a small grid
    assert saved["comparison"]["verdict"].startswith(
        f"FR − baseline: {saved['runs'][1]['iou'] - saved['runs'][0]['iou']:+.4f} IoU (higher is better; both arms"
    )
    # The target mesh sits where the grid says: voxel centres inside it are exactly the occupied voxels.
    mesh = trimesh.load(tmp_path / "target.ply", force="mesh")
    assert mesh.is_watertight and np.abs(mesh.vertices).max() <= 1 + 2 / 15
    centres = np.stack(np.meshgrid(*volumes.coordinates(target.shape), indexing="ij"), -1).reshape(-1, 3)
    assert (mesh.contains(centres).reshape(target.shape) == target).mean() > 0.99


def test_mesh_input_end_to_end(tmp_path):
    trimesh.creation.icosphere(subdivisions=2).export(tmp_path / "sphere.obj")
    payload = run(tiny_config(tmp_path / "out", mesh=tmp_path / "sphere.obj", steps=40))
    assert payload["source"].endswith("sphere.obj") and payload["grid"] == [16, 16, 16]
    assert 0.3 < payload["occupied"] / 16**3 < 0.6  # a ball fills π/6 ≈ 0.52 of its box
    assert 0 <= payload["runs"][0]["iou"] <= 1


def test_lr_sweep_reports_each_arm_at_its_best(tmp_path):
    payload = run(tiny_config(tmp_path, compare=True, sweep="1e-4,5e-3"))
    assert len(payload["sweep"]) == 4
    for best in payload["runs"]:
        candidates = [r for r in payload["sweep"] if r["name"] == best["name"]]
        assert best["iou"] == max(r["iou"] for r in candidates)


def lattice(shape: tuple[int, ...]) -> np.ndarray:
    """Every voxel centre of ``shape`` as (N, 3) grid coordinates, row-major like the grid."""
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3).astype(float)


def test_every_source_agrees_with_its_grid_at_the_voxel_centres(tmp_path):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).random((50, 40, 30)))  # subsampled 1/2.5 at 20
    trimesh.creation.icosphere(subdivisions=2).export(tmp_path / "sphere.obj")
    sources = [
        volumes.load_volume(tmp_path / "v.npy", "hypercube", 20),
        volumes.load_mesh(tmp_path / "sphere.obj", 12),
        volumes.procedural_shape(20),
    ]
    for target in sources:
        np.testing.assert_array_equal(target.inside(lattice(target.grid.shape)).reshape(target.grid.shape), target.grid)


def stripes() -> np.ndarray:
    """64³: occupied where x mod 4 is 2 or 3 (and on the two end planes, so the box spans all 64)."""
    volume = np.zeros((64, 64, 64), dtype=np.uint8)
    volume[(np.arange(64) % 4 >= 2) | np.isin(np.arange(64), (0, 63))] = 1
    return volume


def test_held_out_points_see_what_the_subsampling_skipped(tmp_path):
    target = volumes.binarize_and_crop(stripes(), 16, "stripes")
    assert target.grid.shape == (16, 16, 16) and target.grid.all()  # every sample falls on a stripe (x = 4i + 2)
    points = volumes.held_out_points(target.grid.shape, 1000, seed=0)
    assert points.shape == (1000, 3) and len(np.unique(points, axis=0)) == 1000
    assert np.all(points % 1 == 0.5) and points.min() >= 0.5 and points.max() <= 14.5
    assert not target.inside(points).any()  # halfway between samples: x = 4i + 4, between the stripes
    unit = volumes.to_unit(np.array([[0.0, 7.5, 15.0]]), (16, 16, 16))
    np.testing.assert_allclose(unit, [[-1.0, 0.0, 1.0]])


def test_a_perfect_grid_iou_can_hide_a_held_out_failure(tmp_path):
    np.save(tmp_path / "stripes.npy", stripes())
    payload = run(tiny_config(tmp_path / "out", volume=tmp_path / "stripes.npy", steps=40))
    assert payload["held_out"] == {"points": 15**3, "occupied": 0, "iou_interpolated_target": 0.0}
    (result,) = payload["runs"]
    assert result["iou"] == 1.0 and result["iou_heldout"] == 0.0  # all occupied on the grid, nothing between


def test_iou():
    a = np.array([True, True, False, False])
    assert iou(a, np.array([True, False, True, False])) == pytest.approx(1 / 3)
    assert iou(a, a) == 1.0


def test_cli_input_errors_are_one_line(tmp_path, capsys):
    assert main(["occupancy", "--volume", str(tmp_path / "missing.npy"), "--out", str(tmp_path)]) == 2
    assert main(["occupancy", "--volume", "a.npy", "--mesh", "b.obj", "--out", str(tmp_path)]) == 2
    assert main(["occupancy", "--batch", "600000", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and "not found" in lines[0] and "not both" in lines[1] and "500000" in lines[2]


@pytest.mark.skipif(not DATA.is_dir(), reason="shared occupancy data not present")
def test_shared_data_loads():
    dragon = volumes.load_volume(DATA / "dragon.mat.zip", "hypercube", 32).grid
    assert max(dragon.shape) == 32 and 0.05 < dragon.mean() < 0.6
    bunny = volumes.load_mesh(DATA / "bunny.obj", 32).grid  # not watertight: four holes in its base
    assert max(bunny.shape) == 32 and 0.15 < bunny.mean() < 0.6
