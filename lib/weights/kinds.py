"""What a weight file is, decided by its first bytes (never its suffix).

A PyTorch zip archive (``torch.save``), a legacy PyTorch pickle, a safetensors file (an
8-byte header length then JSON) or an ONNX model (a protobuf whose first field is the IR
version); anything else is ``"unknown"``.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, Tuple, Union

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
    """A kind in words, with the flag that takes it."""
    text, flag = KIND_TEXT.get(kind, ("not a weight file this project reads", ""))
    return f"{text}; {flag} takes it" if flag else text


__all__ = ["KIND_TEXT", "describe", "file_kind"]
