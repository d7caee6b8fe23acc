"""`frinr compare`: does FR beat its baseline on your scene? Same data, seed and budget for every method.

Each method trains in its own process (:mod:`frinr_nerfstudio.budgeted`), so one failure stays one
failed row; finished runs are kept in ``OUT/<method>/result.json`` and skipped when the command is run
again with the same ``--out`` and budget. Then: ``summary.json``, ``summary.md``, ``psnr.png`` (learning
curves against step and time) and ``views.png`` (the same test views across methods, with ground truth).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
from rich.console import Console

from frinr_core import io, plots
from frinr_core.cli import Command
from frinr_core.errors import InputError

COLUMNS = ["method", "status", "psnr", "ssim", "lpips", "train_seconds", "train_rays_per_second",
           "peak_memory_mb", "memory", "params", "steps", "checkpoint"]  # fmt: skip


@dataclass
class CompareConfig:
    """Train nerfstudio methods with the same data, seed and budget; evaluate each on the test split."""

    methods: tuple[str, ...] = ("frinr-ngp", "frinr-ngp-baseline")
    """Any registered nerfstudio methods (ours, nerfacto, tensorf, ...)."""
    data: Path | None = None
    """The scene directory."""
    dataparser: str | None = None
    """nerfstudio dataparser; default: blender-data for transforms_train.json, else nerfstudio-data."""
    steps: int | None = None
    """Step budget per method."""
    minutes: float | None = None
    """Wall-clock training budget per method (evaluation not counted)."""
    seed: int = 42
    rays_per_batch: int | None = None
    """Training rays per batch for every method (default: each method's own). Methods with a dynamic batch
    (frinr-ngp, instant-ngp: a target number of samples per step) only start from it."""
    views: int = 3
    """Test views shown side by side in views.png."""
    out: Path = Path("outputs/compare")


def _validate(config: CompareConfig) -> str:
    if config.data is None:
        raise InputError("--data is required: the scene directory to train on")
    if not config.data.is_dir():
        raise InputError(f"data directory not found: {config.data}")
    if (config.steps is None) == (config.minutes is None):
        raise InputError("give exactly one budget: --steps N or --minutes M")
    if (config.steps is not None and config.steps < 1) or (config.minutes is not None and not config.minutes > 0):
        raise InputError("the budget must be positive")
    if not config.methods or len(set(config.methods)) != len(config.methods):
        raise InputError(f"--methods must name distinct methods, got {list(config.methods)}")
    if config.dataparser:
        return config.dataparser
    return "blender-data" if (config.data / "transforms_train.json").exists() else "nerfstudio-data"


def _budget(config: CompareConfig) -> dict:
    return {"steps": config.steps, "minutes": config.minutes, "seed": config.seed, "data": str(config.data.resolve()),
            "rays_per_batch": config.rays_per_batch}  # fmt: skip


def run_method(config: CompareConfig, method: str, dataparser: str) -> dict:
    """Train and evaluate ``method`` in a child process, or reuse its finished result for the same budget."""
    out = config.out / method
    result_path, budget_path = out / "result.json", out / "budget.json"
    if result_path.exists() and budget_path.exists():
        previous = json.loads(result_path.read_text())
        if previous.get("status") == "ok" and json.loads(budget_path.read_text()) == _budget(config):
            Console().print(f"[dim]{method}: finished earlier, kept ({result_path})[/dim]")
            return previous
    out.mkdir(parents=True, exist_ok=True)
    budget_path.write_text(json.dumps(_budget(config)))
    command = [sys.executable, "-m", "frinr_nerfstudio.budgeted", "--method", method, "--data", str(config.data),
               "--dataparser", dataparser, "--seed", str(config.seed), "--out", str(out)]  # fmt: skip
    command += ["--steps", str(config.steps)] if config.steps else ["--minutes", str(config.minutes)]
    if config.rays_per_batch:
        command += ["--rays-per-batch", str(config.rays_per_batch)]
    Console().print(f"[bold]{method}[/bold]: training ({out / 'train.log'})")
    with (out / "train.log").open("w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if not result_path.exists():
        return {"method": method, "status": "failed", "error": f"the run died without a result; see {out}/train.log"}
    return json.loads(result_path.read_text())


def run(config: CompareConfig) -> list[dict]:
    dataparser = _validate(config)
    config.out.mkdir(parents=True, exist_ok=True)
    results = [run_method(config, method, dataparser) for method in config.methods]
    rows = [{k: v for k, v in r.items() if k != "curve"} for r in results]
    io.write_json(config.out / "summary.json", {"budget": _budget(config), "dataparser": dataparser, "runs": rows})
    table = io.markdown_table(rows, COLUMNS)
    failures = "\n".join(f"- {r['method']}: {r['error']}" for r in results if r["status"] != "ok")
    (config.out / "summary.md").write_text(f"{table}\n\n{failures}\n" if failures else table + "\n")
    finished = [r for r in results if r["status"] == "ok"]
    if finished:
        by_step = {r["method"]: [(s, p) for s, _, p in r["curve"]] for r in finished}
        by_time = {r["method"]: [(t, p) for _, t, p in r["curve"]] for r in finished}
        label = "train-batch PSNR (dB)"
        plots.curve_panels(config.out / "psnr.png", [("step", label, by_step), ("train seconds", label, by_time)])
        _plot_views(config.out / "views.png", config.out, finished, config.views)
    Console().print(table + ("\n" + failures if failures else ""))
    return results


def _plot_views(path: Path, out: Path, runs: list[dict], count: int) -> None:
    """Ground truth and each method's render of the first test views (nerfstudio's eval_img_*: GT | render)."""
    grid = []
    for index in range(count):
        files = [out / r["method"] / "renders" / f"eval_img_{index:04d}.png" for r in runs]
        if not all(f.exists() for f in files):
            break
        pairs = [iio.imread(f)[..., :3] for f in files]
        width = pairs[0].shape[1] // 2
        row = [("ground truth", pairs[0][:, :width] / 255)]
        row += [(f"{r['method']}", pair[:, pair.shape[1] // 2 :] / 255) for r, pair in zip(runs, pairs, strict=True)]
        grid.append(row)
    if grid:
        plots.image_grid(path, grid)


COMMAND = Command(CompareConfig, run, "train nerfstudio methods on one scene and budget, compare on the test split")
