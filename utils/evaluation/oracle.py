"""pysodmetrics' own objects for the metric table's built-in entries: the oracle the tests and
``bench.eval_dis`` compare the fast path with (never used to score).

:func:`oracle_metrics` makes them, ``step(pred, gt)`` each as pysodmetrics defines it (mBA and
BIoU: their stand-alone definitions), :func:`oracle_per_image` gives their per-image values
under the list names of :mod:`utils.evaluation.pair_metrics`, and :func:`oracle_summary`
their results under the table keys.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import py_sod_metrics as sod

from utils.evaluation.boundary import BoundaryAccuracy, BoundaryIoU
from utils.evaluation.hce import HumanCorrectionEffort


def oracle_metrics(hce_rule: Optional[str] = "isnet", only: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """pysodmetrics objects (and the boundary metrics' definitions) by table name."""
    made = {
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
        "mba": BoundaryAccuracy(),
        "biou": BoundaryIoU(),
    }
    if hce_rule is not None:
        made["hce"] = HumanCorrectionEffort(hce_rule, relax=5, epsilon=2.0)
    return {k: v for k, v in made.items() if only is None or k in only}


def oracle_per_image(objects: Dict[str, Any]) -> Dict[str, List[Any]]:
    """``{"name.list": per-image values}`` under :mod:`utils.evaluation.pair_metrics`' list names."""
    out: Dict[str, List[Any]] = {}
    for name, obj in objects.items():
        if name == "fm":
            out.update({f"fm.{h}": obj._metric_handlers[h].dynamic_results for h in ("fm", "pre", "rec")})
        else:
            lists = {"wfm": "weighted_fms", "mae": "maes", "sm": "sms", "em": "changeable_ems", "hce": "hces"}
            lists.update(mba="bas", biou="bious")
            out[f"{name}.{lists[name]}"] = getattr(obj, lists[name])
    return out


def oracle_summary(objects: Dict[str, Any]) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """pysodmetrics' ``get_results`` under the table keys, and the curves."""
    values: Dict[str, float] = {}
    curves: Dict[str, np.ndarray] = {}
    for name, obj in objects.items():
        res = obj.get_results()
        if name == "fm":
            fm = res["fm"]["dynamic"]
            values.update(maxFm=float(fm.max()), meanFm=float(fm.mean()))
            curves.update(precision=res["pre"]["dynamic"], recall=res["rec"]["dynamic"], fm=fm)
        elif name == "em":
            values.update(meanEm=float(res["em"]["curve"].mean()), maxEm=float(res["em"]["curve"].max()))
        elif name == "biou":
            curve = res["biou"]["curve"]
            values.update(maxBIoU=float(curve.max()), meanBIoU=float(curve.mean()))
            curves["biou"] = curve
        else:
            key = {"wfm": "wFm", "mae": "MAE", "sm": "Sm", "hce": "HCE", "mba": "mBA"}[name]
            values[key] = float(res[name])
    return values, curves


__all__ = ["oracle_metrics", "oracle_per_image", "oracle_summary"]
