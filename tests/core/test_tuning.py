"""Fair comparisons: the successive-halving search on known objectives, and each runner's tuned comparison."""

from __future__ import annotations

import json
import math

import pytest

from frinr_core import presets
from frinr_core.cli import main, parse
from frinr_core.errors import InputError
from frinr_core.mlp import FourierConfig, MLPConfig
from frinr_core.runner import run
from frinr_core.tasks.fit1d import Fit1d, Fit1dConfig
from frinr_core.tasks.fit2d import Fit2dConfig
from frinr_core.train import Arm, Diverged, TrainOptions
from frinr_core.tuning import MAX_ADDED, ladder, ladder_index, tune

ARM = Arm("relu", MLPConfig())


def objective(
    peak: float,
    diverges_above: float = math.inf,
    final_diverges_above: float = math.inf,
    collapses_above: float = math.inf,
):
    """A PSNR-like score, best at ``peak`` and falling with the log distance; diverges above a rate; above
    ``collapses_above`` a full-length run ends 20 dB worse than the shorter trials promised (no NaN)."""
    calls: list[tuple[float, int]] = []

    def score(lr: float) -> float:
        return 30 - 5 * abs(math.log10(lr / peak))

    def trial(lr: float, steps: int, bar) -> float:
        calls.append((lr, steps))
        if lr > diverges_above:
            raise Diverged(f"loss is nan at lr {lr}")
        return score(lr)

    def final(lr: float) -> dict:
        if lr > final_diverges_above:
            raise Diverged(f"loss is nan at lr {lr}")
        calls.append((lr, 100))
        return {"name": "relu", "lr": lr, "psnr": score(lr) - (20 if lr > collapses_above else 0), "seconds": 0.0}

    return trial, final, calls


def search(peak: float, **kwargs) -> tuple[dict, list]:
    trial, final, calls = objective(peak, **kwargs)
    return tune(ARM, trial, final, default=1e-3, steps=100, metric="psnr", higher=True), calls


def test_the_ladder():
    assert [ladder(i) for i in range(-7, -3)] == [3e-4, 1e-3, 3e-3, 1e-2]
    assert ladder_index(1e-3) == -6 and ladder_index(5e-3) == -5 and ladder_index(2e-4) == -7


def test_halving_budgets_and_cost():
    record, calls = search(3e-3)
    assert record["lr"] == 3e-3
    grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    assert calls == [(lr, 10) for lr in grid] + [(3e-3, 25), (1e-3, 25), (3e-3, 100)]  # the best two continue
    found = record["search"]
    assert found["rates"] == grid and found["added"] == 0 and not found["at_edge"]
    assert [(t["stage"], t["lr"], t["steps"]) for t in found["trials"]] == [(1, lr, s) for lr, s in calls[:5]] + [
        (2, lr, s) for lr, s in calls[5:7]
    ]
    assert found["steps"] == 5 * 10 + 2 * 25  # with the 100-step run itself: 2 full runs


def test_a_diverging_rate_is_dropped_and_bounds_the_grid():
    record, calls = search(1e-2, diverges_above=5e-3)
    assert record["lr"] == 3e-3 and math.isfinite(record["psnr"])
    diverged = [t for t in record["search"]["trials"] if t.get("diverged")]
    assert [(t["lr"], t["psnr"]) for t in diverged] == [(1e-2, None)]
    assert (1e-2, 25) not in calls  # never promoted
    assert record["search"]["added"] == 0  # the diverged rate above is the bound: no extension past it


def test_a_best_rate_at_the_top_extends_the_grid_upward():
    record, calls = search(5e-2)
    found = record["search"]
    assert found["rates"] == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
    assert record["lr"] == 3e-2 and found["added"] == 2 and not found["at_edge"]
    assert (1e-1, 10) in calls and (3e-2, 25) in calls


def test_extensions_are_bounded_and_an_edge_is_said():
    record, _ = search(10.0)
    found = record["search"]
    assert found["added"] == MAX_ADDED and found["rates"][-1] == 3e-1 and record["lr"] == 3e-1
    assert found["at_edge"]


def test_a_final_run_that_diverges_hands_over_to_the_next_rate():
    record, _ = search(3e-3, final_diverges_above=2e-3)
    assert record["lr"] == 1e-3
    assert {"stage": "full", "lr": 3e-3, "steps": 100, "psnr": None, "diverged": True} in record["search"]["trials"]


def test_a_winner_that_collapses_at_full_length_yields_to_the_runner_up():
    record, calls = search(3e-3, collapses_above=2e-3)
    assert calls[-2:] == [(3e-3, 100), (1e-3, 100)]  # the winner's full run, then the stage-2 runner-up's
    assert record["lr"] == 1e-3 and record["psnr"] == pytest.approx(30 - 5 * math.log10(3))
    assert {"stage": "full", "lr": 3e-3, "steps": 100, "psnr": pytest.approx(10.0)} in record["search"]["trials"]
    assert record["search"]["steps"] == 5 * 10 + 2 * 25 + 100  # the discarded full run is part of the cost


