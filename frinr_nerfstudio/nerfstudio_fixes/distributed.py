"""nerfstudio's own multi-process training (``--machine.num-devices N``) for our methods, GPU or CPU.

Stock nerfstudio 1.1.5 assumes CUDA twice on this path: its spawned worker asserts a GPU before
joining the process group, and its pipeline hands ``device_ids`` to DDP, which CPU modules reject.
:func:`route_cpu_workers` gives the spawn a worker that joins a gloo group on CPU for runs of our pipelines (CUDA runs
and other methods' runs stay on the stock worker); :class:`DeviceAgnosticDDP` makes our pipelines
(:mod:`frinr_nerfstudio.method.pipelines`) wrap DDP with device ids only on CUDA.

What keeps ranks consistent: DDP broadcasts rank 0's parameters at wrap time (an in-place copy, which
invalidates every FourierLinear's cached weight) and averages gradients before each optimizer step, so
coefficients, and the weights cached from them, stay identical; it also broadcasts rank 0's buffers
before every forward, so all ranks march rays through rank 0's occupancy grid.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from nerfstudio.utils import comms
from torch.nn.parallel import DistributedDataParallel as DDP

DEFAULT_TIMEOUT = timedelta(minutes=30)  # nerfstudio's


def _worker(
    local_rank: int,
    main_func,
    world_size: int,
    num_devices_per_machine: int,
    machine_rank: int,
    dist_url: str,
    config,
    timeout: timedelta = DEFAULT_TIMEOUT,
    device_type: str = "cpu",
):
    """nerfstudio's spawned worker without its GPU assertions: join a gloo group, then train."""
    global_rank = machine_rank * num_devices_per_machine + local_rank
    dist.init_process_group("gloo", init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout)
    for machine in range(world_size // num_devices_per_machine):
        group = dist.new_group(list(range(machine * num_devices_per_machine, (machine + 1) * num_devices_per_machine)))
        if machine == machine_rank:
            comms.LOCAL_PROCESS_GROUP = group
    output = main_func(local_rank, world_size, config, global_rank)
    comms.synchronize()
    dist.destroy_process_group()
    return output


def _is_stock_worker(fn) -> bool:
    return getattr(fn, "__module__", "") == "nerfstudio.scripts.train" and fn.__name__ == "_distributed_worker"


def _ours_on_cpu(args: tuple) -> bool:
    """The stock worker's arguments (main_func, world_size, devices per machine, machine rank, url, config, timeout,
    device type) describe a CPU run of one of our pipelines."""
    if len(args) < 8 or args[-1] == "cuda":
        return False
    pipeline = getattr(args[5].pipeline, "_target", object)
    return isinstance(pipeline, type) and issubclass(pipeline, DeviceAgnosticDDP)


def route_cpu_workers() -> None:
    """Route ``ns-train``'s CPU process spawn of our methods through :func:`_worker` (idempotent).

    ``nerfstudio.scripts.train`` discovers plugins while it is still being imported, so its functions
    cannot be replaced from here; its ``launch`` calls ``torch.multiprocessing.spawn`` at run time, and
    that call is where a CPU run of our pipelines is redirected (CUDA runs keep the stock worker and NCCL, other
    methods the stock worker).
    """
    if getattr(mp.spawn, "frinr", False):
        return
    stock_spawn = mp.spawn

    def spawn(fn, args=(), *rest, **kwargs):
        if _is_stock_worker(fn) and _ours_on_cpu(args):
            fn = _worker
        return stock_spawn(fn, args, *rest, **kwargs)

    spawn.frinr = True
    mp.spawn = spawn


class DeviceAgnosticDDP:
    """Pipeline mixin: build the pipeline unwrapped, then wrap DDP with device ids only on CUDA.

    Stock pipelines wrap DDP themselves with ``device_ids=[local_rank]``, which CPU modules reject.
    """

    def __init__(self, config, device, test_mode="val", world_size: int = 1, local_rank: int = 0, grad_scaler=None):
        super().__init__(config, device, test_mode, world_size=1, local_rank=local_rank, grad_scaler=grad_scaler)
        self.world_size = world_size
        if world_size > 1:
            cuda = torch.device(device).type == "cuda"
            self._model = DDP(self._model, device_ids=[local_rank] if cuda else None, find_unused_parameters=True)
            comms.synchronize()
