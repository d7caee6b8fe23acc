"""DirectVoxGO (Sun et al., CVPR 2022) as one nerfstudio model: coarse stage, then fine stage, in one run.

The schedule, driven by a training callback, is DVGO's:

- steps ``[0, coarse_steps)``: coarse stage over the scene box — density grid and a 3-channel colour grid;
- step ``coarse_steps``: the tight bounding box of everything the coarse density made opaque
  (``bbox_thres``), grown by ``world_bound_scale``, becomes the fine box; the coarse opacity, max-pooled
  over a voxel, becomes the empty-space mask (``mask_cache_thres``) — the occupancy grid the sampler marches;
- fine stage: density + 12-channel feature grid + ``rgbnet`` (FR or plain), starting at
  ``1 / 2**len(upscale_steps)`` of the final voxel count and doubling it at each of ``upscale_steps``
  (counted from the start of the fine stage); after each upscale the density shift drops by ``upscale_shift``
  (1, as DVGO),
  and the optimizers' moments are cleared (their parameters keep their identity, only their shapes change);
- every ``mask_update_every`` fine steps, cells whose max-pooled opacity fell below ``fast_color_thres``
  leave the mask.

Unbounded captures: with ``contraction`` on, the grids cover contracted space (see
:class:`~frinr_nerfstudio.method.fields.dvgo.DVGOField`), the tight box is found in that space, the empty-space mask is
a multi-level world grid (level ``l`` covering the scene box scaled by ``2**l``, as nerfacc's) that stays put,
and marching steps grow with distance (``cone_angle``) so far-away space costs few samples.

Sampling, weights, rendering and metrics are :class:`~frinr_nerfstudio.method.models.base.OccupancyModel`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor

from frinr_core.errors import InputError
from frinr_nerfstudio.method.fields.dvgo import CHUNK, DVGOField, DVGOFieldConfig
from frinr_nerfstudio.method.models.base import OccupancyModel, OccupancyModelConfig


@dataclass
class DVGOStageConfig:
    """Grid size, initial opacity, sample skipping and loss weights of one DVGO stage."""

    voxels: int
    """Voxels of the (final) grid; it also sets the base voxel size densities refer to."""
    alpha_init: float
    """Opacity of every voxel at the start of the stage."""
    fast_color_thres: float
    """Samples less opaque than this are dropped, and those with a lower weight get no colour."""
    weight_entropy_last: float
    """Entropy of the background transmittance: pushes each ray to be fully opaque or fully empty."""
    weight_rgbper: float
    """Weighted per-sample colour error: every sample, not just their blend, should match the pixel."""
    weight_tv_density: float = 0.0
    """Total variation of the density grid."""
    weight_tv_k0: float = 0.0
    """Total variation of the colour / feature grid."""


def coarse_stage() -> DVGOStageConfig:
    """DVGO's coarse stage: 100^3 voxels, alpha_init 1e-6, no skipping."""
    return DVGOStageConfig(
        voxels=100**3, alpha_init=1e-6, fast_color_thres=0.0, weight_entropy_last=0.01, weight_rgbper=0.1
    )


def fine_stage() -> DVGOStageConfig:
    """DVGO's fine stage: 160^3 voxels, alpha_init 1e-2, skipping below 1e-4; DVGO v2's TV weights."""
    return DVGOStageConfig(
        voxels=160**3, alpha_init=1e-2, fast_color_thres=1e-4, weight_entropy_last=1e-3, weight_rgbper=1e-2,
        weight_tv_density=1e-5, weight_tv_k0=1e-6,
    )  # fmt: skip


@dataclass
class DVGOModelConfig(OccupancyModelConfig):
    """DirectVoxGO, coarse then fine, with DVGO's settings (its Blender-scene defaults)."""

    _target: type = field(default_factory=lambda: DVGOModel)
    coarse: DVGOStageConfig = field(default_factory=coarse_stage)
    fine: DVGOStageConfig = field(default_factory=fine_stage)
    coarse_steps: int = 5000
    """Training steps of the coarse stage; the fine stage takes the rest (0: fine only, over the scene box)."""
    upscale_steps: tuple[int, ...] = (1000, 2000, 3000, 4000)
    """Fine-stage steps at which the grids double their voxel count (progressive scaling)."""
    stepsize: float = 0.5
    """Marching step in voxels of the current grid."""
    bbox_thres: float = 1e-3
    """Coarse opacity above which a voxel counts into the fine bounding box."""
    mask_cache_thres: float = 1e-3
    """Coarse opacity (max-pooled) below which a cell is known empty in the fine stage."""
    world_bound_scale: float = 1.05
    """Growth of the fine bounding box around the coarse geometry."""
    mask_resolution: int = 160
    """Cells per axis of the empty-space mask (the occupancy grid)."""
    upscale_shift: float = 1.0
    """DVGO lowers the density bias by this at each upscale, thinning what is not yet solid (0: pure resampling)."""
    mask_update_every: int = 1000
    """Fine steps between mask refreshes (at the middle of each period, as DVGO)."""
    contraction_levels: int = 4
    """Levels of the empty-space mask with contraction (level l covers the scene box scaled by 2**l)."""
    FR_HEADS = ("field.rgbnet", "field.density_head")
    field: DVGOFieldConfig = field(default_factory=DVGOFieldConfig)  # last: it shadows dataclasses.field below it