def test_a_collapsing_runner_up_leaves_the_winner_reported():
    record, calls = search(3e-3, collapses_above=5e-4)  # both finalists collapse; 3e-3 still ends ahead
    assert record["lr"] == 3e-3 and calls[-2:] == [(3e-3, 100), (1e-3, 100)]
    assert [t["lr"] for t in record["search"]["trials"] if t["stage"] == "full"] == [1e-3]


def test_when_every_rate_diverges_the_grid_extends_down_then_gives_up():
    with pytest.raises(InputError, match="every learning rate diverged for relu"):
        search(1e-3, diverges_above=0.0)
    record, _ = search(1e-5, diverges_above=2e-5)  # stable only from two rungs below the grid
    assert record["lr"] == 1e-5 and record["search"]["rates"][:3] == [3e-6, 1e-5, 3e-5]
    assert record["search"]["added"] == MAX_ADDED and not record["search"]["at_edge"]


# --- end to end --------------------------------------------------------------------------------------------------

TINY = ["--hidden-features", "16", "--hidden-layers", "2", "--low-freqs", "4", "--high-freqs", "4", "--phases", "2"]


def test_compare_tunes_each_arm_and_states_the_verdict(tmp_path, capsys):
    out = tmp_path / "tuned"
    assert main(["fit2d", "--compare", "--arch", "pe", "--size", "16", "--steps", "30", "--out", str(out), *TINY]) == 0
    payload = json.loads((out / "metrics.json").read_text())
    base, fr = payload["runs"]
    for arm in (base, fr):
        found = arm["search"]
        assert found["rates"][:5] == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]  # centred on fit2d's default 1e-3
        stage2 = {t["lr"]: t["psnr"] for t in found["trials"] if t["stage"] == 2}
        assert len(stage2) == 2 and arm["lr"] == max(stage2, key=stage2.get)
        assert {t["steps"] for t in found["trials"]} == {3, 8}  # a tenth and a quarter of 30
        assert not found["at_edge"] and math.isfinite(arm["psnr"])
        assert (out / arm["reconstruction"]).is_file() and arm["steps"] == 30
    comparison = payload["comparison"]
    assert comparison["rates"] == "tuned" and comparison["higher_is_better"]
    assert comparison["difference"] == pytest.approx(fr["psnr"] - base["psnr"])
    assert comparison["steps"] == 2 * 30 + base["search"]["steps"] + fr["search"]["steps"]
    verdict = f"FR − baseline: {fr['psnr'] - base['psnr']:+.2f} dB PSNR (higher is better; each arm at its tuned rate)"
    assert comparison["verdict"] == verdict
    printed = capsys.readouterr().out
    assert verdict in printed and "learning-rate search" in printed


def test_a_given_rate_is_shared_and_said_so(tmp_path):
    out = tmp_path / "shared"
    args = ["fit2d", "--compare", "--size", "12", "--steps", "6", "--lr", "3e-3", "--out", str(out), *TINY]
    assert main(args) == 0
    payload = json.loads((out / "metrics.json").read_text())
    assert all("search" not in r and r["lr"] == 3e-3 for r in payload["runs"])
    assert payload["comparison"]["rates"] == "shared" and payload["comparison"]["steps"] == 12
    assert "(higher is better; both arms shared one rate, 0.003, not tuned per arm)" in payload["comparison"]["verdict"]


def test_a_preset_rate_is_fixed_and_the_paper_presets_fix_theirs(tmp_path):
    preset = tmp_path / "fixed.yaml"
    preset.write_text("description: d\ntask: fit2d\nsettings:\n  compare: true\n  train: {steps: 4, lr: 1.0e-3}\n")
    out = tmp_path / "preset"
    assert main(["fit2d", "--config", str(preset), "--size", "8", "--out", str(out), *TINY]) == 0
    assert json.loads((out / "metrics.json").read_text())["comparison"]["rates"] == "shared"
    paper = {p.name: p.settings["train"] for p in presets.all_presets() if p.name.endswith("-paper")}
    assert len(paper) == 7 and all(train["lr"] > 0 for train in paper.values())
    assert parse(Fit2dConfig, "fit2d", ["--preset", "fit2d-pe-paper", "--lr", "None"]).train.lr is None  # tune again


class LowCentre(Fit1d):
    default_lr = 1e-7  # a grid (1e-8 … 1e-6) far below where this network learns


def test_a_deliberately_low_grid_extends_upward_to_its_limit(tmp_path, capsys):
    network = MLPConfig(arch="relu", hidden_features=16, hidden_layers=1, fourier=FourierConfig(4, 4, 2, 0.05))
    config = Fit1dConfig(out=tmp_path, samples=32, freqs=(1.0,), quantize=False, compare=True, ntk_steps=(),
                         network=network, train=TrainOptions(steps=20))  # fmt: skip
    payload = run(LowCentre(config))
    for arm in payload["runs"]:
        rates = arm["search"]["rates"]
        assert rates == [1e-8, 3e-8, 1e-7, 3e-7, 1e-6] + [3e-6, 1e-5, 3e-5]  # three added, all upward
        assert arm["search"]["added"] == MAX_ADDED and arm["lr"] == 3e-5 and arm["search"]["at_edge"]
    printed = capsys.readouterr().out
    assert "is still the edge of the search after 3 added rates" in printed
    assert "(lower is better; each arm at its tuned rate)" in payload["comparison"]["verdict"]
