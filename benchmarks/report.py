"""Writes one benchmark's section of BENCHMARKS.md, replacing that section's previous results."""

from __future__ import annotations

import json
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def write_section(name: str, title: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace (or append) the section ``name`` of ``path`` with ``body``, stamped with the command and machine."""
    module = "benchmarks." + Path(sys.argv[0]).stem
    command = " ".join([".venv/bin/python -m", module, *map(shlex.quote, sys.argv[1:])])
    stamp = time.strftime("%Y-%m-%d")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n`{command}` — {stamp}, {machine()}\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->"
    )
    text = path.read_text() if path.exists() else "# Benchmarks\n\nEach section: the command that wrote it.\n"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")
    print(section)


def publish(name: str, title: str, body: str, dry_run: bool = False) -> None:
    """Write section ``name`` of BENCHMARKS.md, or with ``dry_run`` (a script's --no-write) only print ``body``."""
    if dry_run:
        print(body)
    else:
        write_section(name, title, body)


def cached_run(out: Path, settings: dict, run: Callable[[], dict], keep: bool) -> dict:
    """``run()``'s metrics.json payload, or with ``keep`` the one already in ``out`` if it was made with ``settings``.

    ``settings`` (JSON-serialisable) is stored beside metrics.json as bench.json once a run finishes, so a long
    benchmark interrupted part-way (or extended by more images) redoes only what is missing.
    """
    marker, metrics = out / "bench.json", out / "metrics.json"
    if keep and marker.exists() and metrics.exists() and json.loads(marker.read_text()) == settings:
        print(f"kept {metrics} (same settings)")
        return json.loads(metrics.read_text())
    payload = run()
    marker.write_text(json.dumps(settings, indent=1))
    return payload


def search_notes(labelled: list[tuple[str, dict]]) -> str:
    """A paragraph to append to a section: one line per tuned arm whose search went past the first grid or ended on
    its edge; "" when none did.

    ``labelled``: (label, run record) pairs, e.g. ("kodim01 pe+fr", run).
    """
    lines = []
    for label, run in labelled:
        search = run.get("search")
        if not search or not (search["added"] or search["at_edge"]):
            continue
        rates = search["rates"]
        where = "still the edge of the rates tried" if search["at_edge"] else "interior after the extension"
        lines.append(
            f"- {label}: chose {run['lr']:g}; {search['added']} rate(s) added past the first grid "
            f"(tried {rates[0]:g} … {rates[-1]:g}), {where}"
        )
    return "\n\nSearches that went past the first grid of rates:\n\n" + "\n".join(lines) if lines else ""
