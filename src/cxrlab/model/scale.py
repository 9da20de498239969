"""Where training runs: one CPU process, one GPU, or several processes started by ``torchrun``.

``torchrun`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; then a process group is started (NCCL on GPUs,
gloo on CPUs) and the network is wrapped in DistributedDataParallel, whose all-reduce keeps the ranks'
weights identical. AMP and channels-last are turned on only on CUDA, where they pay; nothing here needs a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["Runtime", "start_runtime", "stop_runtime"]


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    amp: bool = False
    channels_last: bool = False
    distributed: bool = False

    def wrap(self, model: nn.Module, *, find_unused: bool = False) -> nn.Module:
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def start_runtime(threads: int = 0) -> Runtime:
    """The device and process group of this process; ``threads`` > 0 sets torch's CPU threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if threads > 0:
        torch.set_num_threads(threads)
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        device = torch.device("cuda", local) if cuda else torch.device("cpu")
        return Runtime(device, dist.get_rank(), dist.get_world_size(), cuda, cuda, True)
    device = torch.device("cuda") if cuda else torch.device("cpu")
    return Runtime(device, amp=cuda, channels_last=cuda)


def stop_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()
