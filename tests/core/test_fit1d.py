"""`frinr fit1d` end to end at a tiny budget, its target, its spectral error and the empirical NTK."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from frinr_core.cli import main
from frinr_core.errors import InputError
from frinr_core.mlp import FourierConfig, MLPConfig, build_mlp
from frinr_core.ntk import eigenvalue_shares, empirical_ntk
from frinr_core.tasks.fit1d import Fit1dConfig, relative_errors, run, target_signal
from frinr_core.train import TrainOptions

TINY = MLPConfig(arch="relu", hidden_features=16, hidden_layers=2, fourier=FourierConfig(4, 4, 2, 0.05))


def tiny_config(out, **changes) -> Fit1dConfig:
    train = TrainOptions(
        steps=changes.pop("steps", 30), lr=changes.pop("lr", 1e-3), lr_sweep=changes.pop("sweep", None)
    )
    return Fit1dConfig(out=out, samples=64, network=TINY, train=train, **changes)


def test_default_target_is_the_official_staircase():
    x, y, bins = target_signal((1.5, 2.5, 3.5, 4.5), 300, quantize=True)
    xs = np.linspace(-1, 1, 300)
    official = 2 * np.round(sum(np.sin(k * math.pi * xs) for k in (3, 5, 7, 9)) / 2)
    np.testing.assert_allclose(x[:, 0].numpy(), xs, atol=1e-6)
    np.testing.assert_allclose(y[:, 0].numpy(), official, atol=1e-5)
    assert bins == [3, 5, 7, 9]


def test_a_sinusoid_peaks_at_its_bin_and_errors_are_relative():
    _, y, bins = target_signal((2.5,), 64, quantize=False)
    target = y[:, 0].numpy()
    assert int(np.argmax(np.abs(np.fft.rfft(target)))) == bins[0] == 5
    assert relative_errors(target, target, bins) == [0.0]
    assert relative_errors(np.zeros_like(target), target, bins) == pytest.approx([1.0])
    assert relative_errors(0.5 * target, target, bins) == pytest.approx([0.5])


@pytest.mark.parametrize("freqs", [(1.3,), (0.0,), (40.0,), ()])
def test_frequencies_off_the_fft_grid_are_refused(freqs):
    with pytest.raises(InputError):
        target_signal(freqs, 64, quantize=False)


def test_end_to_end_outputs_are_consistent(tmp_path):
    payload = run(tiny_config(tmp_path, compare=True, ntk_steps=(0, 10, 30)))
    for name in ("metrics.json", "fit.png", "spectral_error.png", "ntk.png", "target.npy", "relu.npy", "relu+fr.npy"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["runs"] == json.loads(json.dumps(payload["runs"]))
    assert [r["name"] for r in saved["runs"]] == ["relu", "relu+fr"]
    x, target = np.load(tmp_path / "target.npy")
    for run_ in saved["runs"]:
        prediction = np.load(tmp_path / run_["prediction"])
        assert prediction.shape == target.shape == (64,)
        # recomputed independently: |FFT(f - y)| / |FFT(y)| at bins 2f
        residual, reference = np.abs(np.fft.fft(prediction - target)), np.abs(np.fft.fft(target))
        expected = {f"{f:g}": residual[round(2 * f)] / reference[round(2 * f)] for f in (1.5, 2.5, 3.5, 4.5)}
        assert run_["rel_error"] == pytest.approx(expected, rel=1e-4)
        assert run_["mse"] == pytest.approx(float(np.mean((prediction - target) ** 2)), rel=1e-5)
        assert [n["step"] for n in run_["ntk"]] == [0, 10, 30]
        for measured in run_["ntk"]:
            assert len(measured["shares"]) == 5 and min(measured["shares"]) >= 0
            assert sum(measured["shares"]) == pytest.approx(1.0)
            assert measured["shares"][0] >= measured["shares"][1] >= measured["shares"][2]
        history = run_["rel_error_history"]
        assert history["steps"][-1] == 30 and len(history["values"]) == len(history["steps"])
        assert history["values"][-1] == pytest.approx(list(run_["rel_error"].values()), rel=1e-4)


def test_training_reduces_the_error_at_every_frequency(tmp_path):
    config = tiny_config(tmp_path, freqs=(0.5, 1.0), quantize=False, steps=150, lr=3e-3, ntk_steps=())
    config.samples = 100
    errors = run(config)["runs"][0]["rel_error_history"]["values"]
    assert all(last < first for first, last in zip(errors[0], errors[-1], strict=True))


def test_lr_sweep_reports_each_arm_at_its_best(tmp_path):
    payload = run(tiny_config(tmp_path, compare=True, sweep="1e-4,3e-3", ntk_steps=(0,)))
    assert len(payload["sweep"]) == 4
    for best in payload["runs"]:
        candidates = [r for r in payload["sweep"] if r["name"] == best["name"]]
        assert {r["lr"] for r in candidates} == {1e-4, 3e-3}
        assert best["mse"] == min(r["mse"] for r in candidates)
        assert best["lr"] == min(candidates, key=lambda r: r["mse"])["lr"]
        for candidate in candidates:
            assert (tmp_path / candidate["prediction"]).is_file()


@pytest.mark.parametrize("arch", ["relu", "siren"])
def test_empirical_ntk_matches_a_per_sample_jacobian(arch):
    torch.manual_seed(0)
    model = build_mlp(1, 1, MLPConfig(arch=arch, hidden_features=8, hidden_layers=1, fr=True, fourier=TINY.fourier))
    x = torch.linspace(-1, 1, 7)[:, None]
    rows = []
    for point in x:
        model.zero_grad()
        model(point[None]).sum().backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    jacobian = torch.stack(rows).double()  # (7, P)
    torch.testing.assert_close(empirical_ntk(model, x, chunk=3), jacobian @ jacobian.T, rtol=1e-5, atol=1e-8)


def test_eigenvalue_shares_of_a_known_spectrum():
    kernel = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 5.0], dtype=torch.float64))
    assert eigenvalue_shares(kernel) == pytest.approx([0.25, 0.25, 0.2, 0.15, 0.15])


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["fit1d", "--freqs", "1.3", "--out", str(tmp_path)]) == 2
    assert main(["fit1d", "--steps", "5", "--ntk-steps", "9", "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "1.3" in lines[0] and "--ntk-steps" in lines[1]
