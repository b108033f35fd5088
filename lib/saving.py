"""Writing this project's checkpoint format (read back by ``lib.checkpoint``); every write is atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from lib.keymap import FORMAT_NAME, FORMAT_VERSION
from utils.common.fileio import atomic_save

PathLike = Union[str, os.PathLike]


def make_checkpoint(
    model: nn.Module,
    epoch: int = 0,
    optimizer: Optional[torch.optim.Optimizer] = None,
    args: Optional[Mapping[str, Any]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """The project's checkpoint dict (format :data:`FORMAT_VERSION`).

    Keys: ``format``, ``format_version``, ``config`` (the FSANet constructor
    arguments), ``model`` (state dict, no ``module.``), ``epoch``, ``optimizer``
    (state dict or None), ``args`` (plain values only), plus ``extra`` (LR
    scheduler, AMP scaler, RNG states, … added by the training script).
    """
    model = getattr(model, "module", model)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": dict(getattr(model, "config", {})),
        "model": model.state_dict(),
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "args": {k: _plain(v) for k, v in (args or {}).items()},
        **extra,
    }


def _plain(value: Any) -> Any:
    """Values ``weights_only`` loading accepts: paths and other objects become strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def save_checkpoint(path: PathLike, model: nn.Module, **kwargs: Any) -> Path:
    """Write :func:`make_checkpoint` atomically to ``path``; returns the path."""
    atomic_save(make_checkpoint(model, **kwargs), path)
    return Path(path)
