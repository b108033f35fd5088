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
pysodmetrics' definition; the relaxation and the walk along the boundaries are
written here (on arrays, :meth:`HumanCorrectionEffort.region_effort`) so that
they take that skeleton and run at DIS sizes, and tests keep the count equal to
pysodmetrics' own ``cal_hce`` and IS-Net's.
"""

from __future__ import annotations

from typing import Dict, Optional

import cv2
import numpy as np
import py_sod_metrics as sod
from py_sod_metrics.utils import prepare_data

from utils.evaluation.conventions import HCE_RULE_TEXT, HCE_RULES  # noqa: E402,F401  (re-exported)
from utils.evaluation.skeleton import skeletonize


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
    """The mask's skeleton (equal to scikit-image's ``skeletonize``), the structure HCE keeps in FN."""
    return skeletonize(gt_bool)


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
            total += self.region_effort(region.astype(np.uint8), condition)
        return total

    def region_effort(self, region: np.ndarray, condition: np.ndarray) -> int:
        """Control points plus independent regions of one relaxed error map (0/1 ``uint8``).

        The same count as pysodmetrics' ``filter_conditional_boundary`` followed by
        ``count_polygon_control_points``, with the walk along the contours done on
        arrays: a contour pixel is kept when the dilated ``condition`` holds there
        and no earlier contour pixel was the same pixel; the kept runs of each
        contour are the boundary pieces, the last joined to the reversed first when
        their ends touch, and each piece is simplified by Douglas–Peucker. Regions
        that keep no boundary pixel are the independent ones.
        """
        if not region.any():
            return 0
        contours, hierarchy = cv2.findContours(region, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
        near = cv2.dilate(condition.astype(np.uint8), self.morphology_kernel)
        lengths = np.array([len(c) for c in contours])
        points = np.concatenate(contours).reshape(-1, 2)  # (col, row) in the order the walk visits them
        cols, rows = points[:, 0], points[:, 1]
        linear = rows.astype(np.intp) * region.shape[1] + cols
        kept = near[rows, cols] != 0  # a walked pixel next to the condition ...
        repeated = np.flatnonzero(kept & (np.bincount(linear, minlength=region.size)[linear] > 1))
        if repeated.size:  # ... on its first visit only
            _, first = np.unique(linear[repeated], return_index=True)
            kept[repeated] = False
            kept[repeated[first]] = True
        owner = np.repeat(np.arange(len(contours)), lengths)  # contour of each point
        # a region is one outer border (even depth in the tree) and the holes directly inside it
        parent = hierarchy[0, :, 3]
        depth, ancestor = np.zeros(len(contours), int), parent.copy()
        while (ancestor >= 0).any():
            inside = ancestor >= 0
            depth[inside] += 1
            ancestor[inside] = parent[ancestor[inside]]
        region_of = np.where(depth % 2 == 1, parent, np.arange(len(contours)))
        outer = np.count_nonzero(depth % 2 == 0)
        independent = outer - len(np.unique(region_of[owner[kept]]))
        # the kept runs of each contour are its boundary pieces
        opens = kept.copy()
        opens[1:] &= ~kept[:-1] | (owner[1:] != owner[:-1])
        closes = kept.copy()
        closes[:-1] &= ~kept[1:] | (owner[1:] != owner[:-1])
        run_start, run_stop = np.flatnonzero(opens), np.flatnonzero(closes) + 1
        run_owner = owner[run_start]
        joined = np.zeros(len(run_start), bool)  # runs that became one piece with another
        per_contour = np.bincount(run_owner, minlength=len(contours))
        tails = (np.cumsum(per_contour) - 1)[per_contour > 1]  # last run of each contour with several
        heads = tails - per_contour[per_contour > 1] + 1
        gap = np.abs(points[run_start[heads]] - points[run_stop[tails] - 1]).max(axis=1)
        heads, tails = heads[gap == 1], tails[gap == 1]  # the walk's two ends touch (8-neighbours) ...
        joined[heads] = joined[tails] = True
        alone = np.flatnonzero(~joined)
        # ... so the last run, then the first reversed, is one piece; every other run is a piece alone
        first = np.concatenate([run_start[alone], run_start[tails], run_stop[heads] - 1])
        step = np.concatenate([np.ones(len(alone) + len(tails), np.intp), np.full(len(heads), -1, np.intp)])
        length = np.concatenate(
            [run_stop[alone] - run_start[alone], run_stop[tails] - run_start[tails], run_stop[heads] - run_start[heads]]
        )
        piece = np.concatenate([alone, tails, tails])  # a joined piece: its last run, then its first reversed
        return self._control_points(points, first, step, length, piece) + int(independent)

    def _control_points(self, points, first, step, length, piece) -> int:
        """Douglas–Peucker vertices of every piece, a piece being one or two segments of ``points``
        (``first`` index, ``step`` ±1, ``length``) that share a ``piece`` number, in order.

        The count depends only on the piece's shape relative to its first point (OpenCV works on
        coordinate differences), so the pieces of each length are grouped by shape and
        ``cv2.approxPolyDP`` runs once per distinct shape; an open curve of ≤ 2 points keeps both.
        """
        if not len(first):
            return 0
        order = np.lexsort((np.arange(len(piece)), piece))  # segments of a piece next to each other, in order
        first, step, length, piece = first[order], step[order], length[order], piece[order]
        ends = np.cumsum(length)
        index = np.repeat(first - step * (ends - length), length) + np.repeat(step, length) * np.arange(ends[-1])
        coords = points[index]
        starts_of_piece = np.flatnonzero(np.concatenate([[True], piece[1:] != piece[:-1]]))
        piece_start = (ends - length)[starts_of_piece]
        piece_length = np.add.reduceat(length, starts_of_piece)
        total = int(piece_length[piece_length <= 2].sum())
        for size in np.unique(piece_length[piece_length > 2]).tolist():
            begins = piece_start[piece_length == size]
            shapes = (coords[begins[:, None] + np.arange(size)] - coords[begins][:, None, :]).reshape(len(begins), -1)
            distinct, inverse = _distinct_rows(shapes)
            counts = np.array([len(cv2.approxPolyDP(d.reshape(size, 1, 2), self.epsilon, False)) for d in distinct])
            total += int(counts[inverse].sum())
        return total

    def get_results(self) -> Dict[str, float]:
        return {"hce": float(np.mean(np.array(self.hces, dtype=np.float64)))}


def _distinct_rows(rows: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """(distinct rows, index of each row's distinct row) of a 2-D integer array: rows hashed to
    one integer and grouped by it, checked row by row (``np.unique(axis=0)`` on a collision)."""
    weights = np.random.default_rng(0).integers(1, 2**62, rows.shape[1], dtype=np.int64)
    keys = rows.astype(np.int64) @ weights  # wraps around: a hash
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    distinct = rows[first]
    if np.array_equal(distinct[inverse], rows):
        return distinct, inverse
    distinct, inverse = np.unique(rows, axis=0, return_inverse=True)
    return distinct, inverse.reshape(-1)
