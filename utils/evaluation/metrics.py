"""The DIS metric table with pysodmetrics (``eval.py`` is the CLI; reports in ``utils.evaluation.reports``).

Per set and method: maxFβ and mean Fβ (β² = 0.3, over 256 thresholds, per-image
curves averaged), weighted Fβ, MAE, Sα (α = 0.5), mean and max Eφ, and HCEγ
(relax 5, epsilon 2.0) under a binarisation rule (``utils.evaluation.hce``: IS-Net's
``> 128`` by default, the benchmark's definition). "Overall" is the plain mean
of DIS-TE1..4, metric by metric, as the published DIS tables report it; its
``num`` is the sum.

Masks are the unit of work: each mask is read, and its skeleton (HCE's costly
part) computed, once for all methods. Masks are spread over ``workers``
processes in contiguous chunks; each chunk's metric objects are merged in order,
so the numbers equal one sequential pass.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import py_sod_metrics as sod
from tqdm import tqdm

from utils.common.logs import get_logger
from utils.data.images import ImageReadError, describe_mask_notes, read_gt_mask, read_mask
from utils.data.sets import TE_SETS
from utils.evaluation.hce import HCE_RULES, HumanCorrectionEffort, binarize_mask, gt_skeleton
from utils.evaluation.matching import EvaluationError, MaskItem, find_gt_sets, mask_items, match_set

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

METRIC_KEYS = ("maxFm", "meanFm", "wFm", "MAE", "Sm", "meanEm", "maxEm", "HCE")
OVERALL = "Overall"
#: what the Overall row is, for reports.
OVERALL_TEXT = "Overall = plain mean of DIS-TE1..4 per metric (num: their sum); not all TE images pooled"

Results = Dict[str, Dict[str, Dict[str, float]]]  # {method: {set: {metric: value}}}
Curves = Dict[str, Dict[str, Dict[str, np.ndarray]]]  # {method: {set: {curve: values}}}


def new_metrics(hce_rule: Optional[str] = "isnet", only: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Fresh pysodmetrics objects for one (method, set); ``hce_rule=None`` leaves HCE out,
    ``only`` keeps those keys (``fm``, ``wfm``, ``mae``, ``sm``, ``em``, ``hce``)."""
    metrics = {
        "fm": sod.FmeasureV2(
            metric_handlers={
                "fm": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
                "pre": sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
                "rec": sod.RecallHandler(with_dynamic=True, with_adaptive=False),
            }
        ),
        "wfm": sod.WeightedFmeasure(),
        "mae": sod.MAE(),
        "sm": sod.Smeasure(),
        "em": sod.Emeasure(),
    }
    if hce_rule is not None:
        metrics["hce"] = HumanCorrectionEffort(hce_rule, relax=5, epsilon=2.0)
    return {k: v for k, v in metrics.items() if only is None or k in only}


def step_metrics(metrics: Dict[str, Any], pred: np.ndarray, gt: np.ndarray, skeleton: Optional[np.ndarray] = None) -> None:
    """Add one (uint8 prediction, uint8 mask) pair of equal size; ``skeleton`` is the
    mask's :func:`utils.evaluation.hce.gt_skeleton`, computed here when not given."""
    for name, metric in metrics.items():
        if name == "hce":
            metric.step(pred, gt, skeleton=skeleton)
        else:
            metric.step(pred, gt)


def _lists(obj: Any) -> Dict[str, list]:
    """The per-image result lists inside a pysodmetrics object (its handlers' too)."""
    found = {name: value for name, value in vars(obj).items() if isinstance(value, list)}
    for name, value in vars(obj).items():
        if isinstance(value, dict):
            for key, handler in value.items():
                found.update({f"{name}.{key}.{n}": v for n, v in _lists(handler).items()})
    return found


