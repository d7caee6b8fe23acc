"""nerfstudio's ``HashEncoding`` with a compiled CPU kernel for its torch path.

Without tiny-cuda-nn, nerfstudio's hash encoding is written in tensor ops that materialise several
(N, levels, 8) temporaries per lookup; on a CPU that memory traffic is most of an Instant-NGP step. The
kernel in ``kernels/hash_grid.cpp`` computes the same function (same table layout, hash and interpolation, so
checkpoints and results are interchangeable with the stock encoding) level by level, with the level's table
slice in cache — 12–21 times faster forward + backward (BENCHMARKS.md). Where it cannot be compiled
(:mod:`frinr_nerfstudio.method.kernels`) the stock torch code runs. tcnn, when present, is used unchanged.
"""

from __future__ import annotations

import torch
from nerfstudio.field_components.encodings import HashEncoding
from torch import Tensor

from frinr_nerfstudio.method import kernels


class _HashGridLookup(torch.autograd.Function):
    """Features (N, L * F) of positions (N, 3) in [0, 1], differentiable in the table and the positions. ``known``:
    the features of an earlier lookup of the same positions (with the same table), returned instead of computed."""

    @staticmethod
    def forward(ctx, positions: Tensor, table: Tensor, scales: Tensor, log2_size: int, known: Tensor | None) -> Tensor:
        ctx.save_for_backward(positions, scales, table if positions.requires_grad else None)
        ctx.log2_size, ctx.features = log2_size, table.shape[1]
        if known is not None:
            return known.clone()  # a new tensor: autograd may not hand out an input as this function's output
        return torch.ops.frinr.hash_grid_forward(positions, table, scales, log2_size)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        positions, scales, table = ctx.saved_tensors
        grad_positions = grad_table = None
        if ctx.needs_input_grad[0]:
            grad_positions = torch.ops.frinr.hash_grid_position_grad(positions, table, grad_out, scales, ctx.log2_size)
        if ctx.needs_input_grad[1]:
            grad_table = torch.ops.frinr.hash_grid_backward(positions, grad_out, scales, ctx.log2_size, ctx.features)
        return grad_positions, grad_table, None, None, None


KERNEL_FEATURES = (1, 2, 4, 8)
"""Features per level the kernel is compiled for (tiny-cuda-nn's choices); others run nerfstudio's torch code."""


class CPUHashEncoding(HashEncoding):
    """``HashEncoding`` whose torch implementation runs the compiled kernel for float32 CPU inputs.

    Everything the kernel does not cover falls through to nerfstudio's code: CUDA tensors, other dtypes, and
    features per level outside ``KERNEL_FEATURES``.
    """

    def kernel_covers(self, in_tensor: Tensor) -> bool:
        """Whether the kernel computes the features at these positions (..., 3) (then they can be replayed)."""
        covered = self.hash_table.shape[1] in KERNEL_FEATURES and self.log2_hashmap_size < 32
        return self.tcnn_encoding is None and covered and kernels.usable(in_tensor, self.hash_table)

    def replay(self, in_tensor: Tensor, known: Tensor) -> Tensor:
        """The features (..., L * F) of positions (..., 3) that an earlier lookup without gradients gave as ``known``,
        with the gradients attached as if looked up now: a training pass over samples whose density was just tested
        need not look them up twice."""
        return self._kernel_lookup(in_tensor, known) if self.kernel_covers(in_tensor) else self(in_tensor)

    def pytorch_fwd(self, in_tensor: Tensor) -> Tensor:
        return self._kernel_lookup(in_tensor) if self.kernel_covers(in_tensor) else super().pytorch_fwd(in_tensor)

    def _kernel_lookup(self, in_tensor: Tensor, known: Tensor | None = None) -> Tensor:
        shape = in_tensor.shape[:-1]
        positions = in_tensor.reshape(-1, 3).contiguous()
        scales = self.scalings.to(torch.float32)
        known = known.reshape(positions.shape[0], -1) if known is not None else None
        features = _HashGridLookup.apply(positions, self.hash_table, scales, self.log2_hashmap_size, known)
        return features.view(*shape, features.shape[-1])
