"""Writes one benchmark's section of BENCHMARKS.md, replacing that section's previous results."""

from __future__ import annotations

import platform
import re
import shlex
import sys
import time
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
