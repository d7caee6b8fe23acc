"""Everything frinr changes in nerfstudio's behaviour, applied by one :func:`install` that checks the version.

Every ``ns-*`` command discovers method entry points (``frinr_nerfstudio.method.config``) before it trains or loads a
checkpoint, so that module calls :func:`install` at import. Process-wide changes, and who they are for:

- checkpoints under torch's ``weights_only=True`` (:mod:`.checkpoints`): every method (built-ins' checkpoints hold
  the same numpy scalars), version independent;
- large freed CPU buffers kept for reuse (:mod:`.allocator`, glibc only): every method's CPU steps free and reallocate
  buffers of tens of MB, which glibc would otherwise return to the kernel and fault in again each step;
- :class:`~frinr_core.errors.InputError` as one line (:mod:`.errors`): raised only by our code, version independent;
- CPU workers for ``--machine.num-devices N`` (:mod:`.distributed`): only runs whose pipeline is ours (a built-in's
  CPU DDP stays stock), and only on the nerfstudio version it was written for, since it replaces a private worker.

Scoped, never process-wide: our pipelines validate the scene (:mod:`.datacheck`) and wrap DDP device-agnostically;
``frinr compare`` guards LPIPS offline (:mod:`.lpips`) and moves built-ins to this machine (:mod:`.machine`);
backends follow the model's device (:mod:`.backends`).
"""

from __future__ import annotations

import importlib.metadata
import logging

from frinr_nerfstudio.nerfstudio_fixes import allocator, checkpoints, distributed, errors

NERFSTUDIO_VERSION = "1.1.5"
"""The nerfstudio these fixes were written and tested against (pyproject pins it; a test checks that they agree)."""

PRIVATE_SYMBOLS = (
    ("nerfstudio.scripts.train", "_distributed_worker"),  # recognised and replaced for our CPU runs
    ("nerfstudio.scripts.train", "launch"),  # calls torch.multiprocessing.spawn, which we wrap
    ("nerfstudio.utils.comms", "LOCAL_PROCESS_GROUP"),  # set by our CPU worker, as the stock one does
    ("nerfstudio.pipelines.base_pipeline", "VanillaPipeline._model"),  # our DDP mixin wraps it (an attribute)
    ("nerfacc.cuda._backend", "_C"),  # the import probe of nerfacc's kernels (a module global)
    ("torch.utils.cpp_extension", "_get_build_directory"),  # whether our CPU hash-grid kernel is built yet
    ("torchmetrics.image.lpip", "LearnedPerceptualImagePatchSimilarity"),  # swapped by offline_lpips
)
"""Names of nerfstudio, nerfacc and torch that frinr reads or replaces although they are private or patched; a test
asserts each still exists, so a version bump fails loudly in one place."""

log = logging.getLogger("frinr")


def install() -> None:
    """Apply the process-wide fixes (idempotent). On another nerfstudio than :data:`NERFSTUDIO_VERSION`, the
    version-dependent one is skipped with one line saying so, instead of failing later."""
    checkpoints.allow_numpy_scalars()
    allocator.reuse_large_blocks()
    errors.print_input_errors_in_one_line()
    version = importlib.metadata.version("nerfstudio")
    if version == NERFSTUDIO_VERSION:
        distributed.route_cpu_workers()
    else:
        log.warning(
            "frinr: nerfstudio %s is not %s, which frinr's fixes were written for; not patched: CPU workers for "
            "--machine.num-devices (multi-process training on the CPU)",
            version,
            NERFSTUDIO_VERSION,
        )
