"""Making "a tensor on the wrong device for a collective" visible without a GPU.

On a GPU machine, a tensor factory called without ``device=`` makes a CPU tensor,
and NCCL refuses CPU tensors: the crash appears only there. On a CPU machine the
same call makes a tensor on the (right) CPU device, so nothing fails. Two helpers
reproduce the GPU situation on CPU:

- :class:`ForeignDefaultDevice` sends factories called without a device from the
  repository's own code (lib/, utils/, models/) to the ``meta`` device, a stand-in
  for "not the training device";
- :func:`guard_collectives` makes every ``torch.distributed`` collective raise when
  a tensor it receives is not on the training device, as NCCL does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

ROOT = Path(__file__).resolve().parents[1]
OWN_CODE = tuple(str(ROOT / part) + "/" for part in ("lib", "utils", "models"))
FACTORIES = {
    torch.zeros,
    torch.ones,
    torch.empty,
    torch.full,
    torch.tensor,
    torch.arange,
    torch.linspace,
    torch.eye,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.as_tensor,
}


class ForeignDefaultDevice(TorchFunctionMode):
    """Device-less tensor factories in the repository's code make ``meta`` tensors."""

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict = None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(OWN_CODE):
                kwargs = {**kwargs, "device": "meta"}
        return func(*args, **kwargs)


def guard_collectives(device: torch.device) -> None:
    """Wrap this process's tensor collectives so that a tensor off ``device`` raises."""

    def check(name: str, real: Callable) -> Callable:
        def guarded(tensor, *args, **kwargs):
            tensors = tensor if isinstance(tensor, (list, tuple)) else [tensor]
            for t in tensors:
                if t.device != torch.device(device):
                    raise RuntimeError(f"{name}: tensor on {t.device}, training device {device} (NCCL would refuse it)")
            return real(tensor, *args, **kwargs)

        return guarded

    for name in ("all_reduce", "broadcast", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter"):
        setattr(dist, name, check(name, getattr(dist, name)))
