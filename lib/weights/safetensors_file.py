"""FSANet weights in the safetensors format: tensors and text metadata, no pickle.

A ``.safetensors`` file written here holds this project's key names (``lib.weights.keymap``)
and, in its metadata, the architecture config, so it loads into the right FSANet
without any Python object being unpickled; reading is memory-mapped. Its header (config
and every tensor's shape and dtype) is checked before any tensor is read. The
safetensors package comes with timm, so reading needs no extra install.

Metadata keys (all strings, as the format requires): ``format``, ``format_version``,
``config`` (JSON of the FSANet constructor arguments), ``epoch`` and ``source``.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch

from lib.configs import validate_config
from lib.weights.errors import CheckpointError
from lib.weights.keymap import FORMAT_NAME, FORMAT_VERSION

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


#: safetensors dtype names → torch dtypes (the ones FSANet files can hold).
SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

#: ``{key: (shape, dtype)}``: what a header says of each tensor.
Shapes = Dict[str, Tuple[Tuple[int, ...], torch.dtype]]


def safetensors_header(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """The ``(tensor entries, metadata)`` of a safetensors file, read without its tensors."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        size = Path(path).stat().st_size
        if length > size - 8:
            raise CheckpointError(f"{path}: truncated safetensors file (header of {length} bytes in {size})")
        header = json.loads(handle.read(length))
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata


def _fsanet_header(path: PathLike) -> Optional[Tuple[Dict[str, Any], Shapes]]:
    """``(validated config, shapes)`` from an FSANet file's header; None for another safetensors file."""
    try:
        entries, metadata = safetensors_header(path)
    except (ValueError, struct.error) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({error}); re-convert it with python -m lib.convert"
        ) from None
    if metadata.get("format") != FORMAT_NAME or not metadata.get("config"):
        return None
    try:
        config = json.loads(metadata["config"])
    except ValueError as error:
        raise CheckpointError(
            f"{path}: damaged FSANet metadata ({error}); re-convert it with python -m lib.convert"
        ) from None
    try:
        config = validate_config(config, str(path))
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    try:
        shapes = {
            key: (tuple(int(n) for n in entry["shape"]), SAFETENSORS_DTYPES[entry["dtype"]])
            for key, entry in entries.items()
        }
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: damaged safetensors header ({error!r})") from None
    return config, shapes


def read_safetensors(path: PathLike, before_read: Optional[Callable[..., None]] = None) -> Dict[str, Any]:
    """A ``.safetensors`` file as a checkpoint dict :func:`lib.weights.keymap.interpret` reads.

    Files written by :func:`save_safetensors` come back in the project layout with
    their config and ``weights_only=True`` (no optimiser, nothing to resume); any other
    safetensors file comes back as its bare state dict (its layout is then detected
    from the key names, e.g. the authors' names or timm's PVT-v2). ``before_read(config=config,
    found=shapes)`` (keywords) sees an FSANet file's validated config and tensor shapes before any tensor
    is read (the reader's shape check on the meta device).
    """
    _safetensors_torch()
    from safetensors import safe_open

    plan = _fsanet_header(path)
    if plan is not None and before_read is not None:
        before_read(config=plan[0], found=plan[1])
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
        epoch = int(metadata["epoch"]) if metadata.get("epoch") not in (None, "") else None
    except (ValueError, KeyError) as error:
        raise CheckpointError(
            f"{path}: damaged FSANet metadata ({error}); re-convert it with python -m lib.convert"
        ) from None
    return {
        "format": FORMAT_NAME,
        "format_version": version,
        "config": plan[0] if plan is not None else None,
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


__all__ = ["SUFFIX", "is_safetensors", "read_safetensors", "safetensors_header", "save_safetensors"]
