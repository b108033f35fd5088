"""eval.py's inputs: the ground-truth sets under ``--gt_root`` and each method's predictions, matched by stem."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from utils.common.errors import FSANetError
from utils.common.logs import get_logger
from utils.data.folders import DatasetError, list_folder
from utils.data.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS
from utils.data.sets import find_sets

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: one mask and the prediction of each method that has one for it.
MaskItem = Tuple[Path, Dict[str, Path]]


class EvaluationError(FSANetError):
    """Inputs that cannot be evaluated as they are; the message names the files."""


@dataclass
class SetMatch:
    """Masks of one set matched with one method's predictions, by stem."""

    pairs: List[Tuple[Path, Path]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # masks without a prediction
    not_images: List[str] = field(default_factory=list)
    ambiguous: List[str] = field(default_factory=list)  # stems with several prediction files
    pred_dir_exists: bool = True


def _by_stem(folder: Path, extensions: Tuple[str, ...], match: SetMatch, note_ambiguous: bool) -> Dict[str, Path]:
    listing = list_folder(folder, extensions)
    match.not_images.extend(str(p) for p in listing.others)
    groups = listing.by_stem()
    if note_ambiguous:
        match.ambiguous.extend(", ".join(str(p) for p in paths) for paths in groups.values() if len(paths) > 1)
    return {stem: paths[0] for stem, paths in groups.items()}


def match_set(mask_dir: Path, pred_dir: Path) -> SetMatch:
    match = SetMatch(pred_dir_exists=pred_dir.is_dir())
    masks = _by_stem(mask_dir, MASK_EXTENSIONS, match, False)
    if not masks:
        raise EvaluationError(
            f"{mask_dir}: no mask files ({' '.join(MASK_EXTENSIONS)}); the ground truth is missing here, not the predictions"
        )
    preds = _by_stem(pred_dir, IMAGE_EXTENSIONS, match, True) if match.pred_dir_exists else {}
    for stem, mask in masks.items():
        if stem in preds:
            match.pairs.append((preds[stem], mask))
        else:
            match.missing.append(stem)
    return match


def is_flat_mask_folder(gt_root: PathLike) -> bool:
    """Whether ``gt_root`` holds mask files itself (a plain folder of masks, no ``<set>/GT``)."""
    root = Path(gt_root)
    return root.is_dir() and bool(list_folder(root, MASK_EXTENSIONS).by_stem())


def find_gt_sets(gt_root: PathLike, sets: Optional[Sequence[str]] = None) -> List[Tuple[str, Path]]:
    """``(set, mask folder)`` for each set under ``gt_root`` (:func:`utils.data.sets.find_sets`);
    a plain folder of masks is one set, named after the folder (its predictions are then read
    from the method's folder itself: test.py ``--input``'s flat output)."""
    root = Path(gt_root)
    if is_flat_mask_folder(root) and (not sets or list(sets) == [root.resolve().name]):
        return [(root.resolve().name, root)]
    try:
        return [(name, masks) for name, _, masks in find_sets(gt_root, sets, "masks")]
    except DatasetError as error:
        raise EvaluationError(str(error)) from None


def prediction_folder(method_root: PathLike, set_name: str, gt_root: PathLike) -> Path:
    """Where a method's maps of one set are: ``<method_root>/<set>``, or, for a plain folder of
    masks as ``--gt_root``, the method's folder itself (unless it has a ``<set>`` folder)."""
    root = Path(method_root)
    if is_flat_mask_folder(gt_root) and not (root / set_name).is_dir():
        return root
    return root / set_name


def mask_items(matches: Dict[str, SetMatch]) -> List[MaskItem]:
    """Every mask that some method predicted, with each method's prediction (mask order)."""
    by_mask: Dict[Path, Dict[str, Path]] = {}
    for method, match in matches.items():
        for pred, mask in match.pairs:
            by_mask.setdefault(mask, {})[method] = pred
    return sorted(by_mask.items(), key=lambda item: item[0].name)
