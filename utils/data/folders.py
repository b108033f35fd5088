"""Listing a folder of images or masks: the one lister every command uses.

Hidden files (``.DS_Store``, editors' temporary files) and sub-folders are passed over;
files whose extension is not accepted are reported, not read; files are grouped by stem,
the key that pairs an image with its mask and a prediction with its ground truth.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from utils.common.errors import FSANetError
from utils.data.images import IMAGE_EXTENSIONS

PathLike = Union[str, os.PathLike]


class DatasetError(FSANetError):
    """A dataset folder that cannot be used as it is; the message says what to fix."""


@dataclass
class FolderListing:
    """What :func:`list_folder` found: accepted files (sorted) and the other files."""

    files: List[Path] = field(default_factory=list)
    others: List[Path] = field(default_factory=list)

    def by_stem(self) -> Dict[str, List[Path]]:
        """Accepted files grouped by stem (several files for a stem: ambiguous)."""
        groups: Dict[str, List[Path]] = {}
        for path in self.files:
            groups.setdefault(path.stem, []).append(path)
        return groups

    def unique(self) -> Tuple[Dict[str, Path], List[List[Path]]]:
        """``(stem → file for stems with one file, the groups of stems with several)``."""
        groups = self.by_stem()
        return {s: p[0] for s, p in groups.items() if len(p) == 1}, [p for p in groups.values() if len(p) > 1]


def list_folder(folder: PathLike, extensions: Tuple[str, ...]) -> FolderListing:
    """The files of ``folder`` (not recursive) whose extension is in ``extensions``."""
    listing = FolderListing()
    for entry in sorted(Path(folder).iterdir()):
        if entry.name.startswith(".") or entry.is_dir():
            continue
        (listing.files if entry.suffix.lower() in extensions else listing.others).append(entry)
    return listing


def list_images(path: PathLike, skipped: Optional[List[str]] = None) -> List[Path]:
    """An image file, or the image files of a folder (sorted; other files go to ``skipped``)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_EXTENSIONS:  # the same rule as for a folder's files
            raise DatasetError(f"{path}: not an accepted image file (extensions: {' '.join(IMAGE_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder")
    listing = list_folder(path, IMAGE_EXTENSIONS)
    if skipped is not None:
        skipped.extend(str(p) for p in listing.others)
    return listing.files
