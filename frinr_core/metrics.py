"""Image quality metrics (torchmetrics), with LPIPS that degrades to ``None`` offline."""

from __future__ import annotations

import functools
import logging

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from frinr_core.errors import first_line


def _nchw(image: Tensor) -> Tensor:  # (H, W, C) -> (1, C, H, W)
    return image.permute(2, 0, 1)[None].float()


def psnr(prediction: Tensor, target: Tensor) -> float:
    """PSNR in dB of (H, W, C) or (N, C) images in [0, 1]."""
    return float(peak_signal_noise_ratio(prediction.float(), target.float(), data_range=1.0))


def ssim(prediction: Tensor, target: Tensor) -> float:
    """SSIM of two (H, W, C) images in [0, 1] (Gaussian window 11, σ 1.5, as torchmetrics' default)."""
    return float(structural_similarity_index_measure(_nchw(prediction), _nchw(target), data_range=1.0))


@functools.cache
def load_lpips() -> torch.nn.Module | None:
    """torchmetrics' AlexNet LPIPS, or ``None`` (with one warning) when its weights cannot be had offline.

    Cached: the weights are looked up once per process, never once per metric call.
    """
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()
    except Exception as error:  # offline downloads fail with URLError, OSError, RuntimeError, ...
        reason = first_line(error)
        logging.getLogger("frinr").warning(f"LPIPS unavailable (AlexNet weights cannot be loaded: {reason}); null")
        return None


def lpips(prediction: Tensor, target: Tensor) -> float | None:
    """LPIPS (AlexNet) of two (H, W, C) images in [0, 1]; grayscale is replicated to RGB; None offline."""
    metric = load_lpips()
    if metric is None:
        return None
    expand = (lambda x: x.expand(-1, 3, -1, -1)) if prediction.shape[-1] == 1 else (lambda x: x)
    with torch.no_grad():
        return float(metric.to(prediction.device)(expand(_nchw(prediction)), expand(_nchw(target))))
