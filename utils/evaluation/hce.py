"""Human Correction Effort (HCEγ, IS-Net's DIS benchmark metric) with a choice of binarisation rule.

HCEγ counts the polygon control points and independent regions a person would
need to fix a prediction (relax γ = 5, Douglas–Peucker epsilon 2.0). Published
DIS tables (IS-Net, BiRefNet, MVANet, FSANet) were scored with IS-Net's
``hce_metric_main.py``; two rules for turning an 8-bit map into a binary one
are in use:

- ``isnet`` (default): the raw 8-bit map ``> 128``, the mask ``> 128``; no
  normalisation. This is the benchmark's definition.
- ``pysod``: pysodmetrics' default ``HumanCorrectionEffortMeasure.step``: the map
  min-max normalised to [0, 1], then ``> 0.5`` (what MVANet's evaluation does).
  It differs from ``isnet`` wherever a map holds exactly 128 and widely on maps
  that do not span 0–255.

The ground-truth skeleton is rule-independent and is the costly part on large
masks; :class:`HumanCorrectionEffort` takes it precomputed (:func:`gt_skeleton`)
so that several methods scored on one mask share it. The counting itself is
pysodmetrics' (its boundary filter and polygon counter); the relaxation is
written here so that it can take that skeleton, and a test keeps it equal to
pysodmetrics' own ``cal_hce``.
"""

from __future__ import annotations

from typing import Dict, Optional

import cv2
import numpy as np
import py_sod_metrics as sod
from py_sod_metrics.utils import prepare_data
from skimage import morphology

from utils.evaluation.conventions import HCE_RULE_TEXT, HCE_RULES  # noqa: E402,F401  (re-exported)


def binarize_mask(gt: np.ndarray) -> np.ndarray:
    """An 8-bit mask as a boolean object mask (``> 128``; both rules agree)."""
    return np.asarray(gt) > 128


def binarize_prediction(pred: np.ndarray, rule: str = "isnet") -> np.ndarray:
    """An 8-bit prediction map as the boolean map HCE scores under ``rule``."""
    if rule == "isnet":
        return np.asarray(pred) > 128
    if rule == "pysod":
        normalised, _ = prepare_data(np.asarray(pred), np.zeros(np.shape(pred), np.uint8))
        return normalised > 0.5
    raise ValueError(f"unknown HCE rule {rule!r}; choose one of {', '.join(HCE_RULES)}")


def gt_skeleton(gt_bool: np.ndarray) -> np.ndarray:
    """The mask's skeleton (scikit-image ``skeletonize``), the structure HCE keeps in FN."""
    return morphology.skeletonize(gt_bool).astype(bool)


class HumanCorrectionEffort(sod.HumanCorrectionEffortMeasure):
    """pysodmetrics' HCE measure with a binarisation ``rule`` and an optional shared skeleton.

    ``step(pred, gt)`` takes 8-bit arrays like every other pysodmetrics metric;
    ``step(pred, gt, skeleton=...)`` reuses a skeleton from :func:`gt_skeleton`.
    """

    def __init__(self, rule: str = "isnet", relax: int = 5, epsilon: float = 2.0) -> None:
        if rule not in HCE_RULES:
            raise ValueError(f"unknown HCE rule {rule!r}; choose one of {', '.join(HCE_RULES)}")
        super().__init__(relax=relax, epsilon=epsilon)
        self.rule = rule

    def step(self, pred: np.ndarray, gt: np.ndarray, skeleton: Optional[np.ndarray] = None) -> None:  # type: ignore[override]
        if np.shape(pred) != np.shape(gt):
            raise ValueError(f"prediction {np.shape(pred)} and mask {np.shape(gt)} differ in size")
        gt_bool = binarize_mask(gt)
        skeleton = gt_skeleton(gt_bool) if skeleton is None else skeleton
        self.hces.append(self.count(binarize_prediction(pred, self.rule), gt_bool, skeleton))

    def count(self, pred: np.ndarray, gt: np.ndarray, skeleton: np.ndarray) -> int:
        """HCEγ of boolean ``pred`` against boolean ``gt`` whose skeleton is ``skeleton``.

        False positives and false negatives are relaxed by γ: parts of them thinner
        than γ next to the union's border are forgiven, except the mask's skeleton,
        which always needs drawing. Their remaining borders give the control points.
        """
        kernel, relax = self.morphology_kernel, self.relax
        tp = pred & gt
        fp, fn = pred & ~gt, gt & ~pred
        core = cv2.erode((pred | gt).astype(np.uint8), kernel, iterations=relax).astype(bool)

        fp_relaxed = fp & core
        for _ in range(relax):  # grow back inside the prediction's own false area only
            fp_relaxed = cv2.dilate(fp_relaxed.astype(np.uint8), kernel).astype(bool) & ~gt
        fp_relaxed &= fp

        fn_relaxed = fn & core
        for _ in range(relax):
            fn_relaxed = cv2.dilate(fn_relaxed.astype(np.uint8), kernel).astype(bool) & ~pred
        fn_relaxed &= fn
        fn_relaxed |= skeleton & ~tp  # missed skeleton pixels are structure, never relaxed

        total = 0
        for region, condition in ((fp_relaxed, tp | fn_relaxed), (fn_relaxed, ~(tp | fp_relaxed | fn_relaxed))):
            contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
            boundaries, independent = self.filter_conditional_boundary(contours, region, condition)
            total += self.count_polygon_control_points(boundaries, epsilon=self.epsilon) + int(independent)
        return total

    def get_results(self) -> Dict[str, float]:
        return {"hce": float(np.mean(np.array(self.hces, dtype=np.float64)))}
