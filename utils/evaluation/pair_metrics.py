"""The metrics as objects of their own: ``step(pair)`` per image, ``get_results()`` per set.

A :class:`Pair` is one 8-bit prediction against one 8-bit mask; what it needs (the
normalised map, ``|map − mask|``, the 8-bit normalised levels and their histograms on and
off the object) is computed on first use and shared by every metric stepped on it, and the
mask's own quantities (:class:`utils.evaluation.pairs.MaskQuantities`) are shared by every
method scored on that mask. Each metric keeps its per-image values in named lists
(:meth:`PairMetric.per_image`), merged across worker chunks, and averages them as
pysodmetrics does (``np.mean`` in float64 over images), so every number equals
pysodmetrics' (its objects are the oracle in ``tests/test_pair_scores.py``).

A new metric is a :class:`PairMetric` subclass plus one entry of the metric table
(:data:`utils.evaluation.metrics.METRICS`); ``docs/extending.md`` shows one.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import py_sod_metrics as sod

from utils.evaluation.boundary import BoundaryAccuracy, BoundaryIoU
from utils.evaluation.hce import HumanCorrectionEffort
from utils.evaluation.pairs import MaskQuantities, e_curve, histograms, normalise, s_measure, weighted_f


class Pair:
    """One 8-bit prediction and one 8-bit mask of equal size, with what metrics share."""

    def __init__(self, pred: np.ndarray, gt: np.ndarray, mask: Optional[MaskQuantities] = None) -> None:
        if np.shape(pred) != np.shape(gt):
            raise ValueError(f"prediction {np.shape(pred)} and mask {np.shape(gt)} differ in size")
        self.pred, self.gt = pred, gt
        self.mask = MaskQuantities(gt) if mask is None else mask

    @cached_property
    def normalised(self) -> np.ndarray:
        """The map as pysodmetrics normalises it (``/ 255``, then min–max unless constant)."""
        return normalise(self.pred)

    @cached_property
    def error(self) -> np.ndarray:
        """``|normalised map − mask|``."""
        p = self.normalised
        return np.abs(np.subtract(p, self.mask.gt), out=np.empty_like(p))

    @cached_property
    def levels(self) -> np.ndarray:
        """The 8-bit normalised map (Fβ, Eφ and BIoU threshold it)."""
        return (self.normalised * 255).astype(np.uint8)

    @cached_property
    def histograms(self) -> Tuple[np.ndarray, np.ndarray]:
        """Counts of each level on and off the object."""
        return histograms(self.levels, self.mask)


class PairMetric:
    """A metric of the table: per-image values in the lists named by :attr:`lists`."""

    #: the names of its per-image lists (the first one counts the images)
    lists: Tuple[str, ...] = ()

    def step(self, pair: Pair) -> None:
        raise NotImplementedError

    def get_results(self) -> Dict[str, float]:
        """``{table key: value}`` over the images stepped so far."""
        raise NotImplementedError

    def get_curves(self) -> Dict[str, np.ndarray]:
        """``{curve name: 256 values}`` for the figures (none by default)."""
        return {}

    def per_image(self) -> Dict[str, List[Any]]:
        return {name: getattr(self, name) for name in self.lists}

    def merge(self, other: "PairMetric") -> None:
        """Append ``other``'s per-image values (a later chunk of the same set) to this one's."""
        for name in self.lists:
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(getattr(self, self.lists[0]))


def _mean(values: List[Any], axis: Optional[int] = None) -> Any:
    """pysodmetrics' average over images: ``np.mean`` of a float64 array."""
    return np.mean(np.array(values, dtype=np.float64), axis=axis)


class FMeasure(PairMetric):
    """Fβ (β² = 0.3) over 256 thresholds, with precision and recall: maxFm and meanFm of the
    per-image curves' mean."""

    lists = ("fm", "pre", "rec")

    def __init__(self) -> None:
        self.fm: List[np.ndarray] = []
        self.pre: List[np.ndarray] = []
        self.rec: List[np.ndarray] = []
        self._handlers = {
            "fm": sod.FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3),
            "pre": sod.PrecisionHandler(with_dynamic=True, with_adaptive=False),
            "rec": sod.RecallHandler(with_dynamic=True, with_adaptive=False),
        }

    def step(self, pair: Pair) -> None:
        on, off = pair.histograms
        tps, fps = np.cumsum(np.flip(on)), np.cumsum(np.flip(off))
        mask = pair.mask
        counts = {"tp": tps, "fp": fps, "tn": (mask.size - mask.fg) - fps, "fn": mask.fg - tps}
        for name, handler in self._handlers.items():
            getattr(self, name).append(handler(**counts))

    def get_curves(self) -> Dict[str, np.ndarray]:
        return {"precision": _mean(self.pre, 0), "recall": _mean(self.rec, 0), "fm": _mean(self.fm, 0)}

    def get_results(self) -> Dict[str, float]:
        curve = _mean(self.fm, 0)
        return {"maxFm": float(curve.max()), "meanFm": float(curve.mean())}


