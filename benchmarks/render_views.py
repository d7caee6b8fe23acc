"""Seconds per test view of finished runs, each run rendered alone on the whole machine: what a user rendering a view
(ns-eval, ns-render, the viewer) waits on this CPU. `frinr compare`'s own render seconds come from evaluations that
share the machine with the other comparisons' training (``bench_captures --jobs 2``, one thread each).

Renders the test views each run was evaluated on (its ``result.json``), once to warm up, then ``--repeats`` times;
prints and writes {run directory: [seconds per view]}.

    .venv/bin/python -m benchmarks.render_views outputs/captures/*/seed42/frinr-ngp --out outputs/captures/renders.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch

from frinr_nerfstudio.tools.budgeted import timed


def render_seconds(run: Path, repeats: int) -> list[float]:
    """The best of ``repeats`` timed renders of each test view ``run`` was evaluated on, after one warm-up render."""
    from nerfstudio.utils.eval_utils import eval_setup

    result = json.loads((run / "result.json").read_text())
    _, pipeline, _, _ = eval_setup(next(run.rglob("config.yml")), test_mode="test")
    cameras = pipeline.datamanager.eval_dataset.cameras
    seconds = []
    for view in result["eval_views"]:
        camera = cameras[view : view + 1].to(pipeline.device)
        pipeline.model.get_outputs_for_camera(camera)  # warm-up: first-call allocations, lazily built modules
        times = [timed(pipeline.model.get_outputs_for_camera, pipeline.device, camera)[1] for _ in range(repeats)]
        seconds.append(round(min(times), 2))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="method directories of `frinr compare` (hold result.json)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="default: every core")
    parser.add_argument("--out", type=Path, help="merge the results into this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    for run in args.runs:
        seconds = render_seconds(run, args.repeats)
        results[str(run)] = seconds
        print(f"{run}: {statistics.mean(seconds):.2f} s per view ({seconds}), {args.threads} threads")
        if args.out:
            args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
