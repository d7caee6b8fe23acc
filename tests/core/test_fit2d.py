"""`frinr fit2d` end to end on a tiny image, image loading, and every bad-input case."""

import json
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from frinr_core import metrics
from frinr_core.cli import main
from frinr_core.io import load_image

TINY = ["--hidden-features", "32", "--hidden-layers", "2", "--low-freqs", "8", "--high-freqs", "8", "--phases", "4"]


def test_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["fit2d", "--compare", "--arch", "pe", "--size", "24", "--steps", "60", "--lr", "3e-3",
                 "--out", str(out), *TINY])  # fmt: skip
    assert code == 0
    payload = json.loads((out / "metrics.json").read_text())
    runs = payload["runs"]
    assert [(r["name"], r["fr"]) for r in runs] == [("pe", False), ("pe+fr", True)]
    target = torch.from_numpy(iio.imread(out / "target.png")).float() / 255
    assert target.shape == (24, 24, 3)
    for run in runs:
        assert run["steps"] == 60 and run["seconds"] > 0 and run["params"] > 0
        saved = torch.from_numpy(iio.imread(out / run["reconstruction"])).float() / 255
        assert run["psnr"] == pytest.approx(metrics.psnr(saved, target), abs=1e-4)
        assert run["ssim"] == pytest.approx(metrics.ssim(saved, target), abs=1e-4)
        assert run["psnr"] > 14  # a constant grey image scores ~11 dB on the astronaut
        assert run["curve"][-1][0] == 60
    fr_params = runs[1]["params"]
    assert fr_params > runs[0]["params"]  # FR trains coefficients: (L+H)·P per output instead of in
    for name in ("psnr_curve.png", "compare.png", "target.png"):
        assert (out / name).stat().st_size > 0
    table = capsys.readouterr().out
    assert "| pe+fr |" in table and "| pe |" in table


def test_same_seed_same_result(tmp_path):
    results = []
    for name in ("a", "b"):
        assert main(["fit2d", "--size", "16", "--steps", "15", "--out", str(tmp_path / name), *TINY]) == 0
        results.append(iio.imread(tmp_path / name / "relu+fr.png"))
    np.testing.assert_array_equal(*results)


def test_lr_sweep_reports_each_arm_at_its_best(tmp_path):
    out = tmp_path / "sweep"
    assert main(["fit2d", "--compare", "--size", "16", "--steps", "20", "--lr-sweep", "1e-5,3e-3",
                 "--out", str(out), *TINY]) == 0  # fmt: skip
    payload = json.loads((out / "metrics.json").read_text())
    assert len(payload["sweep"]) == 4
    for run in payload["runs"]:
        grid = [g for g in payload["sweep"] if g["name"] == run["name"]]
        assert run["psnr"] == max(g["psnr"] for g in grid)
        assert (out / run["reconstruction"]).exists()


def test_preset_sets_defaults_and_flags_override(tmp_path):
    preset = tmp_path / "mine.yaml"
    preset.write_text("description: test\ntask: fit2d\nsettings:\n  network: {arch: siren, hidden_features: 16}\n"
                      "  train: {steps: 7, lr: 1.0e-3}\n")  # fmt: skip
    out = tmp_path / "p"
    assert main(["fit2d", "--config", str(preset), "--steps", "5", "--size", "12", "--out", str(out), *TINY[2:]]) == 0
    (run,) = json.loads((out / "metrics.json").read_text())["runs"]
    assert (run["arch"], run["steps"], run["lr"]) == ("siren", 5, 1e-3)


def write(path, pixels):
    iio.imwrite(path, pixels)
    return path


def write_empty_tiff(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size image is nonconformant: that is the point
        tifffile.imwrite(path, np.zeros((0, 5, 3), np.uint8))
    return path


def test_image_formats(tmp_path):
    gray = load_image(write(tmp_path / "g.png", np.full((4, 6), 128, np.uint8)))
    assert gray.shape == (4, 6, 1) and gray[0, 0, 0].item() == pytest.approx(128 / 255)
    deep = load_image(write(tmp_path / "d.tiff", np.full((4, 6, 3), 65535, np.uint16)))
    assert deep.shape == (4, 6, 3) and deep.max().item() == pytest.approx(1.0)
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 0  # fully transparent red composites to white
    rgba[0, 0, 3] = 255  # one opaque red pixel stays red
    composited = load_image(write(tmp_path / "a.png", rgba))
    torch.testing.assert_close(composited[1, 1], torch.ones(3))
    torch.testing.assert_close(composited[0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert load_image(write(tmp_path / "t.tiff", np.zeros((8, 20, 3), np.uint8)), size=10).shape == (4, 10, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: ["--image", str(d / "missing.png")], "not found"),
        (lambda d: ["--image", str(d)], "directory"),
        (lambda d: ["--image", str((d / "junk.png").write_text("not an image") and d / "junk.png")], "cannot read"),
        (lambda d: ["--image", str(write_empty_tiff(d / "empty.tiff"))], "zero size"),
        (lambda d: ["--size", "0"], "--size"),
        (lambda d: ["--batch", "0"], "--batch"),
        (lambda d: ["--steps", "0"], "--steps"),
        (lambda d: ["--lr-sweep", "1e-3,abc"], "--lr-sweep"),
        (lambda d: ["--phases", "0"], "phases"),
        (lambda d: ["--preset", "no-such-preset"], "unknown preset"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, make, message):
    args = make(tmp_path)
    code = main(["fit2d", "--size", "8", "--steps", "1", "--out", str(tmp_path / "o"), *TINY, *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