class WeightedFMeasure(PairMetric):
    """The weighted Fβ (Margolin et al.), pysodmetrics' ``WeightedFmeasure`` per image."""

    lists = ("weighted_fms",)

    def __init__(self) -> None:
        self.weighted_fms: List[float] = []
        self._definition = sod.WeightedFmeasure()  # its β and Gaussian; its lists stay empty

    def step(self, pair: Pair) -> None:
        value = 0 if pair.mask.fg == 0 else weighted_f(self._definition, pair.error, pair.mask)
        self.weighted_fms.append(value)

    def get_results(self) -> Dict[str, float]:
        return {"wFm": float(_mean(self.weighted_fms))}


class MeanAbsoluteError(PairMetric):
    """MAE of the normalised map."""

    lists = ("maes",)

    def __init__(self) -> None:
        self.maes: List[float] = []

    def step(self, pair: Pair) -> None:
        self.maes.append(np.mean(pair.error))

    def get_results(self) -> Dict[str, float]:
        return {"MAE": float(_mean(self.maes))}


class SMeasure(PairMetric):
    """Sα (α = 0.5), object and region structure."""

    lists = ("sms",)

    def __init__(self) -> None:
        self.sms: List[float] = []
        self._definition = sod.Smeasure()

    def step(self, pair: Pair) -> None:
        self.sms.append(s_measure(self._definition, pair.normalised, pair.mask))

    def get_results(self) -> Dict[str, float]:
        return {"Sm": float(_mean(self.sms))}


class EMeasure(PairMetric):
    """Eφ over 256 thresholds: meanEm and maxEm of the per-image curves' mean."""

    lists = ("changeable_ems",)

    def __init__(self) -> None:
        self.changeable_ems: List[np.ndarray] = []
        self._definition = sod.Emeasure()

    def step(self, pair: Pair) -> None:
        definition, mask = self._definition, pair.mask
        definition.gt_fg_numel, definition.gt_size = mask.fg, mask.size
        self.changeable_ems.append(e_curve(*pair.histograms, definition, mask))

    def get_results(self) -> Dict[str, float]:
        curve = _mean(self.changeable_ems, 0)
        return {"meanEm": float(curve.mean()), "maxEm": float(curve.max())}


class HumanCorrection(PairMetric):
    """HCEγ (relax 5, epsilon 2.0) under a binarisation rule (``utils.evaluation.hce``)."""

    lists = ("hces",)

    def __init__(self, rule: str = "isnet") -> None:
        self._inner = HumanCorrectionEffort(rule, relax=5, epsilon=2.0)
        self.hces: List[float] = self._inner.hces

    def step(self, pair: Pair) -> None:
        self._inner.step(pair.pred, pair.gt, skeleton=pair.mask.skeleton)

    def get_results(self) -> Dict[str, float]:
        return {"HCE": float(_mean(self.hces))}


class MeanBoundaryAccuracy(PairMetric):
    """mBA (BiRefNet's, after CascadePSP): accuracy in five boundary bands."""

    lists = ("bas",)

    def __init__(self) -> None:
        self._inner = BoundaryAccuracy()
        self.bas: List[float] = self._inner.bas

    def step(self, pair: Pair) -> None:
        self._inner.add(pair.pred, pair.mask.gt, pair.mask.mba_bands)

    def get_results(self) -> Dict[str, float]:
        return {"mBA": float(_mean(self.bas))}


class BoundaryIoUCurve(PairMetric):
    """Boundary IoU over 256 thresholds: maxBIoU and meanBIoU of the per-image curves' mean."""

    lists = ("bious",)

    def __init__(self) -> None:
        self._inner = BoundaryIoU()
        self.bious: List[np.ndarray] = self._inner.bious

    def step(self, pair: Pair) -> None:
        self._inner.add(pair.levels, pair.mask.biou_boundary)

    def get_curves(self) -> Dict[str, np.ndarray]:
        return {"biou": _mean(self.bious, 0)}

    def get_results(self) -> Dict[str, float]:
        curve = _mean(self.bious, 0)
        return {"maxBIoU": float(curve.max()), "meanBIoU": float(curve.mean())}


__all__ = [
    "BoundaryIoUCurve",
    "EMeasure",
    "FMeasure",
    "HumanCorrection",
    "MeanAbsoluteError",
    "MeanBoundaryAccuracy",
    "Pair",
    "PairMetric",
    "SMeasure",
    "WeightedFMeasure",
]
