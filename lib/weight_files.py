"""What a weight file is, decided by its bytes (never its suffix), and whether it is intact.

* :func:`file_kind` reads the first bytes: a PyTorch zip archive (``torch.save``), a
  legacy PyTorch pickle, a safetensors file (an 8-byte header length then JSON) or
  an ONNX model (a protobuf whose first field is the IR version).
* :func:`check_archive` checks every member of a PyTorch zip archive against its CRC-32
  (``torch.load`` does not), so a flipped byte inside a tensor is caught before its
  weights give black maps.
* :func:`safetensors_plan` and :func:`check_shapes` validate a safetensors file's config
  and compare its tensor shapes and dtypes with the FSANet that config describes (built on
  the ``meta`` device, no memory) before any tensor is read or the model allocated.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from lib.keymap import FORMAT_NAME, CheckpointError

PathLike = Union[str, os.PathLike]

#: what each kind is called in messages, and the flag that takes it.
KIND_TEXT: Dict[str, Tuple[str, str]] = {
    "pytorch": ("a PyTorch checkpoint (torch.save)", "--pth_path"),
    "pytorch_legacy": ("a PyTorch checkpoint in the old pickle format", "--pth_path"),
    "safetensors": ("a safetensors weight file", "--pth_path"),
    "onnx": ("an ONNX model (python -m utils.deploy.export)", "--onnx (test.py, app.py)"),
}


def file_kind(path: PathLike) -> str:
    """``"pytorch"``, ``"pytorch_legacy"``, ``"safetensors"``, ``"onnx"`` or ``"unknown"``."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "pytorch"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pytorch_legacy"
    if len(head) >= 9:
        (length,) = struct.unpack("<Q", head[:8])
        if 2 <= length < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    # ONNX ModelProto: field 1 (ir_version, varint, tag 0x08) then usually producer_name (0x12)
    if head[:1] == b"\x08" and 1 <= head[1] <= 20 and head[2:3] in (b"\x12", b"\x1a", b"\x3a", b"\x42"):
        return "onnx"
    return "unknown"


def describe(kind: str) -> str:
    text, flag = KIND_TEXT.get(kind, ("not a weight file this project reads", ""))
    return f"{text}; {flag} takes it" if flag else text


def check_archive(path: PathLike) -> None:
    """Raise :class:`CheckpointError` naming the member whose bytes do not match its CRC-32."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:  # zipfile checks the CRC-32 when a member is read to its end
                    while member.read(1 << 22):
                        pass
    except zipfile.BadZipFile as error:
        if "not a zip file" in str(error):  # no central directory: the end of the file is missing
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint, or a truncated one ({error}); copy or download it again"
            ) from None
        raise CheckpointError(
            f"{path}: damaged archive ({error}): its bytes changed after it was written (a bad copy "
            "or download, a failing disk). Copy or download it again; a run's other checkpoints "
            "(best.pth, FSANet-N.pth) may be intact"
        ) from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from None


def check_shapes(
    expected: Mapping[str, torch.Tensor], shapes: Mapping[str, Tuple[Tuple[int, ...], torch.dtype]], path: Any
) -> None:
    """Compare ``{key: (shape, dtype)}`` with ``expected`` (the state dict of the FSANet the
    file's config describes, built on the meta device); one error lists missing, unexpected,
    mis-shaped and integer-for-float tensors."""
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    problems = []
    for key, tensor in expected.items():
        if key not in shapes:
            continue
        shape, dtype = shapes[key]
        if tuple(shape) != tuple(tensor.shape):
            problems.append(f"{key}: file {tuple(shape)} vs model {tuple(tensor.shape)}")
        elif tensor.is_floating_point() and not dtype.is_floating_point:
            problems.append(f"{key}: file {dtype} for a floating-point parameter")
    if missing or unexpected or problems:
        lines = [f"{path}: its tensors do not fit the FSANet its config describes"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape or dtype", problems)):
            if items:
                lines.append(f"  {len(items)} {title}: {', '.join(items[:6])}{' …' if len(items) > 6 else ''}")
        raise CheckpointError("\n".join(lines))


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


def safetensors_plan(path: PathLike) -> Optional[Tuple[Dict[str, Any], Dict[str, Tuple[Tuple[int, ...], torch.dtype]]]]:
    """``(validated config, {key: (shape, dtype)})`` of an FSANet safetensors file, read from
    its header only (no tensor); None for a safetensors file without FSANet metadata."""
    from lib.configs import validate_config

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


__all__ = ["check_archive", "check_shapes", "describe", "file_kind", "safetensors_header", "safetensors_plan"]
