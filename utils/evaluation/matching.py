"""eval.py's inputs: the ground-truth sets under ``--gt_root`` and each method's predictions, matched by stem."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from utils.data.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS
from utils.data.pairing import LAYOUTS, TRAINING_SETS, chosen_set_names

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

#: one mask and the prediction of each method that has one for it.
MaskItem = Tuple[Path, Dict[str, Path]]


class EvaluationError(ValueError):
    """Inputs that cannot be evaluated as they are; the message names the files."""


@dataclass
class SetMatch:
    """Masks of one set matched with one method's predictions, by stem."""

    pairs: List[Tuple[Path, Path]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # masks without a prediction
    not_images: List[str] = field(default_factory=list)
    ambiguous: List[str] = field(default_factory=list)  # stems with several prediction files
    pred_dir_exists: bool = True


def _by_stem(
    folder: Path, extensions: Tuple[str, ...], not_images: List[str], ambiguous: Optional[List[str]] = None
) -> Dict[str, Path]:
    by_stem: Dict[str, List[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() or entry.name.startswith("."):
            continue
        if entry.suffix.lower() in extensions:
            by_stem.setdefault(entry.stem, []).append(entry)
        else:
            not_images.append(str(entry))
    if ambiguous is not None:
        ambiguous.extend(", ".join(str(p) for p in paths) for paths in by_stem.values() if len(paths) > 1)
    return {stem: paths[0] for stem, paths in by_stem.items()}


def match_set(mask_dir: Path, pred_dir: Path) -> SetMatch:
    match = SetMatch(pred_dir_exists=pred_dir.is_dir())
    masks = _by_stem(mask_dir, MASK_EXTENSIONS, match.not_images)
    if not masks:
        raise EvaluationError(
            f"{mask_dir}: no mask files ({' '.join(MASK_EXTENSIONS)}); the ground truth is missing here, not the predictions"
        )
    preds = _by_stem(pred_dir, IMAGE_EXTENSIONS, match.not_images, match.ambiguous) if match.pred_dir_exists else {}
    for stem, mask in masks.items():
        if stem in preds:
            match.pairs.append((preds[stem], mask))
        else:
            match.missing.append(stem)
    return match


def find_gt_sets(gt_root: PathLike, sets: Optional[Sequence[str]] = None) -> List[Tuple[str, Path]]:
    """``(set, mask folder)`` for each set under ``gt_root``: the named ``sets``, or the
    evaluation sets found (DIS5K's first; DIS-TR only when named)."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise EvaluationError(f"{gt_root}: no such folder; expected <gt_root>/<set>/GT (or gt)")
    names = chosen_set_names(gt_root, sets, "score")
    found = []
    for name in names:
        mask_dir = next((gt_root / name / sub for _, sub in LAYOUTS.values() if (gt_root / name / sub).is_dir()), None)
        if mask_dir is None:
            if sets:
                raise EvaluationError(f"{gt_root / name}: no GT/ or gt/ mask folder")
            continue
        found.append((name, mask_dir))
    if not found:
        hint = f" (only {', '.join(TRAINING_SETS)}, left out unless named in --sets)" if not sets else ""
        raise EvaluationError(f"{gt_root}: no set with masks found{hint}; expected <gt_root>/<set>/GT or <set>/gt")
    return found


def mask_items(matches: Dict[str, SetMatch]) -> List[MaskItem]:
    """Every mask that some method predicted, with each method's prediction (mask order)."""
    by_mask: Dict[Path, Dict[str, Path]] = {}
    for method, match in matches.items():
        for pred, mask in match.pairs:
            by_mask.setdefault(mask, {})[method] = pred
    return sorted(by_mask.items(), key=lambda item: item[0].name)
