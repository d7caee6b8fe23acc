"""What every occupancy-grid radiance-field model of the plugin shares, from packed samples to metrics.

Instant-NGP and DirectVoxGO differ in their fields and in how their occupancy grids are kept up to date;
everything between — marching rays through the grid, density, volume-rendering weights, colour, the
renderers, the loss and the evaluation metrics — is one code path, here:

    ray bundle → sampler (occupancy grid) → field density → weights → field colour → RGB / depth / accumulation

A subclass builds ``self.field`` (a nerfstudio ``Field`` with ``density_fn``, and ``lookups``: what its density
looked up that the training pass can replay through ``get_density(ray_samples, lookups)``, or None),
``self.occupancy_grid`` and ``self.sampler``, and says how long a marching step is (:meth:`render_step_size`).
DirectVoxGO also skips the colour of samples whose weight is negligible (:meth:`colour_threshold`), which Instant-NGP
does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import nerfacc
import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components.losses import MSELoss, scale_gradients_by_distance_squared
from nerfstudio.model_components.ray_samplers import VolumetricSampler
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio

from frinr_core import metrics
from frinr_core.errors import InputError
from frinr_nerfstudio.method.field_components.background import BackgroundField
from frinr_nerfstudio.method.object_sphere import find_object_sphere, ray_starts, train_cameras
from frinr_nerfstudio.method.samplers import (
    EARLY_STOP_EPS,
    NerfaccOccGrid,
    TorchOccGrid,
    adapt_grid_state,
    distortion_loss,
    make_occupancy_grid,
    render_weight_from_density,
    visible,
    visible_front_to_back,
)
from frinr_nerfstudio.nerfstudio_fixes import backends

CONTRACTED_CONE_ANGLE = 0.02
"""Step growth with contraction. Beyond the scene box the field sees space contracted (a point at distance r maps
to 2 - 1/r), so a step t * cone_angle long covers ~cone_angle / r of contracted space: the far steps of
instant-ngp's 0.004 are finer than anything the field can hold there, and made up most of a capture's samples.
Measured in BENCHMARKS.md (*captures-cone*)."""


@dataclass
class OccupancyModelConfig(ModelConfig):
    """Ray marching and rendering settings shared by the occupancy-grid models."""

    enable_collider: bool = False
    """The occupancy grid bounds the rays; no collider."""
    alpha_thre: float = 0.01
    """Drop samples with opacity below this."""
    alpha_thre_cap: bool = False
    """nerfacc's rule: lower alpha_thre to the grid's mean occupancy, so an untrained field keeps samples. In a real
    capture most cells are empty and the cap binds all along, keeping nearly transparent samples (BENCHMARKS.md)."""
    cone_angle: float | None = None
    """Step growth with distance (dt = t * cone_angle); 0 for uniform steps. None: the model's own for a bounded
    scene (instant-ngp's 0.004, DVGO's uniform steps), CONTRACTED_CONE_ANGLE with contraction."""
    contraction: Literal["auto", "on", "off"] = "auto"
    """Contract space beyond the scene box, for unbounded captures. auto: off for blender-data (an object on a
    blank background), on for every other dataparser (real captures); our pipelines resolve it, a model built
    without one takes off."""
    near_plane: float = 0.05
    """How near its camera a ray may start, in the scene's units (nerfstudio-data scales the cameras into [-1, 1]);
    nerfstudio's nerfacto and instant-ngp use 0.05."""
    object_sphere: Literal["auto", "off"] | tuple[float, float, float, float] = "auto"
    """Rays start no nearer than where they could first reach this sphere (centre x y z, radius): for cameras that
    stand around an object and look at it, the space just in front of each lens is seen by that camera alone, and
    each view paints floaters there that the views between show as haze (maryrose, 1 000 steps: +1.7 dB with rays
    starting 0.75-0.85 from the cameras; office, whose cameras do not surround an object: -0.4 dB with 0.65;
    BENCHMARKS.md, *near plane*; in 10 minutes +4.3 dB, *object sphere*). auto: found from the training cameras
    when they surround an object (:func:`~frinr_nerfstudio.method.object_sphere.find_object_sphere`), off otherwise
    and on blender-data. A viewer camera closer to the object still sees all of the sphere."""
    far_plane: float = 1e3
    background_color: Literal["auto", "random", "black", "white", "learned"] = "white"
    """What a ray sees after the grid. White matches blender-data, which composites its RGBA images on white; the
    occupancy grid can then keep empty space empty. 'random' needs RGBA ground truth (e.g. blender-data --alpha-color
    None). 'learned': a colour per direction (an environment map), for real captures, whose far surroundings would
    otherwise have to be painted as density inside the grid. 'auto': white for blender-data, learned for every other
    dataparser (frinr-ngp's default, measured in BENCHMARKS.md, *captures-sweep*); white without a dataparser."""
    distortion_loss_mult: float = 0.0
    """Weight of Mip-NeRF 360's distortion loss (nerfacto uses 0.002): pulls each ray's weight into a compact surface,
    so rays keep fewer samples. Off: on the office capture at 0.002 it saved 14 % of the samples per ray with no PSNR
    gain at 200 steps, and cost 0.49 dB at 0.01 (BENCHMARKS.md, *captures-sweep*)."""
    use_gradient_scaling: bool = False
    """Scale each sample's gradients by its squared distance from the camera, capped at 1 (nerfstudio's
    ``scale_gradients_by_distance_squared``, as nerfacto's option; Philip and Deschaintre, "Radiance Field Gradient
    Scaling for Unbiased Near-Camera Training"): space close to a camera is seen by few rays, so an unscaled loss lets
    each view explain itself with floaters in front of its own lens, which other views then look through. Off: at
    1 000 steps it cost maryrose 0.95 dB (its object is closer than a unit to every camera) and gave office 0.17 dB
    (BENCHMARKS.md, *captures-floaters*)."""
    camera_optimizer: CameraOptimizerConfig = field(default_factory=lambda: CameraOptimizerConfig(mode="off"))
    """nerfstudio's pose refinement (as nerfacto's, mode SO3xR3), for captures whose poses are noisy; trains in the
    'camera_opt' parameter group."""
    occupancy_backend: Literal["auto", "nerfacc", "torch"] = "auto"
    """nerfacc's CUDA estimator, the pure-torch one, or auto: nerfacc when the model is on CUDA and nerfacc's kernels
    load. Resolved when the run's config is saved, so a run loads with the grid it was trained with (a nerfacc grid
    becomes a torch grid, same cells, where nerfacc cannot run)."""

    FR_HEADS: ClassVar[tuple[str, ...]] = ()
    """The head configs (dotted paths from here) that FR may reparameterize: what :meth:`set_fr` switches."""

    def set_fr(self, on: bool) -> None:
        """Turn FR on or off in every head, in place: the one switch between a method and its baseline (the method
        registry and ``frinr export`` use it)."""
        for path in self.FR_HEADS:
            head = self
            for name in path.split("."):
                head = getattr(head, name)
            head.fr = on

    SETTLED: ClassVar[tuple[str, ...]] = (
        "contraction", "cone_angle", "background_color", "object_sphere", "occupancy_backend"
    )  # fmt: skip
    """Settings that ``settle`` turns from auto (or None) into what they mean for a scene and device."""

    def __setstate__(self, state: dict) -> None:
        """How config.yml loads (yaml, as pickle): a run recorded before a setting existed gets what it was trained
        with, not a later default. Rays started at the near plane before the object sphere (2026-12-07)."""
        self.__dict__.update({"object_sphere": "off"} | state)

    def adopt(self, recorded: OccupancyModelConfig) -> None:
        """Take the settled values of a recorded run for what is still unsettled here, in place: resuming a run
        (``--load-dir``) on another machine rebuilds the modules its checkpoint holds."""
        for path in self.SETTLED:
            *parents, name = path.split(".")
            mine, theirs = self, recorded
            for parent in parents:
                mine, theirs = getattr(mine, parent), getattr(theirs, parent)
            if getattr(mine, name) in ("auto", None):
                setattr(mine, name, getattr(theirs, name))

    def settle(self, dataparser: DataParserConfig | None, device: str | torch.device) -> None:
        """Replace every ``auto`` by what it means for this scene and device, in place. Called when a run's config is
        saved (so config.yml records it and every later load rebuilds the same modules) and when a pipeline is
        built; explicit settings stay (they may be a recorded run's). The object sphere reads the scene's training
        cameras (its transforms file, not its images)."""
        if dataparser is not None:
            synthetic = isinstance(dataparser, BlenderDataParserConfig)
            if self.contraction == "auto":
                self.contraction = "off" if synthetic else "on"
            if self.background_color == "auto":
                self.background_color = "white" if synthetic else "learned"
            if self.object_sphere == "auto":  # blender-data's scene box bounds its rays already
                found = None if synthetic else find_object_sphere(train_cameras(dataparser))
                self.object_sphere = "off" if found is None else tuple(round(value, 4) for value in found)
                if found is not None:
                    CONSOLE.log(f"object sphere {self.object_sphere}: the cameras surround an object (rays start "
                                f"there; --pipeline.model.object-sphere off to march from the near plane)")  # fmt: skip
        if self.cone_angle is None and self.contraction != "auto":  # recorded, so a later default cannot change a run
            self.cone_angle = CONTRACTED_CONE_ANGLE if self.contraction == "on" else self._target.bounded_cone_angle
        self.occupancy_backend = backends.occupancy_grid(self.occupancy_backend, device)


