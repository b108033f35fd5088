"""FSANet weights in the safetensors format: tensors and text metadata, no pickle.

A ``.safetensors`` file written here holds this project's key names (``lib.keymap``)
and, in its metadata, the architecture config, so it loads into the right FSANet
without any Python object being unpickled; reading is memory-mapped. The
safetensors package comes with timm, so reading needs no extra install.

Metadata keys (all strings, as the format requires): ``format``, ``format_version``,
``config`` (JSON of the FSANet constructor arguments), ``epoch`` and ``source``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from lib.keymap import FORMAT_NAME, FORMAT_VERSION, CheckpointError

PathLike = Union[str, os.PathLike]

SUFFIX = ".safetensors"


def _safetensors_torch():
    try:
        import safetensors.torch
    except ImportError:  # timm depends on it, so this means a broken environment
        raise CheckpointError(
            "reading or writing .safetensors needs the safetensors package: pip install safetensors "
            "(or pip install -e .[export])"
        ) from None
    return safetensors.torch


def is_safetensors(path: PathLike) -> bool:
    return Path(path).suffix.lower() == SUFFIX


def read_safetensors(path: PathLike) -> Dict[str, Any]:
    """A ``.safetensors`` file as a checkpoint dict :func:`lib.keymap.detect_layout` reads.

    Files written by :func:`save_safetensors` come back in the project layout with
    their config and ``weights_only=True`` (no optimiser, nothing to resume); any other
    safetensors file comes back as its bare state dict (its layout is then detected
    from the key names, e.g. the authors' names or timm's PVT-v2).
    """
    _safetensors_torch()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:  # memory-mapped
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001  (a truncated header raises SafetensorError, OSError …)
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(error).__name__}: {str(error)[:160]}); "
            "re-convert it with python -m lib.convert"
        ) from None
    if metadata.get("format") != FORMAT_NAME:
        return tensors
    try:
        version = int(metadata.get("format_version", "-1"))
        config = json.loads(metadata["config"]) if metadata.get("config") else None
        epoch = int(metadata["epoch"]) if metadata.get("epoch") not in (None, "") else None
    except (ValueError, KeyError) as error:
        raise CheckpointError(
            f"{path}: damaged FSANet metadata ({error}); re-convert it with python -m lib.convert"
        ) from None
    return {
        "format": FORMAT_NAME,
        "format_version": version,
        "config": config,
        "model": tensors,
        "epoch": epoch,
        "weights_only": True,
    }


def _metadata(config: Optional[Mapping[str, Any]], epoch: Optional[int], source: str) -> Dict[str, str]:
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in (config or {}).items()}  # as FSANet.config
    return {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(plain, sort_keys=True),
        "epoch": "" if epoch is None else str(int(epoch)),
        "source": source,
    }


def save_safetensors(
    path: PathLike,
    state_dict: Mapping[str, torch.Tensor],
    config: Optional[Mapping[str, Any]] = None,
    epoch: Optional[int] = None,
    source: str = "",
) -> Path:
    """Write ``state_dict`` (this project's key names) and its config to ``path``, atomically."""
    from utils.common.fileio import atomic_write_bytes

    st = _safetensors_torch()
    # safetensors refuses tensors that share storage or are not contiguous: give each its own copy
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    return atomic_write_bytes(path, st.save(tensors, metadata=_metadata(config, epoch, source)))


__all__ = ["SUFFIX", "is_safetensors", "read_safetensors", "save_safetensors"]
