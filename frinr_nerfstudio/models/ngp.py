"""Instant-NGP model with FR heads: occupancy-grid sampling, volume rendering, loss and metrics.

The pipeline is nerfstudio's instant-ngp step for step; the field's heads are the only FR part. On CUDA
the occupancy grid is ``nerfacc.OccGridEstimator``; elsewhere :class:`~frinr_nerfstudio.samplers.TorchOccGrid`
with the same interface, so the model code below does not branch on the device except for one scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import nerfacc
import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation

from frinr_nerfstudio.fields.ngp import NGPField, NGPFieldConfig
from frinr_nerfstudio.models.base import OccupancyModel, OccupancyModelConfig
from frinr_nerfstudio.samplers import TorchOccGrid, nerfacc_cuda_available


@dataclass
class NGPModelConfig(OccupancyModelConfig):
    """Instant-NGP with FR heads (nerfstudio's instant-ngp settings unless said otherwise)."""

    _target: type = field(default_factory=lambda: NGPModel)
    field: NGPFieldConfig = field(default_factory=NGPFieldConfig)
    grid_resolution: int = 128
    """Cells per axis of each occupancy-grid level."""
    grid_levels: int = 4
    """Occupancy-grid levels with contraction; level l covers the scene box scaled by 2**l. A bounded scene
    (contraction off) has one: a grid reaching beyond the box would only fill the march with empty steps."""
    grid_update_every: int = 16
    """Refresh the occupancy grid every this many steps (nerfacc's default)."""
    grid_warmup_steps: int = 256
    grid_cells_per_update: int | None = None
    """Torch backend: evaluate at most this many cells per refresh (a sweep); None = nerfacc's schedule."""
    """Refresh every cell (not a random quarter plus the occupied ones) during these first steps."""
    occupancy_backend: Literal["auto", "nerfacc", "torch"] = "auto"
    """nerfacc's CUDA estimator, the pure-torch one, or auto (nerfacc when its CUDA kernels can run)."""
    render_step_size: float | None = None
    """Minimum step; default: the scene box diagonal / 1000."""


class NGPModel(OccupancyModel):
    """Renders packed occupancy-grid samples of an :class:`NGPField`."""

    config: NGPModelConfig
    field: NGPField

    def populate_modules(self) -> None:
        super().populate_modules()
        self.field = self.config.field.setup(aabb=self.scene_box.aabb, contract=self.config.contraction == "on")
        aabb = self.scene_box.aabb.flatten()  # (6,)
        if self.config.render_step_size is None:  # ~1000 steps across the box, as nerfstudio's instant-ngp
            self.config.render_step_size = float((aabb[3:] - aabb[:3]).norm()) / 1000
        backend = self.config.occupancy_backend
        self.use_nerfacc = backend == "nerfacc" or (backend == "auto" and nerfacc_cuda_available())
        levels = self.config.grid_levels if self.contracted else 1
        grid = {"roi_aabb": aabb, "resolution": self.config.grid_resolution, "levels": levels}
        if self.use_nerfacc:
            self.occupancy_grid = nerfacc.OccGridEstimator(**grid)
        else:
            self.occupancy_grid = TorchOccGrid(**grid, cells_per_update=self.config.grid_cells_per_update)
        self.sampler = self.make_sampler()

    def render_step_size(self) -> float:
        return self.config.render_step_size

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> list:
        def update_occupancy_grid(step: int) -> None:
            self.occupancy_grid.update_every_n_steps(
                step=step,
                occ_eval_fn=lambda x: self.field.density_fn(x) * self.config.render_step_size,
                n=self.config.grid_update_every,
                warmup_steps=self.config.grid_warmup_steps,
            )

        return [
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION],
                update_every_num_iters=1,
                func=update_occupancy_grid,
            )
        ]

    def get_param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {"fields": list(self.field.parameters())}