class OccupancyModel(Model):
    """Renders packed occupancy-grid samples of a field; subclasses build the field, grid and sampler."""

    config: OccupancyModelConfig
    use_nerfacc: bool = False
    """Weights by nerfacc's CUDA scan instead of the pure-torch one (set by subclasses using nerfacc's grid)."""

    def populate_modules(self) -> None:
        super().populate_modules()
        self.config.settle(None, self.kwargs.get("device", "cpu"))  # a no-op for a pipeline's (settled) config
        if not self.config.distortion_loss_mult >= 0:  # also NaN
            raise InputError(f"distortion_loss_mult must be a weight >= 0, got {self.config.distortion_loss_mult}")
        if not 0 <= self.config.near_plane < self.config.far_plane:  # also NaN
            raise InputError(
                f"rays need 0 <= near_plane < far_plane, got {self.config.near_plane} and {self.config.far_plane}"
            )
        sphere = self.config.object_sphere
        if isinstance(sphere, tuple) and not (len(sphere) == 4 and all(map(math.isfinite, sphere)) and sphere[3] > 0):
            raise InputError(f"object_sphere needs a finite centre x y z and a radius > 0, got {sphere}")
        colour = "white" if self.config.background_color == "auto" else self.config.background_color  # unsettled
        self.background = BackgroundField() if colour == "learned" else None  # rendered on black, the learned added
        self.renderer_rgb = RGBRenderer(background_color="black" if colour == "learned" else colour)
        self.camera_optimizer = self.config.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")
        self.renderer_accumulation = AccumulationRenderer()
        self.renderer_depth = DepthRenderer(method="expected")
        self.rgb_loss = MSELoss()

    def make_occupancy_grid(self, roi_aabb: torch.Tensor, resolution: int, levels: int, **kwargs) -> None:
        """``self.occupancy_grid`` and ``self.sampler`` on the backend ``settle`` chose for the model's device."""
        step, cone = self.render_step_size(), self.config.cone_angle
        if not step > 0 or (cone is not None and not cone >= 0):
            raise InputError(f"marching needs a render step > 0 and a cone angle >= 0, got {step} and {cone}")
        device = self.kwargs.get("device", "cpu")  # where nerfstudio's pipeline puts the model
        backend = backends.occupancy_grid(self.config.occupancy_backend, device)
        self.occupancy_grid: TorchOccGrid | NerfaccOccGrid = make_occupancy_grid(
            backend, roi_aabb, resolution, levels, **kwargs
        )
        self.use_nerfacc = backend == "nerfacc"
        # nerfacc's sampler tests visibility in training itself (one pass on the GPU). With the torch grid the sampler
        # only marches and the model tests (visible_samples), keeping the lookups for the training pass to replay.
        density_fn = self.field.density_fn if self.use_nerfacc else None
        self.sampler = VolumetricSampler(occupancy_grid=self.occupancy_grid, density_fn=density_fn)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Always strict. nerfstudio's pipeline retries a failed load with ``strict=False``, which would leave the
        layers a checkpoint lacks (e.g. FR layers of a run trained with other head settings) at their random init.
        The occupancy grid of either backend loads into the other (same cells)."""
        state_dict = dict(state_dict)
        adapt_grid_state(state_dict, "occupancy_grid.", self.occupancy_grid)
        expected = self.state_dict().keys()
        missing, unexpected = sorted(expected - state_dict.keys()), sorted(state_dict.keys() - expected)
        hint = self.checkpoint_mismatch(missing, unexpected) if missing or unexpected else None
        if hint:
            raise InputError(hint)
        if missing or unexpected:
            raise InputError(
                f"checkpoint does not fit this {type(self).__name__} (trained with other settings, e.g. which layers "
                f"are FR?): missing {missing[:3]}{' …' * (len(missing) > 3)}, "
                f"unexpected {unexpected[:3]}{' …' * (len(unexpected) > 3)}"
            )
        return super().load_state_dict(state_dict, strict=True, assign=assign)

    def with_rendering_params(self, groups: dict[str, list], mlp_group: str) -> dict[str, list]:
        """``groups`` plus what the shared rendering trains: the learned background (with the MLPs of ``mlp_group``)
        and the camera optimizer (its own 'camera_opt' group, when on)."""
        if self.background is not None:
            groups[mlp_group] = groups[mlp_group] + list(self.background.parameters())
        self.camera_optimizer.get_param_groups(groups)
        return groups

    def checkpoint_mismatch(self, missing: list[str], unexpected: list[str]) -> str | None:
        """What a checkpoint whose keys do not fit means, when a subclass can tell (e.g. another backend)."""
        return None

    @property
    def contracted(self) -> bool:
        """Whether the field contracts space beyond the scene box (and the occupancy grid has several levels)."""
        return self.field.contraction is not None

    def render_step_size(self) -> float:
        """Length of a marching step in world units."""
        raise NotImplementedError

    def alpha_threshold(self) -> float:
        """Samples less opaque than this are dropped while marching."""
        if self.config.alpha_thre_cap:
            return min(self.config.alpha_thre, self.occupancy_grid.mean_occupancy())
        return self.config.alpha_thre

    bounded_cone_angle: float = 0.004
    """The cone angle of a bounded scene unless the config sets one (nerfstudio's instant-ngp)."""

    def cone_angle(self) -> float:
        """Step growth with distance while marching (0: uniform steps)."""
        if self.config.cone_angle is not None:
            return self.config.cone_angle
        return CONTRACTED_CONE_ANGLE if self.contracted else self.bounded_cone_angle

    def colour_threshold(self) -> float:
        """Samples with a rendering weight at or below this get no colour evaluation (0: every sample does)."""
        return 0.0

    def render_weights(self, ray_samples: RaySamples, sigmas: Tensor, ray_indices: Tensor, num_rays: int) -> Tensor:
        """Volume-rendering weights (N,) of packed samples with densities ``sigmas`` (N,)."""
        starts, ends = ray_samples.frustums.starts[..., 0], ray_samples.frustums.ends[..., 0]  # (N,)
        if self.use_nerfacc:
            packed_info = nerfacc.pack_info(ray_indices, num_rays)
            return nerfacc.render_weight_from_density(starts, ends, sigmas, packed_info=packed_info)[0]
        return render_weight_from_density(starts, ends, sigmas, ray_indices, num_rays)[0]

    def visibility_in_one_pass(self, device: torch.device) -> bool:
        """On a GPU one pass over every candidate beats front-to-back rounds that each wait for the host."""
        return device.type != "cpu"

    def visible_samples(
        self, ray_samples: RaySamples, ray_indices: Tensor, num_rays: int, record: tuple[str, ...]
    ) -> tuple[RaySamples, Tensor, dict[str, Tensor]]:
        """Of every candidate the grid laid, the samples worth rendering (alpha >= the threshold, in front of where the
        ray turns opaque), their ray indices, and the ``record`` ed part of what the test computed for them: 'density'
        (N, 1) and the field's colour features 'embedding' for a view, the field's 'lookups' (``field.lookups``: grid
        features the training pass replays instead of looking them up again) for training. Each candidate's density
        is evaluated once, without gradients, in chunks of at most 2**18 samples."""
        starts, ends = ray_samples.frustums.starts[:, 0], ray_samples.frustums.ends[:, 0]  # (C,) each
        evaluated: dict[str, Tensor] = {}  # each (C, width), filled as the test evaluates

        def density_of(indices: Tensor) -> Tensor:  # (B,) candidate ids -> (B,) densities
            samples = ray_samples[indices]
            lookups = self.field.lookups(samples) if "lookups" in record else None
            density, embedding = self.field.get_density(samples, lookups)
            for name, value in (("density", density), ("embedding", embedding), ("lookups", lookups)):
                if name in record and value is not None:
                    if name not in evaluated:
                        evaluated[name] = value.new_zeros(len(ray_indices), value.shape[-1])
                    evaluated[name][indices] = value
            return density[:, 0]

        alpha_thre = self.alpha_threshold()
        if self.visibility_in_one_pass(ray_indices.device):
            candidates = torch.arange(len(ray_indices), device=ray_indices.device).split(1 << 18)
            sigmas = torch.cat([density_of(indices) for indices in candidates])  # (C,)
            keep = visible(starts, ends, sigmas, ray_indices, num_rays, alpha_thre, EARLY_STOP_EPS)
        else:
            keep = visible_front_to_back(ray_indices, starts, ends, num_rays, density_of, alpha_thre, EARLY_STOP_EPS)
        if not keep.any():  # a view of empty space: one sample, as nerfstudio pads an empty march, because its
            keep[0] = True  # renderers need one; of no density in a view (training evaluates its density again)
            if "density" in evaluated:
                evaluated["density"][0] = 0.0
        return ray_samples[keep], ray_indices[keep], {name: value[keep] for name, value in evaluated.items()}

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        num_rays = len(ray_bundle)
        if self.training:
            self.camera_optimizer.apply_to_raybundle(ray_bundle)  # nothing when its mode is off
        if isinstance(self.config.object_sphere, tuple):  # both samplers start rays at ray_bundle.nears
            ray_bundle.nears = ray_starts(ray_bundle.origins, self.config.object_sphere, self.config.near_plane)
            ray_bundle.fars = torch.full_like(ray_bundle.nears, self.config.far_plane)
        test_here = not self.training or self.sampler.density_fn is None  # or the sampler tested (nerfacc's)
        with torch.no_grad():  # the samples worth rendering, tested without gradients (in the sampler, or here)
            ray_samples, ray_indices = self.sampler(
                ray_bundle=ray_bundle,
                near_plane=self.config.near_plane,
                far_plane=self.config.far_plane,
                render_step_size=self.render_step_size(),
                alpha_thre=self.alpha_threshold(),
                cone_angle=self.cone_angle(),
            )
            if test_here:
                record = ("lookups",) if self.training else ("density", "embedding")
                ray_samples, ray_indices, evaluated = self.visible_samples(ray_samples, ray_indices, num_rays, record)
                density, embedding = evaluated.get("density"), evaluated.get("embedding")
        if self.training:
            frustums = ray_samples.frustums  # marched without gradients: the refined poses' (camera optimizer) rejoin
            frustums.origins, frustums.directions = ray_bundle.origins[ray_indices], ray_bundle.directions[ray_indices]
            lookups = evaluated.get("lookups") if test_here else None
            density, embedding = self.field.get_density(ray_samples, lookups)  # (N, 1), field-specific features
        if self.training and self.config.use_gradient_scaling:
            density = scale_gradients_by_distance_squared({"density": density}, ray_samples)["density"]
        weights = self.render_weights(ray_samples, density[..., 0], ray_indices, num_rays)[..., None]  # (N, 1)
        coloured, coloured_weights, coloured_rays = ray_samples, weights, ray_indices
        if self.colour_threshold() > 0:
            keep = weights[:, 0].detach() > self.colour_threshold()  # (N,)
            coloured, coloured_weights, coloured_rays = ray_samples[keep], weights[keep], ray_indices[keep]
            embedding = embedding[keep] if embedding is not None else None
        rgb_samples = self.field.get_outputs(coloured, density_embedding=embedding)[FieldHeadNames.RGB]  # (M, 3)
        if self.training and self.config.use_gradient_scaling:
            rgb_samples = scale_gradients_by_distance_squared({"rgb": rgb_samples}, coloured)["rgb"]
        rgb = self.renderer_rgb(rgb=rgb_samples, weights=coloured_weights, ray_indices=coloured_rays, num_rays=num_rays)
        depth = self.renderer_depth(
            weights=weights, ray_samples=ray_samples, ray_indices=ray_indices, num_rays=num_rays
        )
        accumulation = self.renderer_accumulation(weights=weights, ray_indices=ray_indices, num_rays=num_rays)
        if self.background is not None:  # what is left of each ray sees the learned background
            rgb = rgb + (1 - accumulation) * self.background(ray_bundle.directions).to(rgb.dtype)
        samples_per_ray = torch.zeros(num_rays, dtype=torch.long, device=ray_indices.device)
        outputs = {
            "rgb": rgb,
            "accumulation": accumulation,
            "depth": depth,
            "num_samples_per_ray": samples_per_ray.index_add_(0, ray_indices, torch.ones_like(ray_indices)),
        }
        if self.training:  # per-sample terms for losses on individual samples (e.g. DVGO's per-point RGB loss)
            outputs |= {"sample_rgb": rgb_samples, "sample_weights": coloured_weights, "sample_rays": coloured_rays}
        if self.training and self.config.distortion_loss_mult > 0:
            frustums = ray_samples.frustums
            outputs["distortion"] = distortion_loss(
                weights[:, 0], frustums.starts[:, 0], frustums.ends[:, 0], ray_indices, num_rays
            )
        return outputs

    def get_metrics_dict(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        image = self.renderer_rgb.blend_background(batch["image"].to(self.device))
        return {
            "psnr": peak_signal_noise_ratio(outputs["rgb"], image, data_range=1.0),
            "num_samples_per_batch": outputs["num_samples_per_ray"].sum(),
        }

    def get_loss_dict(self, outputs: dict, batch: dict, metrics_dict: dict | None = None) -> dict[str, Tensor]:
        pred_rgb, image = self.renderer_rgb.blend_background_for_loss_computation(
            pred_image=outputs["rgb"],
            pred_accumulation=outputs["accumulation"],
            gt_image=batch["image"].to(self.device),
        )
        losses = {"rgb_loss": self.rgb_loss(image, pred_rgb)}
        if "distortion" in outputs:
            losses["distortion_loss"] = self.config.distortion_loss_mult * outputs["distortion"]
        if self.training:
            self.camera_optimizer.get_loss_dict(losses)  # its pose regularizer, when on
        return losses

    def get_image_metrics_and_images(self, outputs: dict, batch: dict) -> tuple[dict[str, float], dict[str, Tensor]]:
        """PSNR and SSIM (torchmetrics), and LPIPS when its AlexNet weights are available (built on first use)."""
        image = self.renderer_rgb.blend_background(batch["image"].to(self.device))  # (H, W, 3)
        rgb = outputs["rgb"]  # (H, W, 3)
        image_metrics = {"psnr": metrics.psnr(rgb, image), "ssim": metrics.ssim(rgb, image)}
        lpips = metrics.lpips(rgb, image)
        if lpips is not None:
            image_metrics["lpips"] = lpips
        acc = colormaps.apply_colormap(outputs["accumulation"])
        depth = colormaps.apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        return image_metrics, {"img": torch.cat([image, rgb], dim=1), "accumulation": acc, "depth": depth}
