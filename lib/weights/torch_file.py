"""Reading a ``torch.save`` file once: unpickled with ``weights_only=True``, its tensors
memory-mapped, every archive member checked against its CRC-32 over the same mapping.

``torch.load`` does not check the zip archive's CRC-32s, so a flipped byte inside a tensor
would load as finite garbage. Here the file is mapped once: the CRC pass and the tensors
share the same pages, so the file's bytes come from the disk once (the old separate
``zipfile`` pass read every byte a second time).
"""

from __future__ import annotations

import mmap
import os
import pickle
import re
import zipfile
import zlib
from typing import Any, Union

import torch

from lib.weights.errors import CheckpointError

PathLike = Union[str, os.PathLike]

#: a zip local file header: 30 bytes, then the name and the extra field (lengths at 26 and 28).
_LOCAL_HEADER = 30


def _damaged(path: PathLike, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: damaged archive ({reason}): its bytes changed after it was written (a bad copy "
        "or download, a failing disk). Copy or download it again; a run's other checkpoints "
        "(best.pth, FSANet-N.pth) may be intact"
    )


def check_members(path: PathLike, archive: zipfile.ZipFile, data: memoryview) -> None:
    """Compare every member's bytes in ``data`` (the mapped file) with its CRC-32."""
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED:  # torch.save stores; anything else via zipfile
            with archive.open(info) as member:  # zipfile checks the CRC-32 when read to the end
                while member.read(1 << 22):
                    pass
            continue
        start = info.header_offset
        header = bytes(data[start : start + _LOCAL_HEADER])
        if len(header) < _LOCAL_HEADER or header[:4] != b"PK\x03\x04":
            raise _damaged(path, f"no local header for file {info.filename!r}")
        start += _LOCAL_HEADER + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
        with data[start : start + info.compress_size] as member:
            if len(member) != info.compress_size or zlib.crc32(member) != info.CRC:
                raise _damaged(path, f"Bad CRC-32 for file {info.filename!r}")


def check_archive(path: PathLike) -> None:
    """Raise :class:`CheckpointError` naming the member whose bytes do not match its CRC-32
    (``python -m lib.convert --check``; :func:`read_torch_file` does it while loading)."""
    _read(path, load=False)


def read_torch_file(path: PathLike, kind: str) -> Any:
    """The object a ``torch.save`` file holds (``weights_only=True``), its archive checked;
    ``kind``: :func:`lib.weights.kinds.file_kind` of the file."""
    if kind != "pytorch":  # the legacy pickle format (no CRCs, no mapping) or unknown bytes
        return _load(path, mmap=False)
    return _read(path, load=True)


def _read(path: PathLike, load: bool) -> Any:
    try:
        with zipfile.ZipFile(path) as archive, open(path, "rb") as handle:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                data = memoryview(mapped)
                try:
                    check_members(path, archive, data)
                finally:
                    data.release()
    except zipfile.BadZipFile as error:
        if "not a zip file" in str(error):  # no central directory: the end of the file is missing
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint, or a truncated one ({error}); copy or download it again"
            ) from None
        raise _damaged(path, str(error)) from None
    except CheckpointError:
        raise  # a damaged member, named by check_members
    except (OSError, ValueError) as error:  # unreadable, or mmap's refusal of an empty file
        raise CheckpointError(f"{path}: cannot be read ({error})") from None
    return _load(path, mmap=True) if load else None


def _load(path: PathLike, mmap: bool) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with errors that name the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "global" in text.lower():  # a class or function reference: code on unpickling
            named = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global ['`]?([\w.]+)", text)
            what = f"an object of class {named.group(1)}" if named else f"Python objects ({_first_line(text)})"
            raise CheckpointError(
                f"{path}: refused to load: besides tensors the file carries {what}, "
                "which would run code when unpickled. Only weights are read "
                "(torch.load(weights_only=True)). If the file comes from a source you trust, "
                "re-save its state dict: torch.save(obj['model'], 'clean.pth')."
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(text)})") from None
    except Exception as err:  # garbage bytes raise anything from KeyError to RuntimeError
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint, or a truncated one ({type(err).__name__}: {_first_line(str(err))})"
        ) from None


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")


def _first_line(text: str) -> str:
    """The informative line of a torch.load error (its boilerplate removed)."""
    for line in text.splitlines():
        line = line.replace("WeightsUnpickler error:", "").strip()
        if line and not line.startswith(_TORCH_BOILERPLATE):
            return line[:160]
    return text[:160]


__all__ = ["check_archive", "read_torch_file"]
