"""Any method's config moved to this machine: ``frinr compare`` trains built-ins (which default to CUDA) here too."""

from __future__ import annotations

import torch

CPU_EVAL_CHUNK = 1 << 13
"""Rays per rendering chunk on the CPU at most. nerfacto's 32 768 held 12–14 GB resident while rendering a real
capture's test view here (BENCHMARKS.md, *captures*), and two such evaluations side by side were killed for memory;
a smaller chunk renders the same image."""


def adapt_to_machine(config) -> None:
    """Make any method's ``TrainerConfig`` run here, in place: CPU without CUDA, torch without tinycudann,
    nerfstudio's plain datamanager instead of the parallel one, which hangs in-process on the CPU, and rendering
    chunks of at most ``CPU_EVAL_CHUNK`` rays on the CPU."""
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager
    from nerfstudio.data.datamanagers.parallel_datamanager import ParallelDataManager
    from nerfstudio.utils.external import TCNN_EXISTS

    cuda = torch.cuda.is_available()
    config.machine.device_type = "cuda" if cuda else "cpu"
    config.mixed_precision = config.mixed_precision and cuda
    model = config.pipeline.model
    if hasattr(model, "implementation") and not (cuda and TCNN_EXISTS):
        model.implementation = "torch"
    if not cuda:
        model.eval_num_rays_per_chunk = min(model.eval_num_rays_per_chunk, CPU_EVAL_CHUNK)
    datamanager = config.pipeline.datamanager
    if not cuda and getattr(datamanager, "_target", None) is ParallelDataManager:
        datamanager._target = VanillaDataManager
