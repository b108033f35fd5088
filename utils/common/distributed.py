"""Process-group setup for training under ``torchrun`` (DistributedDataParallel).

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with
``WORLD_SIZE > 1`` one process drives one GPU (NCCL) or one CPU worker (gloo).

One backend per process group, and every tensor a collective receives lives on
the process's training device (``DistInfo.device``): NCCL takes CUDA tensors
only, so a CPU tensor would crash there and nowhere else. A second, gloo group
for CPU tensors (``"cpu:gloo,cuda:nccl"``) would also work, but it needs gloo's
own connections between machines; keeping the tensors on the device needs
nothing. :func:`all_reduce_sum` checks the device on every backend, so the
mistake shows in CPU runs too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist

from utils.common.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``enabled`` only under a launcher with WORLD_SIZE > 1."""

    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    #: where the tensors given to collectives must live: cuda:LOCAL_RANK (NCCL) or cpu (gloo).
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_distributed() -> bool:
    """True under torchrun (or any launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (NCCL on GPUs, gloo on CPUs)."""
    if not launched_distributed():
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    world_size = int(os.environ["WORLD_SIZE"])
    device = torch.device("cpu")
    if device_type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                "start at most one process per GPU (torchrun --nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # before the group: NCCL and all_gather_object use the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(True, rank, local_rank, world_size, device)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        # NCCL's barrier guesses the GPU unless told; tell it (no guess, no warning)
        dist.barrier(device_ids=[info.device.index]) if info.device.type == "cuda" else dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over processes (in place; a no-op without DDP).

    Under DDP, raises ``ValueError`` when ``tensor`` is not on ``info.device`` on every
    backend, so that a tensor NCCL would refuse is named on any machine.
    """
    if info.enabled:
        if tensor.device != info.device:
            raise ConfigError(
                f"all_reduce_sum: tensor on {tensor.device}, but the collectives of this process run "
                f"on {info.device}; create it there (device=...)"
            )
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every process's ``obj`` (rank order); ``[obj]`` without DDP."""
    if not info.enabled:
        return [obj]
    gathered: List[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