def check_schedule(config: DVGOModelConfig) -> None:
    """Impossible settings fail here in one line, not later inside a logarithm or a resize."""
    steps = config.upscale_steps
    if config.coarse_steps < 0 or any(s <= 0 for s in steps) or list(steps) != sorted(set(steps)):
        raise InputError(
            f"coarse_steps must be >= 0 and upscale_steps increasing and > 0, got {config.coarse_steps}, {steps}"
        )
    for name, stage in (("coarse", config.coarse), ("fine", config.fine)):
        if not 0 < stage.alpha_init < 1 or stage.voxels < 8:
            raise InputError(f"{name}.alpha_init must be in (0, 1) and {name}.voxels >= 8, got {stage}")


class DVGOModel(OccupancyModel):
    """DirectVoxGO's coarse-to-fine dense-grid radiance field, with an FR (or plain) colour MLP."""

    config: DVGOModelConfig
    field: DVGOField
    bounded_cone_angle = 0.0  # uniform steps, as DVGO

    def populate_modules(self) -> None:
        super().populate_modules()
        check_schedule(self.config)
        if dist.is_initialized() and dist.get_world_size() > 1:
            raise InputError("frinr-dvgo trains on one device: its grids change shape, which DDP cannot follow")
        box = self.scene_box.aabb.float()  # (2, 3)
        self.field = self.config.field.setup(scene_aabb=box, contract=self.config.contraction == "on")
        coarse = self.config.coarse
        self.field.start_stage(
            self.field.aabb.clone(), fine=False, voxels=coarse.voxels, voxels_base=coarse.voxels,
            alpha_init=coarse.alpha_init,
        )  # fmt: skip
        levels = self.config.contraction_levels if self.contracted else 1
        self.make_occupancy_grid(box.flatten(), self.config.mask_resolution, levels)

    # -- what the shared pipeline asks ---------------------------------------------------------------

    def stage(self) -> DVGOStageConfig:
        return self.config.fine if self.field.is_fine else self.config.coarse

    def render_step_size(self) -> float:
        return self.config.stepsize * self.field.voxel_size()

    def alpha_threshold(self) -> float:
        return self.stage().fast_color_thres

    def colour_threshold(self) -> float:
        return self.stage().fast_color_thres

    def get_param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        grids = [self.field.density.grid, self.field.k0.grid]
        heads = list(self.field.rgbnet.parameters())
        if self.field.density_head is not None:
            heads += list(self.field.density_head.parameters())
        return self.with_rendering_params({"grids": grids, "mlps": heads}, "mlps")

    # -- schedule ------------------------------------------------------------------------------------

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> list:
        optimizers = training_callback_attributes.optimizers

        def schedule(step: int) -> None:
            fine_step = step - self.config.coarse_steps
            if fine_step == 0:
                self.start_fine()
            elif fine_step in self.config.upscale_steps:
                self.upscale(self.config.upscale_steps.index(fine_step))
            else:
                every = self.config.mask_update_every
                if fine_step > 0 and (fine_step + every // 2) % every == 0:
                    self.refresh_mask()
                return
            if optimizers is not None:
                self.rebuild_optimizers(optimizers)

        return [
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1, func=schedule
            )
        ]

    def rebuild_optimizers(self, optimizers: Optimizers) -> None:
        """Point every optimizer at the current (new) grid parameters and clear all moments, as DVGO rebuilds its
        optimizer after a change of grid; the optimizer objects stay, so their learning-rate schedules go on."""
        for name, params in self.get_param_groups().items():
            optimizer = optimizers.optimizers[name]
            (group,) = optimizer.param_groups
            group["params"] = params
            optimizer.state.clear()
            optimizers.parameters[name] = params

    def fine_voxels(self, upscales_done: int) -> int:
        """Fine-grid voxel count after ``upscales_done`` upscales."""
        return self.config.fine.voxels // 2 ** (len(self.config.upscale_steps) - upscales_done)

    @torch.no_grad()
    def start_fine(self) -> None:
        """Coarse → fine: tight box and empty-space mask from the coarse density, then fresh fine grids."""
        coarse_alpha = self.field.node_alphas()  # (X, Y, Z) coarse opacity at the grid nodes
        nodes = self.field.node_positions()  # grid space
        active = nodes[coarse_alpha.flatten() > self.config.bbox_thres]
        if active.numel() == 0:
            CONSOLE.print("[yellow]DVGO: the coarse stage left no opaque voxel; the fine stage keeps the whole box")
            box = self.field.aabb.clone()
        else:
            box = torch.stack([active.amin(0), active.amax(0)])
            # at least one coarse voxel across: a single opaque layer of nodes would give an empty box
            half = ((box[1] - box[0]) / 2).clamp_min(self.field.voxel_size() / self.field.world_scale / 2)
            box = box.mean(0) + half * box.new_tensor([[-1.0], [1.0]])
            box = box + (box[1] - box[0]) * (self.config.world_bound_scale - 1) / 2 * box.new_tensor([[-1.0], [1.0]])
            if self.contracted:  # contracted space ends at ±2
                box = box.clamp(-2.0, 2.0)
        # DVGO's mask cache: coarse opacity max-pooled over one coarse voxel, looked up at the fine cells
        pooled = F.max_pool3d(coarse_alpha[None, None], kernel_size=3, stride=1, padding=1)  # (1, 1, X, Y, Z)
        grid = self.occupancy_grid
        if not self.contracted:  # the mask moves onto the fine box; a contracted one keeps covering the world
            grid.place(box)
        points = torch.cat([self.field.grid_space(c) for c in grid.cell_centres().split(CHUNK)])  # (M, 3)
        cells = self.field.unit_of_grid_space(points).flip(-1).reshape(1, 1, 1, -1, 3)
        occs = F.grid_sample(pooled, cells, mode="nearest", align_corners=True).flatten()
        opaque = occs >= self.config.mask_cache_thres if active.numel() else torch.ones_like(occs, dtype=bool)
        in_box = ((points >= box[0]) & (points <= box[1])).all(-1)  # a contracted mask also covers the world outside
        grid.set_cells(occs, opaque & in_box)

        fine = self.config.fine
        voxels = self.fine_voxels(0)
        self.field.start_stage(box, fine=True, voxels=voxels, voxels_base=fine.voxels, alpha_init=fine.alpha_init)
        CONSOLE.print(
            f"DVGO: fine stage in box {box.tolist()}, grid {self.field.density.resolution}, "
            f"{int(grid.binaries.sum())} / {grid.binaries.numel()} cells not known empty"
        )

    @torch.no_grad()
    def upscale(self, index: int) -> None:
        """Upscale number ``index`` of the fine grids, then a mask refresh (DVGO's ``scale_volume_grid``)."""
        self.field.upscale(self.fine_voxels(index + 1), shift=self.config.upscale_shift)
        self.refresh_mask()

    @torch.no_grad()
    def refresh_mask(self) -> None:
        """Drop cells whose max-pooled opacity fell below the fine ``fast_color_thres``; keep known-empty ones out."""
        grid = self.occupancy_grid
        r = grid.cells_per_axis
        alpha = self.field.alpha_at(grid.cell_centres()).view(grid.levels, 1, r, r, r)
        occs = F.max_pool3d(alpha, kernel_size=3, stride=1, padding=1).flatten()  # pooled within each level
        grid.set_cells(occs, grid.binaries.flatten() & (occs > self.config.fine.fast_color_thres))

    # -- losses --------------------------------------------------------------------------------------

    def get_loss_dict(self, outputs: dict, batch: dict, metrics_dict: dict | None = None) -> dict[str, Tensor]:
        losses = super().get_loss_dict(outputs, batch, metrics_dict)
        if not self.training:
            return losses
        stage, num_rays = self.stage(), outputs["rgb"].shape[0]
        if stage.weight_entropy_last > 0:
            background = (1 - outputs["accumulation"]).clamp(1e-6, 1 - 1e-6)  # (R, 1) transmittance left
            entropy = -(background * background.log() + (1 - background) * (1 - background).log()).mean()
            losses["entropy_last_loss"] = stage.weight_entropy_last * entropy
        if stage.weight_rgbper > 0:
            image = self.renderer_rgb.blend_background(batch["image"].to(self.device))  # (R, 3)
            error = (outputs["sample_rgb"] - image[outputs["sample_rays"]]).pow(2).sum(-1)  # (M,)
            losses["rgbper_loss"] = (
                stage.weight_rgbper * (error * outputs["sample_weights"][:, 0].detach()).sum() / num_rays
            )
        # DVGO's TV weight is per ray and scaled with the grid resolution (128 voxels per axis = 1)
        scale = max(self.field.density.resolution) / 128 / num_rays
        if stage.weight_tv_density > 0:
            losses["tv_density_loss"] = stage.weight_tv_density * scale * self.field.density.total_variation()
        if stage.weight_tv_k0 > 0:
            losses["tv_k0_loss"] = stage.weight_tv_k0 * scale * self.field.k0.total_variation()
        return losses
