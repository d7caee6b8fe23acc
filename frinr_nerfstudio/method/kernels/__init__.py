"""frinr's compiled CPU kernels (``torch.ops.frinr``): the hash-grid lookup (``hash_grid.cpp``) and the
occupancy-grid march (``march.cpp``).

Both do what tensor ops would do with many (N, ...)-sized temporaries, which on a CPU is memory traffic rather than
arithmetic; each states its measured gain in BENCHMARKS.md. They are compiled once per machine with torch's
extension builder (g++ and ninja, cached under ``~/.cache/torch_extensions``). Where that is impossible the torch
code they replace runs, after one warning, so nothing depends on a compiler.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch
from torch import Tensor

from frinr_core.errors import first_line

log = logging.getLogger(__name__)
NAME = "frinr_kernels"
SOURCES = ("hash_grid.cpp", "march.cpp")


@functools.cache
def available() -> bool:
    """Compile (or load the cached build of) the kernels; False, with one warning, if that fails."""
    from nerfstudio.utils.rich_utils import CONSOLE
    from torch.utils.cpp_extension import _get_build_directory, load

    try:
        if not (Path(_get_build_directory(NAME, verbose=False)) / f"{NAME}.so").exists():
            CONSOLE.print("Compiling frinr's CPU kernels (once per machine, about a minute)...")
        load(
            name=NAME,
            sources=[str(Path(__file__).with_name(source)) for source in SOURCES],
            extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off"],  # no fused multiply-adds: torch's rounding
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
        )
    except Exception as error:  # no compiler, no ninja, read-only cache: the torch code still works
        log.warning("frinr's CPU kernels are unavailable (%s); using the torch code they replace", first_line(error))
        return False
    return True


def usable(*tensors: Tensor) -> bool:
    """Whether the kernels can take these tensors: float32 on the CPU (and the kernels built)."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and available()
