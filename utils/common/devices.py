"""Where training runs: the device, DataParallel's GPUs and its batch split, the model wrappers."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from utils.common.distributed import DistInfo
from utils.common.errors import ConfigError
from utils.common.logs import get_logger

log = get_logger(__name__)


def resolve_device(name: Optional[str]) -> torch.device:
    """``cuda`` when available unless told otherwise; a clear error for a missing GPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU is visible to PyTorch; use --device cpu")
    return device


def unwrap(model: nn.Module) -> nn.Module:
    """The FSANet inside DataParallel / DistributedDataParallel."""
    return getattr(model, "module", model)


def data_parallel_device(device: torch.device, gpus: List[int]) -> torch.device:
    """The GPU DataParallel keeps the model on (the first of ``--gpus``), after checking the ids."""
    count = torch.cuda.device_count()
    absent = [g for g in gpus if g >= count]
    if absent or len(set(gpus)) != len(gpus):
        raise ConfigError(
            f"--gpus {','.join(map(str, gpus))}: {count} GPUs are visible (ids 0..{count - 1}), each id may appear once"
        )
    if device.index is not None and device.index != gpus[0]:
        raise ConfigError(
            f"--device {device} but --gpus starts with {gpus[0]}: DataParallel keeps the model on the "
            "first of --gpus; drop --device or make them agree"
        )
    return torch.device("cuda", gpus[0])


def data_parallel_gpus(device: torch.device, gpus: Optional[List[int]], info: DistInfo) -> List[int]:
    """The GPUs nn.DataParallel splits each batch over (empty: no DataParallel)."""
    if info.enabled or device.type != "cuda":
        return []
    gpus = gpus if gpus is not None else list(range(torch.cuda.device_count()))
    return gpus if len(gpus) > 1 else []


def smallest_chunk(batch: int, replicas: int) -> int:
    """The smallest piece ``torch.chunk`` (DataParallel's scatter) cuts ``batch`` images into."""
    if replicas <= 1:
        return batch
    size = -(-batch // replicas)
    return batch % size or size


def wrap_model(model: nn.Module, device: torch.device, dp_gpus: List[int], info: DistInfo) -> nn.Module:
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if dp_gpus:
        log.info("nn.DataParallel over GPUs %s (the batch is split between them)", dp_gpus)
        return nn.DataParallel(model, device_ids=dp_gpus)
    return model
