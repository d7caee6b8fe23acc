"""nerfstudio's ``HashEncoding`` with a compiled CPU kernel for its torch path.

Without tiny-cuda-nn, nerfstudio's hash encoding is written in tensor ops that materialise several
(N, levels, 8) temporaries per lookup; on a CPU that memory traffic is most of an Instant-NGP step. The
kernel in ``hash_grid.cpp`` computes the same function (same table layout, hash and interpolation, so
checkpoints and results are interchangeable with the stock encoding) level by level, with the level's table
slice in cache — 7–8 times faster forward + backward (BENCHMARKS.md). It is compiled once per machine with
torch's extension builder (g++ and ninja, cached under ``~/.cache/torch_extensions``); where that is
impossible the stock torch code runs, after one warning. tcnn, when present, is used unchanged.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch
from nerfstudio.field_components.encodings import HashEncoding
from torch import Tensor

from frinr_core.errors import first_line

log = logging.getLogger(__name__)


@functools.cache
def cpu_kernel_available() -> bool:
    """Compile (or load the cached build of) the CPU kernel; False, with one warning, if that fails."""
    from nerfstudio.utils.rich_utils import CONSOLE
    from torch.utils.cpp_extension import _get_build_directory, load

    try:
        if not (Path(_get_build_directory("frinr_hash_grid", verbose=False)) / "frinr_hash_grid.so").exists():
            CONSOLE.print("Compiling frinr's CPU hash-grid kernel (once per machine, about 30 s)...")
        load(
            name="frinr_hash_grid",
            sources=[str(Path(__file__).with_name("hash_grid.cpp"))],
            extra_cflags=["-O3", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            is_python_module=False,
        )
    except Exception as error:  # no compiler, no ninja, read-only cache: the stock torch path still works
        log.warning("hash-grid CPU kernel unavailable (%s); using nerfstudio's torch encoding", first_line(error))
        return False
    return True


class _HashGridLookup(torch.autograd.Function):
    """Features (N, L * F) of positions (N, 3) in [0, 1]; the gradient flows into the table only."""

    @staticmethod
    def forward(ctx, positions: Tensor, table: Tensor, scales: Tensor, log2_size: int) -> Tensor:
        ctx.save_for_backward(positions, scales)
        ctx.log2_size, ctx.features = log2_size, table.shape[1]
        return torch.ops.frinr.hash_grid_forward(positions, table, scales, log2_size)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        positions, scales = ctx.saved_tensors
        grad_table = torch.ops.frinr.hash_grid_backward(positions, grad_out, scales, ctx.log2_size, ctx.features)
        return None, grad_table, None, None


class CPUHashEncoding(HashEncoding):
    """``HashEncoding`` whose torch implementation runs the compiled kernel for float32 CPU inputs.

    Everything the kernel does not cover falls through to nerfstudio's code: CUDA tensors, other dtypes,
    and positions that need a gradient (the kernel differentiates with respect to the table only).
    """

    def pytorch_fwd(self, in_tensor: Tensor) -> Tensor:
        usable = (
            in_tensor.device.type == "cpu"
            and in_tensor.dtype == torch.float32
            and self.hash_table.dtype == torch.float32
            and not (in_tensor.requires_grad and torch.is_grad_enabled())
            and cpu_kernel_available()
        )
        if not usable:
            return super().pytorch_fwd(in_tensor)
        shape = in_tensor.shape[:-1]
        positions = in_tensor.reshape(-1, 3).contiguous()
        scales = self.scalings.to(torch.float32)
        features = _HashGridLookup.apply(positions, self.hash_table, scales, self.log2_hashmap_size)
        return features.view(*shape, -1)
