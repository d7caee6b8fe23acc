"""Instant-NGP model with FR heads: occupancy-grid sampling, volume rendering, loss and metrics.

The pipeline is nerfstudio's instant-ngp step for step; the field's heads are the only FR part. With the model on
CUDA the occupancy grid is nerfacc's estimator and the encodings tiny-cuda-nn's when they can run there; otherwise
:class:`~frinr_nerfstudio.method.samplers.TorchOccGrid` with the same interface and nerfstudio's torch encodings
(our compiled kernel for the hash grid on the CPU), so the model code below does not branch on the device except for
one scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation

from frinr_nerfstudio.method.fields.ngp import NGPField, NGPFieldConfig
from frinr_nerfstudio.method.models.base import OccupancyModel, OccupancyModelConfig
from frinr_nerfstudio.nerfstudio_fixes import backends


@dataclass
class NGPModelConfig(OccupancyModelConfig):
    """Instant-NGP with FR heads (nerfstudio's instant-ngp settings unless said otherwise)."""

    _target: type = field(default_factory=lambda: NGPModel)
    field: NGPFieldConfig = field(default_factory=NGPFieldConfig)
    background_color: Literal["auto", "random", "black", "white", "learned"] = "auto"
    """As ``OccupancyModelConfig``'s; auto: a learned background on real captures, white on blender-data."""
    grid_resolution: int | None = None
    """Cells per axis of each occupancy-grid level; None: 128 (nerfstudio's) with the model on CUDA, 64 on the CPU
    (64³ cells per level, refreshed on nerfacc's schedule, cost a few percent of a 2**18-sample step there)."""
    grid_levels: int = 4
    """Occupancy-grid levels with contraction; level l covers the scene box scaled by 2**l. A bounded scene
    (contraction off) has one: a grid reaching beyond the box would only fill the march with empty steps."""
    grid_update_every: int = 16
    """Refresh the occupancy grid every this many steps (nerfacc's default)."""
    grid_warmup_steps: int = 256
    """Refresh every cell (not a random quarter plus the occupied ones) during these first steps."""
    grid_cells_per_update: int | None = None
    """Torch backend: evaluate at most this many cells per refresh (a sweep); None = nerfacc's schedule."""
    render_step_size: float | None = None
    """Minimum step; default: the scene box diagonal / 1000."""

    FR_HEADS = ("field.density_head", "field.colour_head")
    SETTLED = (*OccupancyModelConfig.SETTLED, "grid_resolution", "field.implementation")

    def settle(self, dataparser, device) -> None:
        """Also the encodings' implementation and the grid size, from the device (see ``OccupancyModelConfig``)."""
        super().settle(dataparser, device)
        self.field.implementation = backends.hash_encoding(self.field.implementation, device)
        self.grid_resolution = self.grid_resolution or backends.cuda_sized(device, cuda=128, cpu=64)


class NGPModel(OccupancyModel):
    """Renders packed occupancy-grid samples of an :class:`NGPField`."""

    config: NGPModelConfig
    field: NGPField

    def populate_modules(self) -> None:
        super().populate_modules()
        self.field = self.config.field.setup(
            aabb=self.scene_box.aabb, contract=self.config.contraction == "on", num_images=self.num_train_data
        )
        aabb = self.scene_box.aabb.flatten()  # (6,)
        if self.config.render_step_size is None:  # ~1000 steps across the box, as nerfstudio's instant-ngp
            self.config.render_step_size = float((aabb[3:] - aabb[:3]).norm()) / 1000
        levels = self.config.grid_levels if self.contracted else 1
        cells_per_update = {"cells_per_update": self.config.grid_cells_per_update}
        if self.config.occupancy_backend == "nerfacc":
            cells_per_update = {}  # nerfacc keeps its own schedule
        self.make_occupancy_grid(aabb, self.config.grid_resolution, levels, **cells_per_update)

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

    def checkpoint_mismatch(self, missing: list[str], unexpected: list[str]) -> str | None:
        """A checkpoint of the other hash encoding: tiny-cuda-nn's tables have another layout and hash than the torch
        encoding's, so neither converts into the other."""
        if any("tcnn_encoding" in key for key in unexpected):
            return (
                "this checkpoint's hash encoding is tiny-cuda-nn's (implementation tcnn), which the torch encoding "
                "built here cannot load: load it where tinycudann runs on CUDA"
            )
        if any("tcnn_encoding" in key for key in missing):
            return (
                "this checkpoint's hash encoding is the torch one, but this model built tiny-cuda-nn's: set "
                "implementation: torch under pipeline.model.field in the run's config.yml (ns-train: "
                "--pipeline.model.field.implementation torch)"
            )
        return None

    def get_param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return self.with_rendering_params({"fields": list(self.field.parameters())}, "fields")
