"""Our methods' pipelines: nerfstudio's vanilla and dynamic-batch pipelines, plus what our methods promise.

- The scene is validated whichever dataparser subcommand was picked (the default nerfstudio-data, or an
  explicit blender-data or instant-ngp-data): a bad scene is one line of error before any work
  (:mod:`frinr_nerfstudio.datacheck`).
- A model's ``contraction = "auto"`` (frinr-ngp, frinr-dvgo) is decided from the dataparser: off for
  blender-data, on for real captures.
- DDP also works on CPU (gloo), not only with CUDA device ids (:mod:`frinr_nerfstudio.distributed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.pipelines.dynamic_batch import DynamicBatchPipeline, DynamicBatchPipelineConfig

from frinr_nerfstudio.datacheck import use_checked_parser
from frinr_nerfstudio.distributed import DeviceAgnosticDDP


def resolve_contraction(config: VanillaPipelineConfig) -> None:
    """``contraction = "auto"`` → "off" for blender-data (an object on a blank background, all inside the scene
    box), "on" for any other dataparser (real captures: the world goes on beyond the box). In place."""
    model = config.model
    if getattr(model, "contraction", None) == "auto":
        model.contraction = "off" if isinstance(config.datamanager.dataparser, BlenderDataParserConfig) else "on"


class CheckedScene:
    """Pipeline mixin: swap in the validating dataparser and settle scene-dependent model settings before
    nerfstudio builds the datamanager and the model."""

    def __init__(self, config, *args, **kwargs):
        use_checked_parser(config.datamanager.dataparser)
        resolve_contraction(config)
        super().__init__(config, *args, **kwargs)


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
