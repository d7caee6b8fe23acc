"""``ns-train`` methods: ``frinr-ngp`` and ``frinr-dvgo`` (FR heads), and their baselines (plain linear layers).

Both come from one function, so the only difference is the ``fr`` switch of the MLP heads. The
settings are nerfstudio's instant-ngp (30k iterations, dynamic batch of 2**18 samples, Adam 1e-2 with
exponential decay); the device defaults to CUDA when there is one and to the CPU otherwise, so
``ns-train frinr-ngp --data DIR`` needs no flag on either. On the CPU the occupancy grid is coarser and the dynamic
batch a quarter (``CPU_TARGET_SAMPLES``). CPU users shorten with ``--max-num-iterations``.

DVGO: DirectVoxGO's settings for Blender scenes: 5k coarse + 20k fine steps of 8192 rays, Adam with learning
rate 0.1 for the voxel grids and 1e-3 for the MLP, decaying tenfold every 20k steps (Adam eps 1e-15: with
DVGO's 1e-8 the coarse grids, whose first gradients are ~1e-9, barely move). CPU users shorten with
``--max-num-iterations`` and ``--pipeline.model.coarse-steps`` (and smaller grids, e.g.
``--pipeline.model.fine.voxels``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import yaml
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from frinr_nerfstudio import nerfstudio_fixes
from frinr_nerfstudio.method.models.dvgo import DVGOModelConfig
from frinr_nerfstudio.method.models.ngp import NGPModelConfig
from frinr_nerfstudio.method.pipelines import FrinrDynamicBatchPipelineConfig, FrinrPipelineConfig
from frinr_nerfstudio.nerfstudio_fixes.datacheck import scene_dataparser

# Every ns-* command discovers methods (this module) before it trains or loads a checkpoint, so this is
# where nerfstudio learns what it lacks here: checkpoints that load under weights_only, one-line input
# errors, and CPU (gloo) workers for --machine.num-devices N.
nerfstudio_fixes.install()


@dataclass
class FrinrTrainerConfig(TrainerConfig):
    """nerfstudio's ``TrainerConfig``, writing into config.yml what every ``auto`` of our model means on this run's
    device and scene (``OccupancyModelConfig.settle``): later loads on any machine rebuild the same modules."""

    def save_config(self) -> None:
        model = self.pipeline.model
        recorded = self.load_dir.parent / "config.yml" if self.load_dir is not None else None
        if recorded is not None and recorded.is_file():  # resuming: build what the checkpoint was trained with
            previous = yaml.load(recorded.read_text(), Loader=yaml.Loader)
            if isinstance(previous, TrainerConfig) and type(previous.pipeline.model) is type(model):
                model.adopt(previous.pipeline.model)
        model.settle(scene_dataparser(self.pipeline.datamanager), self.machine.device_type)
        self.mixed_precision = self.mixed_precision and self.machine.device_type == "cuda"  # no autocast on the CPU
        super().save_config()


@dataclass
class FusedAdamOptimizerConfig(AdamOptimizerConfig):
    """nerfstudio's Adam with torch's fused step: the same update in one pass over each tensor instead of one pass
    per operation. Over frinr-ngp's 16.7 M hash-table entries that is 90 -> 15 ms a step on one CPU thread, a sixth
    of a CPU training step (BENCHMARKS.md, notes at the top); CUDA has the same fused kernel."""

    fused: bool = True

    def setup(self, params) -> torch.optim.Optimizer:
        optimizer = super().setup(params)
        optimizer.register_load_state_dict_post_hook(self._stay_fused)
        return optimizer

    def _stay_fused(self, optimizer: torch.optim.Optimizer) -> None:
        """Loading a state takes its settings: a checkpoint of an unfused Adam (runs before 2026-12-06) would turn
        this one unfused while it still tells a CUDA grad scaler it takes scaled steps, which the unfused step
        refuses. Back to this config's setting, with the step counts where a fused step keeps them."""
        for group in optimizer.param_groups:
            group["fused"] = self.fused
            for param in group["params"]:
                state = optimizer.state.get(param, {})
                if self.fused and "step" in state:
                    state["step"] = state["step"].to(dtype=torch.float32, device=param.device)


