"""nerfstudio's built-in models build torchmetrics' LPIPS in ``populate_modules``, which downloads the AlexNet
weights and crashes offline. :func:`offline_lpips` lets ``frinr compare`` construct them anyway; our own models build
LPIPS lazily through ``frinr_core.metrics.load_lpips`` instead, which is also the one place availability is probed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from frinr_core import metrics


class MissingLpips(nn.Module):
    """Stands in for LPIPS when its weights cannot be had: NaN, so a missing metric never looks like a score."""

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:  # (N, 3, H, W) each -> scalar
        return torch.full((), float("nan"), device=preds.device)


@contextlib.contextmanager
def offline_lpips() -> Iterator[None]:
    """Within the block, nerfstudio models that build LPIPS get a :class:`MissingLpips` when its weights are missing.

    nerfstudio imports the class inside ``populate_modules``, so patching the torchmetrics module attribute reaches
    every built-in model. The patch is scoped, never process-wide. Use it around ``config.setup()`` /
    ``trainer.setup()`` / ``eval_setup()``; their ``lpips`` metric is then NaN.
    """
    import torchmetrics.image.lpip as lpip

    available = metrics.load_lpips() is not None  # the one probe (cached, warns once), before the class is swapped
    real = lpip.LearnedPerceptualImagePatchSimilarity

    def guarded(*args, **kwargs) -> nn.Module:
        return real(*args, **kwargs) if available else MissingLpips()

    lpip.LearnedPerceptualImagePatchSimilarity = guarded
    try:
        yield
    finally:
        lpip.LearnedPerceptualImagePatchSimilarity = real
