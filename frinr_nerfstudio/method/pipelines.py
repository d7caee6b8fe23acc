"""Our methods' pipelines: nerfstudio's vanilla and dynamic-batch pipelines, plus what our methods promise.

- The scene is validated whichever dataparser subcommand was picked (the default nerfstudio-data, or an
  explicit blender-data or instant-ngp-data): a bad scene is one line of error before any work
  (:mod:`frinr_nerfstudio.nerfstudio_fixes.datacheck`).
- Every ``auto`` of our model configs is decided before the model is built: contraction from the dataparser (off
  for blender-data, on for real captures), backends and grid sizes from the device the pipeline is given
  (``OccupancyModelConfig.settle``).
- DDP also works on CPU (gloo), not only with CUDA device ids (:mod:`frinr_nerfstudio.nerfstudio_fixes.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.pipelines.dynamic_batch import DynamicBatchPipeline, DynamicBatchPipelineConfig

from frinr_nerfstudio.nerfstudio_fixes.datacheck import scene_dataparser, use_checked_parser
from frinr_nerfstudio.nerfstudio_fixes.distributed import DeviceAgnosticDDP


class CheckedScene:
    """Pipeline mixin: swap in the validating dataparser and settle the model's scene- and device-dependent settings
    before nerfstudio builds the datamanager and the model."""

    def __init__(self, config: VanillaPipelineConfig, device, *args, **kwargs):
        use_checked_parser(config.datamanager.dataparser)
        config.model.settle(scene_dataparser(config.datamanager), device)
        super().__init__(config, device, *args, **kwargs)


class FrinrPipeline(CheckedScene, DeviceAgnosticDDP, VanillaPipeline):
    """nerfstudio's VanillaPipeline: checked scene, DDP on CPU too."""


class FrinrDynamicBatchPipeline(CheckedScene, DeviceAgnosticDDP, DynamicBatchPipeline):
    """nerfstudio's DynamicBatchPipeline (Instant-NGP's sample-count batching): checked scene, DDP on CPU too."""


@dataclass
class FrinrPipelineConfig(VanillaPipelineConfig):
    _target: type = field(default_factory=lambda: FrinrPipeline)


@dataclass
class FrinrDynamicBatchPipelineConfig(DynamicBatchPipelineConfig):
    _target: type = field(default_factory=lambda: FrinrDynamicBatchPipeline)
