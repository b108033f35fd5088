"""The DIS metric table with pysodmetrics (``eval.py`` is the CLI).

Per set and method: maxFβ and mean Fβ (β² = 0.3, over 256 thresholds, per-image
curves averaged), weighted Fβ, MAE, Sα (α = 0.5), mean and max Eφ, and HCEγ
(``HumanCorrectionEffortMeasure``, relax 5, epsilon 2.0, with pysodmetrics'
default normalisation: the map is min-max normalised, then thresholded at 0.5).
"Overall" is the plain mean of DIS-TE1..4, metric by metric, as IS-Net, BiRefNet
and MVANet report it; its ``num`` is the sum.

Images are spread over ``workers`` processes in contiguous chunks; each chunk's
metric objects are merged in order, so the numbers equal one sequential pass.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import py_sod_metrics as sod
from tqdm import tqdm

from utils.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS, read_mask
from utils.pairing import LAYOUTS
from utils.predict import DIS_SETS

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

METRIC_KEYS = ("maxFm", "meanFm", "wFm", "MAE", "Sm", "meanEm", "maxEm", "HCE")
TE_SETS = ("DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
OVERALL = "Overall"
#: arrows for the table header: higher or lower is better.
BETTER = {"maxFm": "↑", "meanFm": "↑", "wFm": "↑", "MAE": "↓", "Sm": "↑", "meanEm": "↑", "maxEm": "↑", "HCE": "↓"}


class EvaluationError(ValueError):
    """Inputs that cannot be evaluated as they are; the message names the files."""


def new_metrics(hce: bool = True) -> Dict[str, Any]:
    """Fresh pysodmetrics objects for one (method, set)."""
    metrics = {
        "fm": sod.FmeasureV2(metric_handlers={
            "fm": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
            "pre": sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
            "rec": sod.RecallHandler(with_dynamic=True, with_adaptive=False),
        }),
        "wfm": sod.WeightedFmeasure(),
        "mae": sod.MAE(),
        "sm": sod.Smeasure(),
        "em": sod.Emeasure(),
    }
    if hce:
        metrics["hce"] = sod.HumanCorrectionEffortMeasure(relax=5, epsilon=2.0)
    return metrics


def step_metrics(metrics: Dict[str, Any], pred: np.ndarray, gt: np.ndarray) -> None:
    """Add one (uint8 prediction, uint8 mask) pair of equal size."""
    for metric in metrics.values():
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
    fm = metrics["fm"].get_results()
    em = metrics["em"].get_results()["em"]
    values = {
        "maxFm": float(fm["fm"]["dynamic"].max()),
        "meanFm": float(fm["fm"]["dynamic"].mean()),
        "wFm": float(metrics["wfm"].get_results()["wfm"]),
        "MAE": float(metrics["mae"].get_results()["mae"]),
        "Sm": float(metrics["sm"].get_results()["sm"]),
        "meanEm": float(em["curve"].mean()),
        "maxEm": float(em["curve"].max()),
    }
    if "hce" in metrics:
        values["HCE"] = float(metrics["hce"].get_results()["hce"])
    curves = {"precision": fm["pre"]["dynamic"], "recall": fm["rec"]["dynamic"], "fm": fm["fm"]["dynamic"]}
    return values, curves


@dataclass
class SetMatch:
    """Masks of one set matched with one method's predictions, by stem."""

    pairs: List[Tuple[Path, Path]] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # masks without a prediction
    not_images: List[str] = field(default_factory=list)


def _by_stem(folder: Path, extensions: Tuple[str, ...], not_images: List[str]) -> Dict[str, Path]:
    files: Dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() or entry.name.startswith("."):
            continue
        if entry.suffix.lower() in extensions:
            files.setdefault(entry.stem, entry)
        else:
            not_images.append(str(entry))
    return files


def match_set(mask_dir: Path, pred_dir: Path) -> SetMatch:
    match = SetMatch()
    masks = _by_stem(mask_dir, MASK_EXTENSIONS, match.not_images)
    preds = _by_stem(pred_dir, IMAGE_EXTENSIONS, match.not_images) if pred_dir.is_dir() else {}
    for stem, mask in masks.items():
        if stem in preds:
            match.pairs.append((preds[stem], mask))
        else:
            match.missing.append(stem)
    return match


