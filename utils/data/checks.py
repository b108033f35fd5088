"""Decode every training and validation file before the first step, so that no bad file
surfaces mid-epoch (the pairing scan reads headers only).

Files are decoded in parallel threads (Pillow releases the GIL while decoding).
What was verified is remembered in a small JSON record, keyed by path, size and
modification time, so that a second run (or a resume) does not decode again; a
changed file is decoded again. The record holds each mask's conversion note
(0/1 or colour mask, see :func:`utils.data.images.read_gt_mask`) too, so the warning
about them is repeated without decoding.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from tqdm import tqdm

from utils.common.distributed import DistInfo, gather_objects
from utils.common.fileio import atomic_write_text
from utils.common.logs import get_logger
from utils.data.folders import DatasetError
from utils.data.images import describe_mask_notes, read_gt_mask, read_rgb

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

RECORD_VERSION = 1


@dataclass
class Verification:
    """Unreadable files (``"path (reason)"``) and converted masks by note."""

    bad: List[str] = field(default_factory=list)
    mask_notes: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    record: Dict[str, str] = field(default_factory=dict)  # key → "" (ok) or a mask note
    decoded: int = 0


def _key(path: Path, kind: str) -> str:
    stat = path.stat()
    return f"{kind}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def load_record(path: Optional[Path]) -> Dict[str, str]:
    """A verification record, or ``{}`` when absent or unreadable (then everything is decoded)."""
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return dict(data["files"]) if data.get("version") == RECORD_VERSION else {}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def save_record(path: Path, record: Dict[str, str]) -> None:
    atomic_write_text(path, json.dumps({"version": RECORD_VERSION, "files": record}) + "\n")


Decoder = Callable[[Path, str], Optional[str]]


def decode_file(path: Path, kind: str) -> Optional[str]:
    """Decode one image or mask fully (raising if it cannot be); the mask's conversion note."""
    if kind == "image":
        read_rgb(path)
        return None
    return read_gt_mask(path)[1]


def _check(decode: Decoder, item: Tuple[Path, str]) -> Tuple[Path, str, Optional[str], Optional[str]]:
    """(path, kind, note, error) after decoding one file."""
    path, kind = item
    try:
        return path, kind, decode(path, kind), None
    except Exception as error:  # noqa: BLE001  (any decoding failure names the file)
        return path, kind, None, str(error)


def verify_pairs(
    pairs: Sequence[Tuple[Path, Path]],
    record: Optional[Dict[str, str]] = None,
    threads: int = 2,
    progress: bool = False,
    decode: Decoder = decode_file,
) -> Verification:
    """Decode every image and mask of ``pairs`` not already in ``record`` (which is updated);
    ``decode`` may do more with each file (``TrainDataset.prepare`` fills the cache)."""
    result = Verification(record=dict(record or {}))
    todo = []
    for image, mask in pairs:
        for path, kind in ((Path(image), "image"), (Path(mask), "mask")):
            try:
                key = _key(path, kind)
            except OSError as error:
                result.bad.append(f"{path} ({error.strerror or error})")
                continue
            if key in result.record:
                if result.record[key]:
                    result.mask_notes[result.record[key]].append(str(path))
            else:
                todo.append((path, kind))
    if todo:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            for path, kind, note, error in tqdm(
                pool.map(partial(_check, decode), todo),
                total=len(todo),
                desc="checking files",
                unit="file",
                disable=not progress,
                leave=False,
            ):
                if error:
                    result.bad.append(error)
                    continue
                result.record[_key(path, kind)] = note or ""
                if note:
                    result.mask_notes[note].append(str(path))
        result.decoded = len(todo)
    return result


def verify_training_files(
    pairs: Sequence[Tuple[Path, Path]],
    val_pairs: Sequence[Tuple[Path, Path]],
    record_path: Path,
    workers: int,
    info: DistInfo,
    progress: bool = True,
    prepare: Decoder = decode_file,
) -> None:
    """Decode every training and validation file before the first step (each process
    its share); raise one :class:`DatasetError` naming every unreadable file. Training
    files go through ``prepare`` (e.g. ``TrainDataset.prepare``, which fills the cache)."""
    everything = list(pairs) + list(val_pairs)
    record = load_record(record_path)
    threads, shown = max(1, workers), progress and info.is_main
    train = verify_pairs(list(pairs)[info.rank :: info.world_size], record, threads, shown, prepare)
    val = verify_pairs(list(val_pairs)[info.rank :: info.world_size], train.record, threads, shown)
    notes_mine: Dict[str, List[str]] = {k: list(v) for k, v in train.mask_notes.items()}
    for kind, files in val.mask_notes.items():
        notes_mine.setdefault(kind, []).extend(files)
    mine = (train.bad + val.bad, notes_mine, val.record, train.decoded + val.decoded)
    parts = gather_objects(mine, info)
    bad = sorted(b for part in parts for b in part[0])
    notes: Dict[str, List[str]] = {}
    for part in parts:
        for kind, files in part[1].items():
            notes.setdefault(kind, []).extend(files)
    if info.is_main:
        for line in describe_mask_notes({k: sorted(v) for k, v in notes.items()}, "training/validation masks"):
            log.warning("%s", line)
        decoded = sum(part[3] for part in parts)
        if decoded:
            merged = dict(record)
            for part in parts:
                merged.update(part[2])
            try:
                save_record(record_path, merged)
            except OSError as error:
                log.warning("could not remember the checked files in %s (%s)", record_path, error)
            log.info(
                "checked %d files (%d decoded now, the rest remembered in %s)", 2 * len(everything), decoded, record_path
            )
    if bad:
        raise DatasetError(
            f"{len(bad)} training/validation files cannot be read:\n  "
            + "\n  ".join(bad)
            + "\nreplace or remove them (with their image or mask) before training"
        )
