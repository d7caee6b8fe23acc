"""frinr-ngp on the shared real captures, this CPU, against issue 15's targets: test PSNR, train rays/s and test-view
render time after the same wall-clock budget, beside frinr-ngp-baseline (three seeds), nerfacto and frinr-dvgo.

Every comparison is `frinr compare` itself (finished runs in ``--out`` are kept): one per (scene, seed), ``--jobs`` at
a time, every training process single-threaded, so all methods run under the same conditions. frinr-ngp on lego_100
under the same protocol gives its reference rate. Evaluation is on the same evenly spaced test views for every method.
Its render seconds share the machine with another job's training; ``--render-alone`` times frinr-ngp's test views
again afterwards, one run at a time on every core (what a user rendering a view waits).

    .venv/bin/python -m benchmarks.bench_captures --minutes 10 --jobs 2
    .venv/bin/python -m benchmarks.bench_captures --minutes 10 --report   # tabulate the comparisons already run
    .venv/bin/python -m benchmarks.bench_captures --minutes 10 --report --render-alone   # and time the renders alone
    .venv/bin/python -m benchmarks.bench_captures --minutes 10 --seeds 1 2 --pair-only --no-write   # more seeds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.nerf import DATA
from benchmarks.report import publish

PAIR = ("frinr-ngp", "frinr-ngp-baseline")
OTHERS = ("nerfacto", "frinr-dvgo")


def compare(scene_dir: Path, methods: tuple[str, ...], seed: int, args, out: Path) -> dict:
    """One `frinr compare` in a child process (its own children single-threaded); its summary.json."""
    command = [str(Path(sys.executable).with_name("frinr")), "compare", "--methods", *methods, "--data", str(scene_dir),
               "--minutes", str(args.minutes), "--seed", str(seed), "--eval-views", str(args.eval_views),
               "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out.mkdir(parents=True, exist_ok=True)
    with (out / "compare.log").open("w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    return json.loads((out / "summary.json").read_text())


def frinr_ngp_run(args, scene: str, seed: int) -> str:
    """Where a comparison keeps its frinr-ngp run (the key of --render-alone's timings)."""
    return str(args.out / scene / f"seed{seed}" / "frinr-ngp")


def fmt(values: list[float | None], digits: int = 2) -> str:
    """Per-seed values; n/a where a method does not report one (nerfacto's samples per ray)."""
    return " / ".join("n/a" if v is None else f"{v:.{digits}f}" for v in values)


def scene_table(scene: str, runs: dict[str, list[dict]], lego_rate: float | None, alone: list[float]) -> str:
    """Rows per method (seeds pooled), then the targets, each met or not; ``alone``: frinr-ngp's seconds per view
    rendered alone on the machine (``--render-alone``), if timed."""
    ok = {m: [r for r in rs if r["status"] == "ok"] for m, rs in runs.items()}
    mean = {m: statistics.mean(r[k] for r in rs) for m, rs in ok.items() if rs for k in ["psnr"]}
    rate = {m: statistics.mean(r["train_rays_per_second"] for r in rs) for m, rs in ok.items() if rs}
    rows = [
        "| method | test PSNR (per seed) | mean | SSIM | train rays/s | samples/ray | render s/view | steps |",
        "|---" * 8 + "|",
    ]
    for method, rs in runs.items():
        if not ok[method]:
            rows.append(f"| {method} | failed: {rs[0].get('error', '?')} |||||||")
            continue
        good = ok[method]
        rows.append(
            f"| {method} | {fmt([r['psnr'] for r in good])} | {mean[method]:.2f} | "
            f"{statistics.mean(r['ssim'] for r in good):.3f} | {rate[method]:.0f} | "
            f"{fmt([r['train_samples_per_ray'] for r in good], 1)} | "
            f"{fmt([r['render_seconds_per_view'] for r in good], 1)} | {fmt([r['steps'] for r in good], 0)} |"
        )
    targets = []
    if {"frinr-ngp", "nerfacto"} <= rate.keys():
        ratio = rate["frinr-ngp"] / rate["nerfacto"]
        targets.append(f"frinr-ngp rays/s ≥ 10× nerfacto's: {ratio:.1f}× ({'met' if ratio >= 10 else 'missed'})")
    if lego_rate and "frinr-ngp" in rate:
        share = rate["frinr-ngp"] / lego_rate
        targets.append(
            f"≥ 1/2 of its lego_100 rate ({lego_rate:.0f}): {share:.2f} ({'met' if share >= 0.5 else 'missed'})"
        )
    if {"frinr-ngp", "frinr-ngp-baseline", "nerfacto"} <= mean.keys():
        order = mean["frinr-ngp"] > mean["frinr-ngp-baseline"] > mean["nerfacto"]
        targets.append(
            f"PSNR frinr-ngp > baseline > nerfacto: {mean['frinr-ngp']:.2f} / {mean['frinr-ngp-baseline']:.2f} / "
            f"{mean['nerfacto']:.2f} ({'met' if order else 'missed'})"
        )
    if ok.get("frinr-ngp"):
        slowest = max(r["render_seconds_per_view"] for r in ok["frinr-ngp"])
        targets.append(
            f"frinr-ngp test view ≤ 5 s, evaluated beside another run's training (one thread): slowest {slowest:.1f} s "
            f"({'met' if slowest <= 5 else 'missed'})"
        )
    if alone:
        targets.append(
            f"frinr-ngp test view ≤ 5 s, rendered alone on every core: slowest {max(alone):.1f} s "
            f"({'met' if max(alone) <= 5 else 'missed'})"
        )
    return f"**{scene}**\n\n" + "\n".join(rows) + "\n\n" + "\n".join(f"- {t}" for t in targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", nargs="+", default=["maryrose", "office"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--eval-views", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/captures"))
    parser.add_argument("--no-write", action="store_true", help="print the results, leave BENCHMARKS.md alone")
    parser.add_argument("--report", action="store_true", help="train nothing: tabulate the comparisons in --out")
    parser.add_argument(
        "--pair-only", action="store_true", help="the FR/baseline pair only, no lego reference: a table's further seeds"
    )
    parser.add_argument("--others", nargs="*", default=list(OTHERS), help="methods beside the pair, first seed only")
    parser.add_argument(
        "--render-alone",
        action="store_true",
        help="then time frinr-ngp's test views again, one run at a time on every core (benchmarks.render_views; kept "
        "in --out, and tabulated by --report)",
    )
    args = parser.parse_args()
    jobs = [] if args.pair_only else [("lego_100", DATA / "lego_100", ("frinr-ngp",), args.seeds[0])]
    for scene in args.scenes:
        for index, seed in enumerate(args.seeds):
            others = tuple(args.others) if index == 0 and not args.pair_only else ()
            jobs.append((scene, DATA / "captures" / scene, PAIR + others, seed))
    if args.report:  # a failed run stays failed here; running the comparison again would retry it
        summaries = [json.loads((args.out / j[0] / f"seed{j[3]}" / "summary.json").read_text()) for j in jobs]
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            summaries = list(pool.map(lambda j: compare(j[1], j[2], j[3], args, args.out / j[0] / f"seed{j[3]}"), jobs))
    renders = args.out / "render_alone.json"
    if args.render_alone:
        runs = [frinr_ngp_run(args, j[0], j[3]) for j in jobs if j[0] != "lego_100"]
        subprocess.run([sys.executable, "-m", "benchmarks.render_views", *runs, "--out", str(renders)], check=True)
    alone = json.loads(renders.read_text()) if renders.exists() else {}
    by_scene: dict[str, dict[str, list[dict]]] = {}
    for (scene, *_), summary in zip(jobs, summaries, strict=True):
        for run in summary["runs"]:
            by_scene.setdefault(scene, {}).setdefault(run["method"], []).append(run)
    lego = [r for r in by_scene.pop("lego_100", {}).get("frinr-ngp", []) if r["status"] == "ok"]
    lego_rate = lego[0]["train_rays_per_second"] if lego else None
    tables = []
    for scene, runs in by_scene.items():
        seconds = [t for seed in args.seeds for t in alone.get(frinr_ngp_run(args, scene, seed), [])]
        tables.append(scene_table(scene, runs, lego_rate, seconds))
    body = "\n\n".join(tables) + (
        f"\n\nBudget: {args.minutes} min of training per method (evaluation not counted); seeds "
        f"{', '.join(map(str, args.seeds))} for the FR/baseline pair, seed {args.seeds[0]} for "
        f"{' and '.join(args.others) or 'no other method'}; "
        f"each method's defaults; test PSNR/SSIM on {args.eval_views} evenly spaced test views of nerfstudio's split. "
        f"Every training process ran single-threaded, {args.jobs} at a time on this 2-core machine, so rays/s are "
        f"comparable within this section; frinr-ngp's lego_100 reference rate ({lego_rate or 0:.0f} rays/s) was "
        f"measured the same way. views.png per capture: `{args.out}/<scene>/seed{args.seeds[0]}/views.png`."
    )
    publish("captures", f"Real captures: {args.minutes:g} minutes per method", body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
