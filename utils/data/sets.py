"""The sets of a DIS-style root (``<root>/<set>/Imgs|im`` and ``GT|gt``): which ones
test.py predicts and eval.py scores, found in one place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from utils.common.logs import get_logger
from utils.data.folders import DatasetError
from utils.data.pairing import LAYOUTS

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: DIS5K's evaluation sets in the authors' order; DIS-TR is the training set.
DIS_SETS: Tuple[str, ...] = ("DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
TE_SETS: Tuple[str, ...] = DIS_SETS[1:]
TRAINING_SETS: Tuple[str, ...] = ("DIS-TR",)

#: one set: (name, image folder or None, mask folder or None)
SetFolders = Tuple[str, Optional[Path], Optional[Path]]


def evaluation_set_names(root: PathLike) -> Tuple[List[str], List[str]]:
    """``(sets, training sets left out)``: the sub-folders of ``root`` to predict or score
    by default: DIS5K's evaluation sets first (their order), then any other folder;
    DIS-TR (3,000 training images) only when named explicitly."""
    present = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [n for n in DIS_SETS if n in present] + [n for n in present if n not in DIS_SETS]
    return [n for n in names if n not in TRAINING_SETS], [n for n in names if n in TRAINING_SETS]


def chosen_set_names(root: PathLike, sets: Optional[Sequence[str]], action: str) -> List[str]:
    """``sets`` when given, else :func:`evaluation_set_names` with the left-out training sets logged."""
    if sets:
        return list(sets)
    names, training = evaluation_set_names(root)
    if training:
        log.info("%s: left out %s (training data; name it in --sets to %s it)", root, ", ".join(training), action)
    return names


def set_folders(folder: Path) -> Tuple[Optional[Path], Optional[Path]]:
    """``(image folder, mask folder)`` of one set, either layout; ``None`` where absent."""
    layouts = list(LAYOUTS.values())
    image_dir = next((folder / images for images, _ in layouts if (folder / images).is_dir()), None)
    own = [masks for images, masks in layouts if image_dir is not None and image_dir.name == images]
    mask_dir = next((folder / masks for masks in own + [m for _, m in layouts] if (folder / masks).is_dir()), None)
    return image_dir, mask_dir


def find_sets(root: PathLike, sets: Optional[Sequence[str]], need: str) -> List[SetFolders]:
    """Each set under ``root`` that has the folder ``need`` names (``"images"`` to predict,
    ``"masks"`` to score): the named ``sets`` (each must have it), or the evaluation sets
    found (DIS5K's first; DIS-TR only when named; other folders without it are passed over)."""
    root = Path(root)
    images_wanted = need == "images"
    folder = "Imgs (or im)" if images_wanted else "GT (or gt)"
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; expected <root>/<set>/{folder} with sets like {', '.join(DIS_SETS)}")
    if sets:
        absent = [n for n in sets if not (root / n).is_dir()]
        if absent:
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DatasetError(f"{root}: no set folder {absent}; found {found}")
    found: List[SetFolders] = []
    for name in chosen_set_names(root, sets, "predict" if images_wanted else "score"):
        images, masks = set_folders(root / name)
        if (images if images_wanted else masks) is None:
            if sets:
                raise DatasetError(f"{root / name}: no {folder} folder")
            continue  # an unrelated folder
        found.append((name, images, masks))
    if not found:
        present = [name for name in TRAINING_SETS if (root / name).is_dir()]
        hint = f" (only {', '.join(present)}, left out unless named in --sets)" if present and not sets else ""
        raise DatasetError(f"{root}: no set with {need} found{hint}; expected <root>/<set>/{folder}")
    return found