CPU_TARGET_SAMPLES = 1 << 16
"""frinr-ngp's samples per step on the CPU. A CPU budget of minutes is a few hundred steps at instant-ngp's 2**18,
and on a real capture the field is still hazy there: rays keep 30-70 samples, so few rays train and a view renders
slowly. A quarter of the batch costs a quarter of the time per step (the cost is per sample), so the same minutes
give four times the steps: the field sharpens sooner, keeps fewer samples per ray, and trains more rays per second
(BENCHMARKS.md, *captures*)."""


def camera_opt() -> dict:
    """nerfacto's optimizer for the pose refinement (used when a model's camera_optimizer is on)."""
    return {
        "optimizer": FusedAdamOptimizerConfig(lr=1e-3, eps=1e-15),
        "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=5000),
    }


def ngp_trainer_config(method_name: str) -> TrainerConfig:
    """frinr-ngp's ``TrainerConfig``: nerfstudio's instant-ngp settings, the field's FR heads."""
    cuda = torch.cuda.is_available()
    return FrinrTrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_save=2000,
        max_num_iterations=30000,
        mixed_precision=cuda,
        machine=MachineConfig(device_type="cuda" if cuda else "cpu"),
        pipeline=FrinrDynamicBatchPipelineConfig(
            target_num_samples=1 << 18 if cuda else CPU_TARGET_SAMPLES,
            datamanager=VanillaDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(),
                train_num_rays_per_batch=4096,
                eval_num_rays_per_batch=4096,
            ),
            model=NGPModelConfig(eval_num_rays_per_chunk=8192 if cuda else 2048),
        ),
        optimizers={
            "fields": {
                "optimizer": FusedAdamOptimizerConfig(lr=1e-2, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=200000),
            },
            "camera_opt": camera_opt(),
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 12),
        vis="viewer",
    )


def fr_and_baseline(name: str, make_config, description: str) -> tuple[MethodSpecification, MethodSpecification]:
    """The FR method and ``<name>-baseline``: one config function, the baseline switched by the model's ``set_fr``.

    ``frinr export`` relies on this naming to load a folded FR run as its baseline.
    """
    baseline = make_config(f"{name}-baseline")
    baseline.pipeline.model.set_fr(False)
    return (
        MethodSpecification(config=make_config(name), description=description),
        MethodSpecification(config=baseline, description=f"{name} with plain linear layers."),
    )


frinr_ngp, frinr_ngp_baseline = fr_and_baseline(
    "frinr-ngp", ngp_trainer_config, "Instant-NGP with Fourier reparameterized MLP heads (FR, CVPR 2024); CPU or CUDA."
)


DECAY_STEPS = 20000
"""DVGO's learning rates fall tenfold every this many steps."""


def _adam(lr: float, steps: int) -> dict:
    return {
        "optimizer": FusedAdamOptimizerConfig(lr=lr, eps=1e-15),
        "scheduler": ExponentialDecaySchedulerConfig(lr_final=lr * 0.1 ** (steps / DECAY_STEPS), max_steps=steps),
    }


def dvgo_trainer_config(method_name: str) -> TrainerConfig:
    """frinr-dvgo's ``TrainerConfig``: DirectVoxGO's settings, the field's FR rgbnet."""
    model = DVGOModelConfig(eval_num_rays_per_chunk=8192)
    steps = model.coarse_steps + 20000
    return FrinrTrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_save=2000,
        max_num_iterations=steps,
        mixed_precision=False,
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
        pipeline=FrinrPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(),
                train_num_rays_per_batch=8192,
                eval_num_rays_per_batch=4096,
            ),
            model=model,
        ),
        optimizers={"grids": _adam(1e-1, steps), "mlps": _adam(1e-3, steps), "camera_opt": camera_opt()},
        viewer=ViewerConfig(num_rays_per_chunk=1 << 12),
        vis="viewer",
    )


frinr_dvgo, frinr_dvgo_baseline = fr_and_baseline(
    "frinr-dvgo", dvgo_trainer_config, "DirectVoxGO (dense grids, coarse to fine) with an FR colour MLP."
)
