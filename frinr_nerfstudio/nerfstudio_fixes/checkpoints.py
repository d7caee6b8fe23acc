"""Checkpoints of every nerfstudio method load under torch's default ``weights_only=True`` (torch >= 2.6).

nerfstudio 1.1.5 saves the step, pipeline state, optimizers, schedulers and grad scaler; its exponential/cosine
schedulers compute learning rates with numpy, so ``_last_lr`` and the optimizers' ``lr`` are pickled as numpy float64
scalars, and ``ns-eval``, ``ns-viewer --load-config``, ``ns-render`` and ``ns-train --load-dir`` then fail to load
them. Exactly the three globals such a scalar needs are allow-listed (found by saving a real nerfacto checkpoint and
unpickling it); every other global still fails, so ``weights_only`` keeps protecting the user. Meant for every
method, built-ins included: their checkpoints have the same scalars.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy._core.multiarray import scalar  # numpy 2's name; numpy 1.26 provides it as an alias

SAFE_GLOBALS = (scalar, np.dtype, np.dtypes.Float64DType)
"""What a numpy float64 scalar (a scheduler's learning rate) unpickles through; nothing else is needed."""


def allow_numpy_scalars() -> None:
    torch.serialization.add_safe_globals(list(SAFE_GLOBALS))
