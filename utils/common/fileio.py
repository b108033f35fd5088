"""Writing files safely: one atomic write, and checking an output folder before any work.

Every output goes through a temporary file in the target's folder, is flushed to
disk and then renamed over the target, so a kill or a full disk never leaves a
truncated file under the final name; the temporary file is removed on failure.
Files get the usual permissions (0666 less the process umask), not mkstemp's 0600.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union

from utils.common.errors import FSANetError

PathLike = Union[str, os.PathLike]

#: the prefix and suffix of this module's temporary files (stale ones are safe to delete).
TMP_PREFIX, TMP_SUFFIX = ".", ".tmp"


class OutputError(FSANetError):
    """An output location that cannot be written; the message names it and the flag."""


def temporary_name(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, fsync, rename to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp.exists():
            tmp.unlink()
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            kept = f"the previous {path.name} is intact" if path.exists() else "nothing was written"
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path}; {kept}") from None
        raise
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


class _RecordingWriter:
    """A file handle that keeps the exception its ``write`` raised: torch's zip writer
    turns it into ``RuntimeError: ... unexpected pos``, and the real cause (a full disk,
    an I/O error) is what the user must be told."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except BaseException as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.handle.flush()

    def __getattr__(self, name: str) -> Any:  # fileno, tell, … of the real handle
        return getattr(self.handle, name)


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` through :func:`atomic_write`: a kill or a full disk
    during the write never leaves a truncated file at ``path``; a write error comes out
    as itself (``OSError``), not as torch's ``RuntimeError``."""

    import torch  # here, not at the top: eval.py and the scripts' -h need no torch

    def write(handle: BinaryIO) -> None:
        recorder = _RecordingWriter(handle)
        try:
            torch.save(obj, recorder)
        except RuntimeError:
            if recorder.error is not None:
                raise recorder.error from None
            raise

    atomic_write(path, write)


def atomic_copy(source: PathLike, target: PathLike) -> Path:
    """Give ``target`` the content of ``source`` atomically: a hard link when the file
    system allows (no extra disk; later replacing ``source`` leaves ``target`` as
    it is), else a copy; either goes through a temporary name and ``os.replace``."""
    source, target = Path(source), Path(target)
    tmp = temporary_name(target)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return target


def check_writable(folder: PathLike, flag: str) -> Path:
    """Create ``folder`` if needed and prove a file can be written there; else an
    :class:`OutputError` naming the folder and ``flag`` (before any work is done)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {folder}: is a file, not a folder; give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = temporary_name(folder / "write-test")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputError(
            f"{flag} {folder}: cannot write there ({error.strerror or error}); choose a writable folder"
        ) from None
    return folder
