"""What stock nerfstudio 1.1.5 breaks on a current, offline machine, fixed without editing nerfstudio.

1. torch >= 2.6 loads with ``weights_only=True`` by default, and nerfstudio's checkpoints (``Trainer.
   save_checkpoint``: step, pipeline state, optimizers, schedulers, grad scaler) then fail to load in
   ``ns-eval``, ``ns-viewer --load-config``, ``ns-render`` and ``ns-train --load-dir``: nerfstudio's
   exponential/cosine schedulers compute learning rates with numpy, so ``_last_lr`` and the optimizers'
   ``lr`` are pickled as numpy float64 scalars. :func:`install` allow-lists exactly the three globals
   such a scalar needs (found by saving a real nerfacto checkpoint and unpickling it); every other
   global still fails, so ``weights_only`` keeps protecting the user.

   Timing: every ``ns-*`` script imports ``nerfstudio.configs.method_configs`` (directly or through
   ``nerfstudio.utils.eval_utils``) at module import, which loads each ``nerfstudio.method_configs``
   entry point, so ``frinr_nerfstudio.config`` calling :func:`install` at import runs before any
   ``torch.load``.

2. An uncaught :class:`~frinr_core.errors.InputError` (a bad scene found by ``datacheck``) would end an
   ``ns-*`` command with a traceback; :func:`install` makes it one line on stderr (exit status 1), as
   ``frinr`` prints it. Every other exception keeps its traceback.

3. Built-in methods default to CUDA: :func:`adapt_to_machine` moves any method's config to this
   machine (device, mixed precision, torch implementations instead of tiny-cuda-nn, nerfstudio's
   plain datamanager instead of the parallel one, which hangs in-process on CPU).

4. nerfstudio's built-in models build torchmetrics' LPIPS in ``populate_modules``, which downloads the
   AlexNet weights and crashes offline. :func:`offline_lpips` lets ``frinr compare`` construct them
   anyway (our own models use ``frinr_core.metrics.load_lpips`` lazily instead).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Iterator

import numpy as np
import torch
from numpy._core.multiarray import scalar  # numpy 2's name; numpy 1.26 provides it as an alias
from torch import Tensor, nn

from frinr_core.errors import InputError, first_line

CHECKPOINT_SAFE_GLOBALS = (scalar, np.dtype, np.dtypes.Float64DType)
"""What a numpy float64 scalar (a scheduler's learning rate) unpickles through; nothing else is needed."""


def _print_input_errors(previous):
    def hook(kind, error, traceback) -> None:
        if issubclass(kind, InputError):
            print(f"frinr: error: {first_line(error)}", file=sys.stderr)
        else:
            previous(kind, error, traceback)

    hook.frinr = True
    return hook


def install() -> None:
    """Load nerfstudio checkpoints under ``weights_only=True``, print InputErrors as one line; idempotent."""
    torch.serialization.add_safe_globals(list(CHECKPOINT_SAFE_GLOBALS))
    if not getattr(sys.excepthook, "frinr", False):
        sys.excepthook = _print_input_errors(sys.excepthook)


class MissingLpips(nn.Module):
    """Stands in for LPIPS when its weights cannot be had: NaN, so a missing metric never looks like a score."""

    def forward(self, preds: Tensor, target: Tensor) -> Tensor:  # (N, 3, H, W) each -> scalar
        return torch.full((), float("nan"), device=preds.device)


@functools.cache
def _lpips_weights_available(lpips_class: type) -> bool:
    """Whether AlexNet's LPIPS weights load (cached or downloadable); asked once, warns once when not."""
    try:
        lpips_class(net_type="alex")
        return True
    except Exception as error:  # offline downloads fail with URLError, OSError, RuntimeError, ...
        reason = first_line(error)
        logging.getLogger("frinr").warning(f"LPIPS unavailable (AlexNet weights cannot be loaded: {reason}); NaN")
        return False


@contextlib.contextmanager
def offline_lpips() -> Iterator[None]:
    """Within the block, nerfstudio models that build LPIPS get a :class:`MissingLpips` when offline.

    nerfstudio imports the class inside ``populate_modules``, so patching the torchmetrics module
    attribute reaches every built-in model. The patch is scoped, never process-wide, so
    ``frinr_core.metrics.load_lpips`` keeps returning ``None`` offline as documented. Use it around
    ``config.setup()`` / ``trainer.setup()`` / ``eval_setup()``; their ``lpips`` metric is then NaN.
    """
    import torchmetrics.image.lpip as lpip

    real = lpip.LearnedPerceptualImagePatchSimilarity

    def guarded(*args, **kwargs) -> nn.Module:
        return real(*args, **kwargs) if _lpips_weights_available(real) else MissingLpips()

    lpip.LearnedPerceptualImagePatchSimilarity = guarded
    try:
        yield
    finally:
        lpip.LearnedPerceptualImagePatchSimilarity = real


def adapt_to_machine(config) -> None:
    """Make any method's ``TrainerConfig`` run here, in place: CPU without CUDA, torch without tinycudann."""
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager
    from nerfstudio.data.datamanagers.parallel_datamanager import ParallelDataManager
    from nerfstudio.utils.external import TCNN_EXISTS

    cuda = torch.cuda.is_available()
    config.machine.device_type = "cuda" if cuda else "cpu"
    config.mixed_precision = config.mixed_precision and cuda
    model = config.pipeline.model
    if hasattr(model, "implementation") and not (cuda and TCNN_EXISTS):
        model.implementation = "torch"
    datamanager = config.pipeline.datamanager
    if not cuda and getattr(datamanager, "_target", None) is ParallelDataManager:
        datamanager._target = VanillaDataManager
