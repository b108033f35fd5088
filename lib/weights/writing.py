"""Writing weights: this project's checkpoint format (``torch.save``) and a ``save_pretrained``
folder (``model.safetensors`` + ``config.json``); every write is atomic, read back by
:mod:`lib.weights.reader`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from lib.weights.keymap import FORMAT_NAME, FORMAT_VERSION
from lib.weights.safetensors_file import read_safetensors, save_safetensors
from lib.weights.sources import CONFIG_NAME, WEIGHTS_NAME
from utils.common.fileio import atomic_save, atomic_write_text

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
        "args": {k: plain(v) for k, v in (args or {}).items()},
        **extra,
    }


def plain(value: Any) -> Any:
    """Values ``weights_only`` loading accepts: paths and other objects become strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def save_checkpoint(path: PathLike, model: nn.Module, **kwargs: Any) -> Path:
    """Write :func:`make_checkpoint` atomically to ``path``; returns the path."""
    atomic_save(make_checkpoint(model, **kwargs), path)
    return Path(path)


def write_pretrained(folder: PathLike, model: Any, epoch: Optional[int] = None, source: str = "") -> Path:
    """``model.safetensors`` and ``config.json`` of ``model`` into ``folder`` (the model card:
    :func:`lib.weights.model_card.model_card`); the weights are read back and compared bit for bit."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = model.state_dict()
    save_safetensors(folder / WEIGHTS_NAME, state_dict, model.config, epoch, source=source or "save_pretrained")
    atomic_write_text(folder / CONFIG_NAME, json.dumps(model.config, indent=2, sort_keys=True) + "\n")
    written = read_safetensors(folder / WEIGHTS_NAME)["model"]
    if set(written) != set(state_dict) or any(not torch.equal(written[k], v) for k, v in state_dict.items()):
        raise OSError(f"{folder / WEIGHTS_NAME}: read back differs from the model; the disk may be faulty")
    return folder


__all__ = ["make_checkpoint", "save_checkpoint", "write_pretrained"]
