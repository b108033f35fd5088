"""One writer per output folder: a lock file holding the writer's host, pid and start time.

Every command that writes into a folder (train.py's run folder, test.py's ``--save_path``,
eval.py's ``--save_dir``, demo.py, the synthetic-data generator) and every command that
writes one file (the ONNX export, ``lib.convert``) takes the lock before it writes and
gives it back when it is done. A second writer is refused with the first one named (host,
pid, since when). A lock is taken over, with a warning, when its process has ended (same
host), when it belongs to this very process, or when it is unreadable (a kill between
creating and writing it) and older than a minute or dated in the future (a clock set back,
NFS skew). A lock of another host is never guessed stale: the message says how to remove it.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Tuple, Type

from utils.common.logs import get_logger

log = get_logger(__name__)

#: an unreadable lock file older than this (seconds), or dated in the future, is taken over.
STALE_UNREADABLE_LOCK_S = 60.0


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def read_lock(lock: Path) -> Optional[Tuple[str, int, Optional[float]]]:
    """``(host, pid, since)`` of a lock file (``since`` None for a lock without a time), or None
    when it is empty or garbled."""
    try:
        fields = lock.read_text(errors="replace").split()
        host, pid = fields[0], int(fields[1])
        since = float(fields[2]) if len(fields) > 2 else None
    except (OSError, ValueError, IndexError):
        return None
    return host, pid, since


def describe_since(since: Optional[float]) -> str:
    """``"since 2026-12-06 15:40:02 UTC"`` (with a note when that lies in the future)."""
    if since is None:
        return "since an unknown time"
    text = datetime.datetime.fromtimestamp(since, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    future = since - time.time()
    return f"since {text}" + (f" ({future:.0f} s in the future: the clocks differ)" if future > 1 else "")


def acquire_lock(
    lock: Path,
    error: Type[Exception],
    busy: Callable[[str, int, str], str],
    what: str,
) -> Path:
    """Create ``lock`` for this process, or raise ``error`` naming the process that holds it.

    Args:
        busy: ``(host, pid, since text) -> message`` for a live writer on this host.
        what: the folder or file in messages.
    """
    host = socket.gethostname()
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            owner = read_lock(lock)
            if owner is None:  # empty or garbled (a full disk, a kill between create and write)
                try:
                    age = time.time() - lock.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age > STALE_UNREADABLE_LOCK_S or age < -1.0:
                    log.warning("%s: taking over an unreadable lock file left %.0f s ago", what, age)
                    lock.unlink(missing_ok=True)
                    continue
                raise error(
                    f"{what}: another run is just taking this folder (lock file {lock}, unreadable, "
                    f"written {age:.0f} s ago); try again in a minute, or delete {lock} if no run is starting"
                ) from None
            owner_host, pid, since = owner
            if owner_host == host and (pid == os.getpid() or not process_alive(pid)):
                if pid != os.getpid():
                    log.warning("%s: taking over the lock of process %d, which has ended", what, pid)
                lock.unlink(missing_ok=True)
                continue
            if owner_host != host:
                raise error(
                    f"{what}: locked by process {pid} on host {owner_host} {describe_since(since)} (lock file "
                    f"{lock}). If that run is still writing (a shared file system), wait for it; if it is gone "
                    f"(a container restart, a SLURM requeue on another node), delete {lock} and start again"
                ) from None
            raise error(busy(owner_host, pid, describe_since(since))) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{host} {os.getpid()} {time.time():.3f}\n")
        return lock
    raise error(f"{lock}: could not take the lock")


def release_lock(lock: Optional[Path]) -> None:
    """Remove ``lock`` if this process holds it."""
    if lock is not None:
        owner = read_lock(lock)
        if owner is not None and owner[0] == socket.gethostname() and owner[1] == os.getpid():
            lock.unlink(missing_ok=True)
