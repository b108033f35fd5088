"""Scoring methods' predictions against the ground-truth sets (what ``eval.py`` runs).

Masks are the unit of work: each mask is read, and what it alone decides (HCE's skeleton, the weighted Fβ's
distance weights, Sα's quadrants: :class:`utils.evaluation.pairs.MaskQuantities`) computed, once for all
methods. Masks are spread over ``workers`` processes in contiguous chunks; each chunk's metric objects (the
metric table's) are merged in order, so the numbers equal one sequential pass.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from utils.common.heap import keep_freed_memory
from utils.common.logs import get_logger
from utils.data.images import ImageReadError, describe_mask_notes, open_image, read_gt_mask, read_mask
from utils.data.sets import TE_SETS
from utils.evaluation.hce import HCE_RULES
from utils.evaluation.matching import (
    EvaluationError,
    MaskItem,
    find_gt_sets,
    is_flat_mask_folder,
    mask_items,
    match_set,
    prediction_folder,
)
from utils.evaluation.metrics import (
    OVERALL,
    Curves,
    Results,
    merge_metrics,
    metric_keys,
    new_metrics,
    pair_count,
    step_metrics,
    summarize,
)
from utils.evaluation.pairs import MaskQuantities

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


def load_prediction(pred_path: Path, shape: Tuple[int, ...]) -> Tuple[np.ndarray, Optional[str]]:
    """(prediction, warning): the 8-bit map resized (bilinear) to ``shape`` when its size differs."""
    pred = np.asarray(read_mask(pred_path))
    if pred.shape == tuple(shape):
        return pred, None
    warning = f"{pred_path} is {pred.shape[1]}×{pred.shape[0]}, its mask {shape[1]}×{shape[0]}: resized (bilinear)"
    return cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR), warning


@dataclass
class ChunkOutcome:
    """What scoring some masks found besides the metrics."""

    warnings: List[str] = field(default_factory=list)
    unreadable: Dict[str, List[str]] = field(default_factory=dict)  # method (or "masks") → "path (reason)"
    mask_notes: Dict[str, List[str]] = field(default_factory=dict)  # utils.data.images.MASK_NOTES key → files
    both_empty: Dict[str, int] = field(default_factory=dict)  # method → pairs with empty mask and prediction
    #: method → PREDICTION_NOTES key → files (maps saved in an unusual way; scored as read)
    pred_notes: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)


#: predictions that are scored as read but probably not as their authors meant.
PREDICTION_NOTES = {
    "binary01": "maps saved as 0/1 (maximum value 1): every metric but HCE min-max normalises them, but HCE's "
    "benchmark rule (map > 128) sees an empty map; save maps as 0/255 (test.py does)",
    "alpha": "maps with an alpha channel, read as luminance × alpha (a transparent pixel counts as 0); "
    "save grey maps (test.py does)",
}


def prediction_note(path: Path, pred: np.ndarray) -> Optional[str]:
    """The :data:`PREDICTION_NOTES` key that applies to a prediction, or None."""
    if pred.size and pred.max() == 1:
        return "binary01"
    try:
        with open_image(path, load=False) as image:
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                return "alpha"
    except Exception:  # noqa: BLE001  it was read a moment ago
        return None
    return None


def _evaluate_chunk(
    items: Sequence[MaskItem], methods: Sequence[str], hce_rule: Optional[str], boundary: bool = True
) -> Tuple[Dict[str, Dict[str, Any]], ChunkOutcome]:
    metrics, out = {m: new_metrics(hce_rule, boundary=boundary) for m in methods}, ChunkOutcome()
    for mask_path, predictions in items:
        try:
            gt, note = read_gt_mask(mask_path)
        except ImageReadError as error:
            out.unreadable.setdefault("masks", []).append(str(error))
            continue
        if note:
            out.mask_notes.setdefault(note, []).append(str(mask_path))
        shared = MaskQuantities(gt)  # what the mask alone decides, computed once for all methods
        for method, pred_path in predictions.items():
            try:
                pred, warning = load_prediction(pred_path, gt.shape)
            except ImageReadError as error:
                out.unreadable.setdefault(method, []).append(str(error))
                continue
            if warning:
                out.warnings.append(warning)
            kind = prediction_note(pred_path, pred)
            if kind:
                out.pred_notes.setdefault(method, {}).setdefault(kind, []).append(str(pred_path))
            if gt.max() == 0 and pred.max() == 0:
                out.both_empty[method] = out.both_empty.get(method, 0) + 1
            step_metrics(metrics[method], pred, gt, shared)
    return metrics, out


def _merge_outcomes(outcomes: Sequence[ChunkOutcome]) -> ChunkOutcome:
    merged = ChunkOutcome()
    for part in outcomes:
        merged.warnings += part.warnings
        for target, source in ((merged.unreadable, part.unreadable), (merged.mask_notes, part.mask_notes)):
            for key, values in source.items():
                target.setdefault(key, []).extend(values)
        for key, count in part.both_empty.items():
            merged.both_empty[key] = merged.both_empty.get(key, 0) + count
        for method, kinds in part.pred_notes.items():
            for kind, files in kinds.items():
                merged.pred_notes.setdefault(method, {}).setdefault(kind, []).extend(files)
    return merged


def evaluate_masks(
    items: Sequence[MaskItem],
    methods: Sequence[str],
    workers: int = 1,
    hce_rule: Optional[str] = "isnet",
    progress: bool = False,
    desc: str = "",
    boundary: bool = True,
) -> Tuple[Dict[str, Tuple[Dict[str, float], Dict[str, np.ndarray]]], ChunkOutcome]:
    """``({method: (metrics, curves)}, outcome)`` over ``items``, on ``workers`` processes; a
    method with no readable prediction is absent. ``outcome`` names unreadable files."""
    if hce_rule is not None and hce_rule not in HCE_RULES:
        raise EvaluationError(f"unknown HCE rule {hce_rule!r}; choose one of {', '.join(HCE_RULES)}")
    if not items:
        raise EvaluationError(f"{desc}: nothing to evaluate")
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        shown = tqdm(items, desc=desc, unit="mask", disable=not progress, leave=False)
        chunks_out = [_evaluate_chunk(list(shown), methods, hce_rule, boundary)]
    else:
        # contiguous chunks, a few per worker so the bar moves; merged in order afterwards
        bounds = np.linspace(0, len(items), min(len(items), workers * 4) + 1).astype(int)
        chunks = [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        with ProcessPoolExecutor(workers, initializer=keep_freed_memory) as pool:
            futures = [pool.submit(_evaluate_chunk, chunk, methods, hce_rule, boundary) for chunk in chunks]
            chunks_out = [f.result() for f in tqdm(futures, desc=desc, unit="chunk", disable=not progress, leave=False)]
    outcome = _merge_outcomes([o for _, o in chunks_out])
    for warning in outcome.warnings:
        log.warning("%s", warning)
    scored = {}
    for method in methods:
        merged = merge_metrics([metrics[method] for metrics, _ in chunks_out])
        if pair_count(merged):  # at least one readable pair
            scored[method] = summarize(merged)
    return scored, outcome


def add_overall(results: Results) -> None:
    """The Overall row (plain mean of DIS-TE1..4) for every method that has all four."""
    for per_set in results.values():
        if all(s in per_set for s in TE_SETS):
            keys = [k for k in metric_keys() if k in per_set[TE_SETS[0]]]
            per_set[OVERALL] = {k: float(np.mean([per_set[s][k] for s in TE_SETS])) for k in keys}
            per_set[OVERALL]["num"] = int(sum(per_set[s]["num"] for s in TE_SETS))


def evaluate(
    methods: Dict[str, PathLike],
    gt_root: PathLike,
    sets: Optional[Sequence[str]] = None,
    workers: int = 1,
    allow_missing: bool = False,
    hce_rule: Optional[str] = "isnet",
    progress: bool = True,
    boundary: bool = True,
) -> Tuple[Results, Curves]:
    """Every method on every set; raises :class:`EvaluationError` for missing
    predictions unless ``allow_missing`` (then the masks without one are left out).
    ``hce_rule`` is ``"isnet"``, ``"pysod"`` or ``None`` (no HCE); ``boundary=False``
    leaves mBA and BIoU out."""
    for name, root in methods.items():
        if not Path(root).is_dir():
            raise EvaluationError(f"predictions of {name}: {root}: no such folder (check --pred_root / --methods)")
    gt_sets = find_gt_sets(gt_root, sets)
    for name, root in methods.items():
        shared = {
            str(mask_dir) for s, mask_dir in gt_sets if prediction_folder(root, s, gt_root).resolve() == mask_dir.resolve()
        }
        if shared:
            log.warning(
                "predictions of %s are read from the ground-truth folder %s: every score will be perfect",
                name,
                ", ".join(sorted(shared)),
            )
        elif Path(root).resolve() == Path(gt_root).resolve() and not is_flat_mask_folder(gt_root):
            log.warning(
                "predictions of %s: %s is the ground-truth root (--gt_root); give the folder test.py wrote "
                "(its --save_path)",
                name,
                root,
            )
    matches = {
        s: {m: match_set(mask_dir, prediction_folder(root, s, gt_root)) for m, root in methods.items()}
        for s, mask_dir in gt_sets
    }
    not_images = sorted({f for per_method in matches.values() for match in per_method.values() for f in match.not_images})
    if not_images:
        log.warning("not images, ignored: %s", ", ".join(not_images))
    ambiguous = [
        f"  {m} / {s}: {a}" for s, per_method in matches.items() for m, match in per_method.items() for a in match.ambiguous
    ]
    if ambiguous:
        raise EvaluationError(
            "several prediction files share a stem, so which one to score is ambiguous:\n"
            + "\n".join(ambiguous)
            + "\nkeep one file per stem"
        )
    lines = []
    for s, per_method in matches.items():
        for m, match in per_method.items():
            if not match.pred_dir_exists:
                lines.append(f"  {m} / {s}: the folder {Path(methods[m]) / s} does not exist ({len(match.missing)} masks)")
            elif match.missing:
                lines.append(f"  {m} / {s}: {len(match.missing)} missing: {', '.join(match.missing)}")
    if lines:
        text = "predictions missing for some masks:\n" + "\n".join(lines)
        if not allow_missing:
            raise EvaluationError(text + "\nrun test.py for them, or pass --allow_missing to score what exists")
        log.warning("%s\n--allow_missing: scoring the masks that have a prediction", text)
    results: Results = {m: {} for m in methods}
    curves: Curves = {m: {} for m in methods}
    unreadable: List[str] = []
    for set_name, per_method in matches.items():
        present = [m for m, match in per_method.items() if match.pairs]
        for method in (m for m in per_method if m not in present):
            log.warning("%s / %s: no predictions at all, left out", method, set_name)
        if not present:
            continue
        scored, outcome = evaluate_masks(
            mask_items({m: per_method[m] for m in present}),
            present,
            workers,
            hce_rule,
            progress,
            f"{set_name} ({len(present)} method{'s' * (len(present) > 1)})",
            boundary,
        )
        if outcome.unreadable.get("masks"):
            raise EvaluationError(
                f"{set_name}: ground-truth masks that cannot be read:\n  "
                + "\n  ".join(outcome.unreadable["masks"])
                + "\nreplace them and run again"
            )
        for line in describe_mask_notes(outcome.mask_notes, f"{set_name} ground truth"):
            log.warning("%s", line)
        for method, count in outcome.both_empty.items():
            log.warning(
                "%s / %s: %d pairs with an empty mask and an empty prediction (they score perfectly; "
                "check that these masks are meant to be empty)",
                method,
                set_name,
                count,
            )
        for method, kinds in outcome.pred_notes.items():
            for kind, files in kinds.items():
                log.warning("%s / %s: %d %s (e.g. %s)", method, set_name, len(files), PREDICTION_NOTES[kind], files[0])
        for method, files in outcome.unreadable.items():
            unreadable += [f"  {method} / {set_name}: {f}" for f in files]
        for method, (values, set_curves) in scored.items():
            num = len(per_method[method].pairs) - len(outcome.unreadable.get(method, []))
            results[method][set_name] = {**values, "num": num}
            curves[method][set_name] = set_curves
    if unreadable:
        text = "predictions that cannot be read (counted as missing):\n" + "\n".join(unreadable)
        if not allow_missing:
            raise EvaluationError(text + "\nrun test.py for them again, or pass --allow_missing to score the rest")
        log.warning("%s", text)
    if not any(results.values()):
        raise EvaluationError("no prediction could be scored: every set lacks predictions (see the warnings above)")
    add_overall(results)
    return results, curves