def load_pair(pred_path: Path, mask_path: Path) -> Tuple[np.ndarray, np.ndarray, Optional[str]]:
    """(prediction, mask, warning): the prediction resized (bilinear) to the mask when sizes differ."""
    pred, gt = np.asarray(read_mask(pred_path)), np.asarray(read_mask(mask_path))
    warning = None
    if pred.shape != gt.shape:
        warning = f"{pred_path} is {pred.shape[1]}×{pred.shape[0]}, its mask {gt.shape[1]}×{gt.shape[0]}: resized (bilinear)"
        pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    return pred, gt, warning


def _evaluate_chunk(pairs: Sequence[Tuple[Path, Path]], hce: bool) -> Tuple[Dict[str, Any], List[str]]:
    metrics, warnings = new_metrics(hce), []
    for pred_path, mask_path in pairs:
        pred, gt, warning = load_pair(pred_path, mask_path)
        if warning:
            warnings.append(warning)
        step_metrics(metrics, pred, gt)
    return metrics, warnings


def evaluate_pairs(
    pairs: Sequence[Tuple[Path, Path]], workers: int = 1, hce: bool = True, progress: bool = False, desc: str = ""
) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """Metrics of (prediction, mask) pairs, on ``workers`` processes."""
    if not pairs:
        raise EvaluationError(f"{desc}: nothing to evaluate")
    workers = max(1, min(workers, len(pairs)))
    if workers == 1:
        chunks_out = [_evaluate_chunk(list(tqdm(pairs, desc=desc, unit="img", disable=not progress, leave=False)), hce)]
    else:
        # contiguous chunks, a few per worker so the bar moves; merged in order afterwards
        bounds = np.linspace(0, len(pairs), min(len(pairs), workers * 4) + 1).astype(int)
        chunks = [list(pairs[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(_evaluate_chunk, chunk, hce) for chunk in chunks]
            chunks_out = [f.result() for f in tqdm(futures, desc=desc, unit="chunk", disable=not progress, leave=False)]
    for _, warnings in chunks_out:
        for warning in warnings:
            log.warning("%s", warning)
    return summarize(merge_metrics([metrics for metrics, _ in chunks_out]))


def find_gt_sets(gt_root: PathLike, sets: Optional[Sequence[str]] = None) -> List[Tuple[str, Path]]:
    """``(set, mask folder)`` for each set under ``gt_root`` (DIS5K sets first)."""
    gt_root = Path(gt_root)
    if not gt_root.is_dir():
        raise EvaluationError(f"{gt_root}: no such folder; expected <gt_root>/<set>/GT (or gt)")
    names = list(sets) if sets else (
        [n for n in DIS_SETS if (gt_root / n).is_dir()]
        + sorted(p.name for p in gt_root.iterdir() if p.is_dir() and p.name not in DIS_SETS)
    )
    found = []
    for name in names:
        mask_dir = next((gt_root / name / sub for _, sub in LAYOUTS.values() if (gt_root / name / sub).is_dir()), None)
        if mask_dir is None:
            if sets:
                raise EvaluationError(f"{gt_root / name}: no GT/ or gt/ mask folder")
            continue
        found.append((name, mask_dir))
    if not found:
        raise EvaluationError(f"{gt_root}: no set with masks found; expected <gt_root>/<set>/GT or <set>/gt")
    return found


Results = Dict[str, Dict[str, Dict[str, float]]]  # {method: {set: {metric: value}}}
Curves = Dict[str, Dict[str, Dict[str, np.ndarray]]]  # {method: {set: {curve: values}}}


def evaluate(
    methods: Dict[str, PathLike],
    gt_root: PathLike,
    sets: Optional[Sequence[str]] = None,
    workers: int = 1,
    allow_missing: bool = False,
    hce: bool = True,
    progress: bool = True,
) -> Tuple[Results, Curves]:
    """Every method on every set; raises :class:`EvaluationError` for missing
    predictions unless ``allow_missing`` (then the masks without one are left out)."""
    gt_sets = find_gt_sets(gt_root, sets)
    matches = {(m, s): match_set(mask_dir, Path(root) / s) for m, root in methods.items() for s, mask_dir in gt_sets}
    not_images = sorted({f for match in matches.values() for f in match.not_images})
    if not_images:
        log.warning("not images, ignored: %s", ", ".join(not_images))
    missing = {key: match.missing for key, match in matches.items() if match.missing}
    if missing:
        lines = [f"  {m} / {s}: {len(stems)} missing: {', '.join(stems)}" for (m, s), stems in missing.items()]
        text = "predictions missing for some masks:\n" + "\n".join(lines)
        if not allow_missing:
            raise EvaluationError(text + "\nrun test.py for them, or pass --allow_missing to score what exists")
        log.warning("%s\n--allow_missing: scoring the masks that have a prediction", text)
    results: Results = {m: {} for m in methods}
    curves: Curves = {m: {} for m in methods}
    for (method, set_name), match in matches.items():
        if not match.pairs:
            log.warning("%s / %s: no predictions at all, left out", method, set_name)
            continue
        values, set_curves = evaluate_pairs(match.pairs, workers, hce, progress, f"{method} {set_name}")
        results[method][set_name] = {**values, "num": len(match.pairs)}
        curves[method][set_name] = set_curves
    for per_set in results.values():
        if all(s in per_set for s in TE_SETS):
            keys = [k for k in METRIC_KEYS if k in per_set[TE_SETS[0]]]
            per_set[OVERALL] = {k: float(np.mean([per_set[s][k] for s in TE_SETS])) for k in keys}
            per_set[OVERALL]["num"] = int(sum(per_set[s]["num"] for s in TE_SETS))
    return results, curves


# ----------------------------------------------------------------------------- reports


def _rows(results: Results) -> Tuple[List[str], List[List[Any]]]:
    keys = [k for k in METRIC_KEYS if any(k in v for per_set in results.values() for v in per_set.values())]
    header = ["method", "set", "num", *keys]
    rows = [[method, set_name, values["num"], *(values.get(k, float("nan")) for k in keys)]
            for method, per_set in results.items() for set_name, values in per_set.items()]
    return header, rows


def format_table(results: Results, digits: int = 3) -> str:
    """A Markdown table (also what the console shows); HCE as an integer-like number."""
    header, rows = _rows(results)
    shown = [h + BETTER.get(h, "") for h in header]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[0]), str(row[1]), str(row[2])]
        for name, value in zip(header[3:], row[3:]):
            cells.append(f"{value:.0f}" if name == "HCE" else f"{value:.{digits}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_reports(results: Results, save_dir: PathLike) -> Dict[str, Path]:
    """``results.md`` (rounded), ``results.csv`` and ``results.json`` (unrounded) in ``save_dir``."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": save_dir / "results.md", "csv": save_dir / "results.csv", "json": save_dir / "results.json"}
    paths["md"].write_text(format_table(results) + "\n")
    header, rows = _rows(results)
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([row[:3] + [repr(float(v)) for v in row[3:]] for row in rows])
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    return paths


def plot_curves(curves: Curves, save_dir: PathLike) -> List[Path]:
    """Per set: PR curves and Fβ-threshold curves of every method, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    sets = sorted({s for per_set in curves.values() for s in per_set},
                  key=lambda s: (DIS_SETS.index(s) if s in DIS_SETS else len(DIS_SETS), s))
    written = []
    for set_name in sets:
        for kind in ("pr", "fm"):
            fig, ax = plt.subplots(figsize=(4.5, 4), dpi=120)
            for method, per_set in curves.items():
                if set_name not in per_set:
                    continue
                c = per_set[set_name]
                if kind == "pr":
                    ax.plot(c["recall"], c["precision"], label=method)
                else:
                    ax.plot(np.arange(len(c["fm"])), c["fm"], label=method)
            if kind == "pr":
                ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR curve · {set_name}")
            else:
                ax.set(xlabel="threshold", ylabel="Fβ", xlim=(0, 255), ylim=(0, 1.02), title=f"Fβ curve · {set_name}")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower left" if kind == "pr" else "lower center")
            fig.tight_layout()
            path = save_dir / f"{kind}_{set_name}.png"
            fig.savefig(path)
            plt.close(fig)
            written.append(path)
    return written
