"""Which implementation runs each swappable part of our models, decided from the device the model is built for.

frinr-ngp's hash and SH encodings run tiny-cuda-nn's fused kernels or nerfstudio's torch code (with our compiled CPU
kernel for the hash grid); both methods' occupancy grids run nerfacc's CUDA traversal or our torch march. ``auto``
picks the fast one when the model's device is CUDA and the library can run there, never from the host alone, so
``--machine.device-type cpu`` on a GPU host gets the torch/C++ path.

The choice is made once per run and written into its config.yml (``OccupancyModelConfig.settle``, called when the
config is saved), so every later load — ``ns-eval``, ``ns-viewer``, ``ns-render``, ``--load-dir``, ``frinr export``,
on this machine or another — rebuilds the modules the checkpoint holds:

- a torch hash encoding and a torch grid run anywhere, CUDA included;
- a nerfacc grid becomes a torch grid where nerfacc cannot run (same cells, the checkpoint converts);
- a tiny-cuda-nn hash encoding loads only where tiny-cuda-nn runs: its tables have another layout and hash than the
  torch encoding's, so it cannot be converted, and a load elsewhere is a one-line error saying so.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import torch

from frinr_core.errors import InputError, first_line

log = logging.getLogger("frinr")

HashBackend = Literal["tcnn", "torch"]
GridBackend = Literal["nerfacc", "torch"]


def is_cuda(device: str | torch.device) -> bool:
    return torch.device(device).type == "cuda"


def tcnn_importable() -> bool:
    """nerfstudio's own probe: it tries ``import tinycudann`` once, when nerfstudio is imported."""
    from nerfstudio.utils.external import TCNN_EXISTS

    return TCNN_EXISTS


@functools.cache
def nerfacc_kernel_problem() -> str | None:
    """None when nerfacc's CUDA kernels load; otherwise why not, said once per process.

    nerfacc compiles its kernels with nvcc the first time they are imported. A build that fails (no toolkit, a CUDA /
    compiler mismatch) raises at every import, so the answer is cached: one attempt and one message per process.
    Only asked for a CUDA device.
    """
    try:
        from nerfacc.cuda._backend import _C
    except Exception as error:  # a failed JIT build raises RuntimeError, OSError, ImportError, ...
        problem = f"their build failed ({first_line(error)})"
    else:
        if _C is not None:
            return None
        problem = "no CUDA toolkit (nvcc) was found to build them"
    log.warning("nerfacc's CUDA kernels are unavailable: %s; frinr uses its torch occupancy grid", problem)
    return problem


def hash_encoding(setting: Literal["auto", "tcnn", "torch"], device: str | torch.device) -> HashBackend:
    """``auto``: tiny-cuda-nn when the model is on CUDA and tinycudann imports, else torch (our kernel on the CPU)."""
    usable = is_cuda(device) and tcnn_importable()
    if setting == "auto":
        return "tcnn" if usable else "torch"
    if setting == "tcnn" and not usable:
        why = "tinycudann does not import" if is_cuda(device) else f"the model is on {torch.device(device).type}"
        raise InputError(
            f"implementation tcnn (tiny-cuda-nn's hash encoding) cannot run here: {why}. A run trained with it loads "
            "only where tiny-cuda-nn runs on CUDA (its tables do not convert to the torch encoding); to train here, "
            "pass --pipeline.model.field.implementation torch"
        )
    return setting


def occupancy_grid(setting: Literal["auto", "nerfacc", "torch"], device: str | torch.device) -> GridBackend:
    """``auto``: nerfacc's estimator when the model is on CUDA and nerfacc's kernels load, else the torch grid.

    An explicit ``nerfacc`` that cannot run here becomes ``torch``: the two grids hold the same cells, so a
    checkpoint of either loads into the other.
    """
    if setting == "torch":
        return "torch"
    problem = nerfacc_kernel_problem() if is_cuda(device) else f"the model is on {torch.device(device).type}"
    if problem is None:
        return "nerfacc"
    if setting == "nerfacc":
        log.warning("occupancy_backend nerfacc cannot run here (%s): using the torch grid, same cells", problem)
    return "torch"


def cuda_sized(device: str | torch.device, cuda: int, cpu: int) -> int:
    """A default sized for the device: ``cuda`` on a GPU, ``cpu`` (smaller, for 2-core budgets) otherwise."""
    return cuda if is_cuda(device) else cpu
