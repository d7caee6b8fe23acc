"""What a ray sees after it leaves the occupancy grid: a colour learned per direction (an environment map).

Real captures have no blank backdrop. With a fixed background colour, whatever lies beyond the contracted grid
(sky, far walls) must be painted as density inside the grid, where it costs samples on every ray that passes; a
direction-dependent colour lets far space stay empty. Spherical harmonics of the direction (degree 4, as the colour
head's) into a small ReLU MLP, RGB in [0, 1]; never FR, so frinr-ngp and its baseline share it exactly.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from frinr_nerfstudio.method.field_components.directions import DirectionEncoding
from frinr_nerfstudio.method.heads import HeadConfig


class BackgroundField(nn.Module):
    """Unit ray directions (R, 3) -> background colour (R, 3)."""

    def __init__(self, hidden_features: int = 32, implementation: Literal["tcnn", "torch"] = "torch") -> None:
        super().__init__()
        self.encoding = DirectionEncoding(levels=4, implementation=implementation)
        self.mlp = HeadConfig(hidden_features=hidden_features, hidden_layers=1).build(self.encoding.get_out_dim(), 3)

    def forward(self, directions: Tensor) -> Tensor:
        return self.mlp(self.encoding(directions)).sigmoid()
