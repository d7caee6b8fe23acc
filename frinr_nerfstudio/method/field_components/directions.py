"""Spherical harmonics of unit view directions, whichever implementation runs them."""

from __future__ import annotations

from nerfstudio.field_components.encodings import SHEncoding
from torch import Tensor


class DirectionEncoding(SHEncoding):
    """nerfstudio's ``SHEncoding`` taking unit directions (..., 3) with either implementation: tiny-cuda-nn's expects
    them mapped to [0, 1]^3, the torch one as they are. Output in the input's dtype (tcnn's is half)."""

    def forward(self, directions: Tensor) -> Tensor:
        inputs = (directions + 1) / 2 if self.tcnn_encoding is not None else directions
        return super().forward(inputs).to(directions.dtype)
