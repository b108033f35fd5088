"""A training run's folders: never replace another run, one process at a time, writable before work.

``checkpoints/NAME`` holds a run once it holds a checkpoint. Starting there again
is refused unless the run is continued (``--resume``) or deliberately replaced
(``--overwrite``, which deletes its checkpoints and logs first, so the logs and
tensorboard events of two runs never mix). A lock file holding the owner's pid
refuses a second concurrent run in the same folder; a lock whose process is gone
is taken over. Temporary files left by a kill during a save are removed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import List, Optional

import torch

from utils.common import folder_lock
from utils.common.distributed import DistInfo, gather_objects
from utils.common.errors import FSANetError
from utils.common.fileio import TMP_PREFIX, TMP_SUFFIX, check_writable
from utils.common.logs import LOG_FORMAT, ROOT_LOGGER, get_logger

log = get_logger(__name__)

LOCK_NAME = ".train.lock"
#: this repository's loggers; train.log receives theirs (the root logger is left to the scripts).
PACKAGE_LOGGERS = (ROOT_LOGGER,)


class RunFolderError(FSANetError):
    """A run folder that cannot be used as asked; the message says what to do."""


def run_files(checkpoint_dir: Path) -> List[str]:
    """The checkpoint files that make ``checkpoint_dir`` hold a run."""
    if not checkpoint_dir.is_dir():
        return []
    return sorted(p.name for p in checkpoint_dir.glob("*.pth"))


def log_files(log_dir: Path) -> List[Path]:
    if not log_dir.is_dir():
        return []
    return sorted([*log_dir.glob("train.log"), *log_dir.glob("events.out.tfevents.*")])


def acquire_lock(checkpoint_dir: Path) -> Path:
    """Create the run's lock file, or raise naming the process that holds it
    (:func:`utils.common.folder_lock.acquire_lock`)."""
    return folder_lock.acquire_lock(
        checkpoint_dir / LOCK_NAME,
        RunFolderError,
        lambda host, pid, since: (
            f"{checkpoint_dir}: another training run is using this folder (pid {pid} on {host}, {since}, "
            f"lock file {checkpoint_dir / LOCK_NAME}); wait for it, stop it, or use another --train_save"
        ),
        str(checkpoint_dir),
    )


release_lock = folder_lock.release_lock


def remove_stale_temporaries(folder: Path) -> List[str]:
    """Delete the temporary files an interrupted save left (only this code's own pattern)."""
    removed = []
    for path in folder.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        if path.is_file():
            path.unlink()
            removed.append(path.name)
    if removed:
        log.info("%s: removed %d temporary files left by an interrupted save", folder, len(removed))
    return removed


def checkpoint_epoch(path: Path) -> Optional[int]:
    """The epoch counter a checkpoint holds (read memory-mapped, no tensor copied), or None."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(obj["epoch"])
    except Exception:  # noqa: BLE001  unreadable or no counter
        return None


def later_checkpoints(checkpoint_dir: Path, resume_from: Path) -> List[str]:
    """The run's checkpoints that hold epochs after the one ``resume_from`` holds (a rewind would replace them)."""
    if resume_from.is_dir() or not resume_from.is_file():
        return []
    epoch = checkpoint_epoch(resume_from)
    if epoch is None:
        return []
    later = []
    for name in run_files(checkpoint_dir):
        path = checkpoint_dir / name
        if path.resolve() == resume_from.resolve():
            continue
        numbered = re.fullmatch(r"FSANet-(\d+)\.pth", name)
        held = int(numbered.group(1)) if numbered else checkpoint_epoch(path)
        if held is not None and held > epoch:
            later.append(f"{name} (epoch {held})")
    return later


def set_aside(checkpoint_dir: Path, names: List[str], epoch: Optional[int]) -> Path:
    """Move ``names`` into a new sub-folder of the run (kept, not deleted); returns it."""
    folder = checkpoint_dir / f"rewound_after_epoch{epoch}_{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir()
    for name in names:
        os.replace(checkpoint_dir / name, folder / name)
    return folder


def prepare_run_folder(checkpoint_dir: Path, log_dir: Path, resume_from: Optional[Path], overwrite: bool) -> Path:
    """Check, clear (``overwrite``) and lock the run's folders; returns the lock file.

    ``resume_from`` is the checkpoint a resumed run continues. Raises
    :class:`RunFolderError` when the folder holds a run that would be replaced (a
    resume continues its own folder only), when another process trains there, or
    when a folder is not writable.
    """
    existing = run_files(checkpoint_dir)
    resume = (
        resume_from is not None
        and (resume_from if resume_from.is_dir() else resume_from.parent).resolve() == checkpoint_dir.resolve()
    )
    later = later_checkpoints(checkpoint_dir, resume_from) if resume and resume_from is not None else []
    if later and not overwrite:
        raise RunFolderError(
            f"--resume {resume_from} goes back in this run: {', '.join(later)} hold later epochs and would be "
            f"replaced by the new branch. Add --overwrite to move them into a sub-folder of {checkpoint_dir} "
            "(kept) and train the new branch here, or resume into another --train_save"
        )
    if resume and resume_from is not None and resume_from.is_dir() and not (resume_from / "latest.pth").is_file():
        raise RunFolderError(
            f"--resume {resume_from}: this run never finished an epoch (no latest.pth), so there is nothing to "
            "continue; start it again with the same options plus --overwrite, without --resume"
        )
    if existing and not (resume or overwrite):
        raise RunFolderError(
            f"{checkpoint_dir} already holds a run ({', '.join(existing[:4])}{' …' if len(existing) > 4 else ''}); "
            f"continue it with --resume {checkpoint_dir}, replace it with --overwrite, "
            "or give this run another --train_save"
        )
    check_writable(checkpoint_dir, "--out_root/checkpoints/--train_save")
    check_writable(log_dir, "--out_root/logs/--train_save")
    lock = acquire_lock(checkpoint_dir)
    try:
        remove_stale_temporaries(checkpoint_dir)
        if later:
            names = [entry.split(" (")[0] for entry in later]
            kept = set_aside(checkpoint_dir, names, checkpoint_epoch(resume_from))
            log.warning("rewinding to %s: moved the later %s into %s (kept)", resume_from.name, ", ".join(names), kept)
        if overwrite and not resume:
            doomed = [checkpoint_dir / name for name in existing] + log_files(log_dir)
            for path in doomed:
                path.unlink()
            if doomed:
                log.warning("--overwrite: deleted the previous run's %s", ", ".join(p.name for p in doomed))
    except BaseException:
        release_lock(lock)
        raise
    return lock


def add_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.setLevel(logging.INFO)
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler


def agree(info: DistInfo, error: Optional[Exception]) -> None:
    """Raise ``error`` (found by one process) in every process, so that none waits for the others."""
    errors = [e for e in gather_objects(str(error) if error else None, info) if e]
    if error is not None:
        raise error
    if errors:
        raise RunFolderError(errors[0])
