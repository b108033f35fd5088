"""The DIS metric table with pysodmetrics (``eval.py`` is the CLI; reports in ``utils.evaluation.reports``).

Per set and method: maxFβ and mean Fβ (β² = 0.3, over 256 thresholds, per-image
curves averaged), weighted Fβ, MAE, Sα (α = 0.5), mean and max Eφ, and HCEγ
(relax 5, epsilon 2.0) under a binarisation rule (``utils.evaluation.hce``: IS-Net's
``> 128`` by default, the benchmark's definition), and BiRefNet's boundary metrics mBA,
maxBIoU and meanBIoU (``utils.evaluation.boundary``). "Overall" is the plain mean
of DIS-TE1..4, metric by metric, as the published DIS tables report it; its
``num`` is the sum.

Scoring whole sets of predictions: ``utils.evaluation.scoring``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import py_sod_metrics as sod

from utils.common.logs import get_logger
from utils.evaluation.boundary import BoundaryAccuracy, BoundaryIoU
from utils.evaluation.hce import HumanCorrectionEffort
from utils.evaluation.pairs import MaskQuantities, add_pair

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

METRIC_KEYS = ("maxFm", "meanFm", "wFm", "MAE", "Sm", "meanEm", "maxEm", "HCE", "mBA", "maxBIoU", "meanBIoU")
OVERALL = "Overall"
#: what the Overall row is, for reports.
OVERALL_TEXT = "Overall = plain mean of DIS-TE1..4 per metric (num: their sum); not all TE images pooled"

Results = Dict[str, Dict[str, Dict[str, float]]]  # {method: {set: {metric: value}}}
Curves = Dict[str, Dict[str, Dict[str, np.ndarray]]]  # {method: {set: {curve: values}}}


def new_metrics(
    hce_rule: Optional[str] = "isnet", only: Optional[Sequence[str]] = None, boundary: bool = True
) -> Dict[str, Any]:
    """Fresh pysodmetrics objects for one (method, set); ``hce_rule=None`` leaves HCE out,
    ``boundary=False`` mBA and BIoU (``utils.evaluation.boundary``), ``only`` keeps those keys
    (``fm``, ``wfm``, ``mae``, ``sm``, ``em``, ``hce``, ``mba``, ``biou``)."""
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
    if boundary:
        metrics["mba"], metrics["biou"] = BoundaryAccuracy(), BoundaryIoU()
    return {k: v for k, v in metrics.items() if only is None or k in only}


def step_metrics(metrics: Dict[str, Any], pred: np.ndarray, gt: np.ndarray, mask: Optional[MaskQuantities] = None) -> None:
    """Add one (uint8 prediction, uint8 mask) pair of equal size; ``mask`` is the mask's
    :class:`utils.evaluation.pairs.MaskQuantities` (shared by every method scored on
    it), built here when not given. The values are pysodmetrics' to the last bit."""
    add_pair(metrics, pred, gt, mask)


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
    if "mba" in metrics:
        values["mBA"] = float(metrics["mba"].get_results()["mba"])
    if "biou" in metrics:
        biou = metrics["biou"].get_results()["biou"]["curve"]
        values.update(maxBIoU=float(biou.max()), meanBIoU=float(biou.mean()))
        curves["biou"] = biou
    return {k: values[k] for k in METRIC_KEYS if k in values}, curves
