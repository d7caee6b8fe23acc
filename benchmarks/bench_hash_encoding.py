"""Hash-grid encoding forward + backward on the CPU: nerfstudio's torch HashEncoding vs frinr's compiled kernel.

Instant-NGP's settings (16 levels, 2 features, 2^19 rows per level, resolutions 16…2048), random points in the
unit cube; the two compute the same function (tests/nerfstudio/test_hash_encoding.py), so only time differs.

    .venv/bin/python -m benchmarks.bench_hash_encoding --points 65536 262144
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from nerfstudio.field_components.encodings import HashEncoding

from benchmarks.report import publish
from frinr_nerfstudio.method import kernels
from frinr_nerfstudio.method.field_components.hash_encoding import CPUHashEncoding

SETTINGS = {"num_levels": 16, "min_res": 16, "max_res": 2048, "log2_hashmap_size": 19, "implementation": "torch"}


def step_seconds(encoding: HashEncoding, points: torch.Tensor, rounds: int) -> float:
    """Median seconds of one forward + backward (into the table) over ``points``."""
    times = []
    for _ in range(rounds + 1):  # the first round warms up allocations
        start = time.perf_counter()
        encoding(points).square().sum().backward()
        times.append(time.perf_counter() - start)
        encoding.hash_table.grad = None
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, nargs="+", default=[65536, 262144])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    assert kernels.available(), "the kernel did not build here; see the warning above"
    torch.manual_seed(0)
    stock, ours = HashEncoding(**SETTINGS), CPUHashEncoding(**SETTINGS)
    ours.load_state_dict(stock.state_dict())
    rows = ["| points | nerfstudio torch (s) | frinr kernel (s) | speed-up |", "|---|---|---|---|"]
    for n in args.points:
        points = torch.rand(n, 3)
        slow, fast = step_seconds(stock, points, args.rounds), step_seconds(ours, points, args.rounds)
        rows.append(f"| {n:,} | {slow:.3f} | {fast:.3f} | {slow / fast:.1f}× |")
    body = "Forward + backward into the table, median of {} rounds; Instant-NGP settings (16 levels × 2^19 rows).\n\n{}"
    body = body.format(args.rounds, "\n".join(rows))
    title = "Hash-grid encoding on the CPU: nerfstudio's torch code vs the kernel"
    publish("hash-encoding", title, body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
