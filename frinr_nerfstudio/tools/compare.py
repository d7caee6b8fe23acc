"""`frinr compare`: does FR beat its baseline on your scene? Same data, seed and budget for every method.

Each method trains in its own process (:mod:`frinr_nerfstudio.tools.budgeted`), so one failure stays one
failed row; finished runs are kept in ``OUT/<method>/result.json`` and skipped when the command is run
again with the same ``--out`` and budget. Then: ``summary.json``, ``summary.md``, ``psnr.png`` (learning
curves against step and time) and ``views.png`` (the same test views across methods, with ground truth).
"""

from __future__ import annotations

import dataclasses
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
from frinr_nerfstudio.nerfstudio_fixes.datacheck import SCENE_CHECKS, auto_downscale, check_scene
from frinr_nerfstudio.tools.budgeted import BudgetRun

COLUMNS = ["method", "status", "psnr", "ssim", "lpips", "train_seconds", "train_rays_per_second",
           "train_samples_per_ray", "render_seconds_per_view", "peak_memory_mb", "memory", "params", "steps",
           "checkpoint"]  # fmt: skip


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
    eval_views: int | None = None
    """Evaluate every method on this many test views, evenly spaced over the test split (default: all). Rendering a
    view of a real capture on a CPU can take minutes for some methods; the same views for everyone keep it fair."""
    downscale: int | None = None
    """Image downscale factor for nerfstudio-data captures (reads images_N/, as ns-process-data writes them); default:
    nerfstudio's own choice (long side at most 1600 pixels), decided here once for every method and reported."""
    out: Path = Path("outputs/compare")


def _validate(config: CompareConfig) -> tuple[str, int | None]:
    """The dataparser and the downscale factor every method will use."""
    if config.data is None:
        raise InputError("--data is required: the scene directory to train on")
    if not config.data.is_dir():
        raise InputError(f"data directory not found: {config.data}")
    if not config.methods or len(set(config.methods)) != len(config.methods):
        raise InputError(f"--methods must name distinct methods, got {list(config.methods)}")
    dataparser = config.dataparser or (
        "blender-data" if (config.data / "transforms_train.json").exists() else "nerfstudio-data"
    )
    if dataparser in SCENE_CHECKS:  # other parsers' scenes are their own children's business
        check_scene(config.data, dataparser, config.downscale)
    downscale = config.downscale
    if downscale is None and dataparser == "nerfstudio-data":
        downscale = auto_downscale(config.data)
    return dataparser, downscale


def _run(config: CompareConfig, method: str, dataparser: str, downscale: int | None) -> BudgetRun:
    run = BudgetRun(
        method=method, data=config.data, out=config.out / method, dataparser=dataparser, steps=config.steps,
        minutes=config.minutes, seed=config.seed, rays_per_batch=config.rays_per_batch, downscale=downscale,
        eval_views=config.eval_views,
    )  # fmt: skip
    run.check()
    return run


def _budget(run: BudgetRun) -> dict:
    """What a finished run must share with this comparison to be kept."""
    budget = {k: v for k, v in dataclasses.asdict(run).items() if k not in ("method", "out")}
    return budget | {"data": str(run.data.resolve())}


def run_method(run: BudgetRun) -> dict:
    """Train and evaluate one method in a child process, or reuse its finished result for the same budget."""
    result_path, budget_path = run.out / "result.json", run.out / "budget.json"
    if result_path.exists() and budget_path.exists():
        previous = json.loads(result_path.read_text())
        if previous.get("status") == "ok" and json.loads(budget_path.read_text()) == _budget(run):
            Console().print(f"[dim]{run.method}: finished earlier, kept ({result_path})[/dim]")
            return previous
    run.out.mkdir(parents=True, exist_ok=True)
    budget_path.write_text(json.dumps(_budget(run)))
    command = [sys.executable, "-m", "frinr_nerfstudio.tools.budgeted", *run.argv()]
    Console().print(f"[bold]{run.method}[/bold]: training ({run.out / 'train.log'})")
    with (run.out / "train.log").open("w") as log:  # no stdin: nothing in a child may wait at a prompt
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False)
    if not result_path.exists():
        error = f"the run died without a result; see {run.out}/train.log"
        return {"method": run.method, "status": "failed", "error": error}
    return json.loads(result_path.read_text())


def run(config: CompareConfig) -> list[dict]:
    dataparser, downscale = _validate(config)
    runs = [_run(config, method, dataparser, downscale) for method in config.methods]
    config.out.mkdir(parents=True, exist_ok=True)
    results = [run_method(r) for r in runs]
    rows = [{k: v for k, v in r.items() if k not in ("curve", "samples_curve")} for r in results]
    setting = {"dataparser": dataparser, "downscale": downscale, "eval_views": config.eval_views}
    io.write_json(config.out / "summary.json", {"budget": _budget(runs[0]), **setting, "runs": rows})
    table = io.markdown_table(rows, COLUMNS)
    evaluated = next((r["eval_views"] for r in results if r["status"] == "ok"), None)
    notes = [f"Images downscaled {downscale}× (nerfstudio-data reads images_{downscale}/)." if downscale else ""]
    notes += [f"Evaluated on test views {evaluated} (the same for every method)." if evaluated is not None else ""]
    notes += [f"- {r['method']}: {r['error']}" for r in results if r["status"] != "ok"]
    text = "\n".join([table, "", *[n for n in notes if n]])
    (config.out / "summary.md").write_text(text.rstrip() + "\n")
    finished = [r for r in results if r["status"] == "ok"]
    if finished:
        by_step = {r["method"]: [(s, p) for s, _, p in r["curve"]] for r in finished}
        by_time = {r["method"]: [(t, p) for _, t, p in r["curve"]] for r in finished}
        label = "train-batch PSNR (dB)"
        plots.curve_panels(config.out / "psnr.png", [("step", label, by_step), ("train seconds", label, by_time)])
        _plot_views(config.out / "views.png", config.out, finished, config.views)
    Console().print(text)
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