def merge_metrics(parts: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Concatenate the per-image results of several chunks (in order) into the first."""
    merged = parts[0]
    for part in parts[1:]:
        for key, metric in part.items():
            target = _lists(merged[key])
            for name, values in _lists(metric).items():
                target[name].extend(values)
    return merged


def summarize(metrics: Dict[str, Any]) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """``({metric: value}, {curve: 256 values})``; values are pysodmetrics' results, unrounded."""
    values: Dict[str, float] = {}
    curves: Dict[str, np.ndarray] = {}
    if "fm" in metrics:
        fm = metrics["fm"].get_results()
        values.update(maxFm=float(fm["fm"]["dynamic"].max()), meanFm=float(fm["fm"]["dynamic"].mean()))
        curves = {"precision": fm["pre"]["dynamic"], "recall": fm["rec"]["dynamic"], "fm": fm["fm"]["dynamic"]}
    if "wfm" in metrics:
        values["wFm"] = float(metrics["wfm"].get_results()["wfm"])
    if "mae" in metrics:
        values["MAE"] = float(metrics["mae"].get_results()["mae"])
    if "sm" in metrics:
        values["Sm"] = float(metrics["sm"].get_results()["sm"])
    if "em" in metrics:
        em = metrics["em"].get_results()["em"]
        values.update(meanEm=float(em["curve"].mean()), maxEm=float(em["curve"].max()))
    if "hce" in metrics:
        values["HCE"] = float(metrics["hce"].get_results()["hce"])
    return {k: values[k] for k in METRIC_KEYS if k in values}, curves


# ----------------------------------------------------------------------------- scoring


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


def _evaluate_chunk(
    items: Sequence[MaskItem], methods: Sequence[str], hce_rule: Optional[str]
) -> Tuple[Dict[str, Dict[str, Any]], ChunkOutcome]:
    metrics, out = {m: new_metrics(hce_rule) for m in methods}, ChunkOutcome()
    for mask_path, predictions in items:
        try:
            gt, note = read_gt_mask(mask_path)
        except ImageReadError as error:
            out.unreadable.setdefault("masks", []).append(str(error))
            continue
        if note:
            out.mask_notes.setdefault(note, []).append(str(mask_path))
        skeleton = gt_skeleton(binarize_mask(gt)) if hce_rule is not None else None
        for method, pred_path in predictions.items():
            try:
                pred, warning = load_prediction(pred_path, gt.shape)
            except ImageReadError as error:
                out.unreadable.setdefault(method, []).append(str(error))
                continue
            if warning:
                out.warnings.append(warning)
            if gt.max() == 0 and pred.max() == 0:
                out.both_empty[method] = out.both_empty.get(method, 0) + 1
            step_metrics(metrics[method], pred, gt, skeleton)
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
    return merged


def evaluate_masks(
    items: Sequence[MaskItem],
    methods: Sequence[str],
    workers: int = 1,
    hce_rule: Optional[str] = "isnet",
    progress: bool = False,
    desc: str = "",
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
        chunks_out = [_evaluate_chunk(list(shown), methods, hce_rule)]
    else:
        # contiguous chunks, a few per worker so the bar moves; merged in order afterwards
        bounds = np.linspace(0, len(items), min(len(items), workers * 4) + 1).astype(int)
        chunks = [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_evaluate_chunk, chunk, methods, hce_rule) for chunk in chunks]
            chunks_out = [f.result() for f in tqdm(futures, desc=desc, unit="chunk", disable=not progress, leave=False)]
    outcome = _merge_outcomes([o for _, o in chunks_out])
    for warning in outcome.warnings:
        log.warning("%s", warning)
    scored = {}
    for method in methods:
        merged = merge_metrics([metrics[method] for metrics, _ in chunks_out])
        if merged["mae"].maes:  # at least one readable pair
            scored[method] = summarize(merged)
    return scored, outcome


def add_overall(results: Results) -> None:
    """The Overall row (plain mean of DIS-TE1..4) for every method that has all four."""
    for per_set in results.values():
        if all(s in per_set for s in TE_SETS):
            keys = [k for k in METRIC_KEYS if k in per_set[TE_SETS[0]]]
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
) -> Tuple[Results, Curves]:
    """Every method on every set; raises :class:`EvaluationError` for missing
    predictions unless ``allow_missing`` (then the masks without one are left out).
    ``hce_rule`` is ``"isnet"``, ``"pysod"`` or ``None`` (no HCE)."""
    for name, root in methods.items():
        if not Path(root).is_dir():
            raise EvaluationError(f"predictions of {name}: {root}: no such folder (check --pred_root / --methods)")
    gt_sets = find_gt_sets(gt_root, sets)
    for name, root in methods.items():
        shared = {str(mask_dir) for s, mask_dir in gt_sets if (Path(root) / s).resolve() == mask_dir.resolve()}
        if shared:
            log.warning(
                "predictions of %s are read from the ground-truth folder %s: every score will be perfect",
                name,
                ", ".join(sorted(shared)),
            )
        elif Path(root).resolve() == Path(gt_root).resolve():
            log.warning(
                "predictions of %s: %s is the ground-truth root (--gt_root); give the folder test.py wrote "
                "(its --save_path)",
                name,
                root,
            )
    matches = {s: {m: match_set(mask_dir, Path(root) / s) for m, root in methods.items()} for s, mask_dir in gt_sets}
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
