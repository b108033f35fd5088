"""One prediction against one mask, with what the mask alone decides computed once per mask.

pysodmetrics computes each metric on its own: every metric re-normalises the
map, the weighted Fβ re-computes the mask's Euclidean distance transform, and
HCE re-skeletonises the mask, for every method scored on it. At DIS5K sizes
(~2500×3000) that is ~3.9 s per image and method. Here

- :class:`MaskQuantities` holds what depends on the mask only: the binary mask,
  its skeleton (HCE), the distance weights and nearest-object-pixel map of the
  weighted Fβ, and the mask side of Sα's four quadrants; it is built once per
  mask and shared by every method scored on that mask;
- the per-image functions here (:func:`s_measure`, :func:`e_curve`,
  :func:`weighted_f`) compute the very values pysodmetrics' ``step`` would: the same
  operations on the same arrays in the same order, so every number is equal to the
  last bit (``tests/test_pair_scores.py`` compares them with ``==``); the metric
  objects that call them are in :mod:`utils.evaluation.pair_metrics`.
  Fβ and Eφ share one 256-bin histogram; MAE and the weighted Fβ share
  ``|map − mask|``; the weighted Fβ filters only where its result is read.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, List, Tuple

import cv2
import numpy as np
from py_sod_metrics.utils import EPS
from scipy.ndimage import convolve, distance_transform_edt

from utils.evaluation.boundary import MbaBands, mask_boundary, mba_bands
from utils.evaluation.skeleton import skeletonize

#: the weighted Fβ's Gaussian (MATLAB ``fspecial('gaussian', 7, 5)``) reaches 3 pixels out.
WFM_REACH = 3


class MaskQuantities:
    """What one 8-bit mask alone decides, computed on first use and kept for every method."""

    def __init__(self, gt: np.ndarray) -> None:
        self.gt = np.asarray(gt) > 128
        self.background = ~self.gt
        self.fg = int(np.count_nonzero(self.gt))
        self.size = self.gt.size

    @cached_property
    def object_pixels(self) -> np.ndarray:
        """Flat indices of the object's pixels, in raster order (the order of ``array[gt]``)."""
        return np.flatnonzero(self.gt)

    @cached_property
    def skeleton(self) -> np.ndarray:
        """HCE's skeleton of the mask (equal to ``skimage.morphology.skeletonize``)."""
        return skeletonize(self.gt)

    @cached_property
    def mba_bands(self) -> MbaBands:
        """mBA's five boundary bands of the mask."""
        return mba_bands(self.gt)

    @cached_property
    def biou_boundary(self) -> np.ndarray:
        """BIoU's boundary of the mask (boolean)."""
        return mask_boundary(self.gt)

    @cached_property
    def wfm(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(background weights ``B`` in raster order, band pixels, their nearest object pixels).

        ``B = 2 − exp(ln 0.5 / 5 · distance)`` off the object (1 on it). The band is
        the background within :data:`WFM_REACH` pixels (Chebyshev) of the object,
        the only place where the error copied from the nearest object pixel can
        reach the filtered error on the object; flat indices.
        """
        nearest = distance_transform_edt(self.gt == 0, return_distances=False, return_indices=True)
        h, w = self.gt.shape
        # scipy's distances are sqrt(dy² + dx²) of these indices; integer squares give the same doubles
        wide = np.int64 if h * h + w * w >= 2**31 else nearest.dtype  # squared distances must not overflow
        dy = nearest[0].astype(wide, copy=False) - np.arange(h, dtype=wide)[:, None]
        dx = nearest[1].astype(wide, copy=False) - np.arange(w, dtype=wide)[None, :]
        squared = (dy * dy + dx * dx)[self.background]
        weights = 2 - np.exp(np.log(0.5) / 5 * np.sqrt(squared.astype(np.float64)))
        side = 2 * WFM_REACH + 1
        near_object = cv2.dilate(self.gt.astype(np.uint8), np.ones((side, side), np.uint8)) != 0
        band = np.flatnonzero(near_object & self.background)
        source = nearest[0].reshape(-1)[band].astype(np.intp) * w + nearest[1].reshape(-1)[band]
        return weights, band, source

    @cached_property
    def quadrants(self) -> List[Tuple[Tuple[slice, slice], float, Any, Any, np.ndarray]]:
        """Sα's four quadrants around the object's centroid: (slices, area weight,
        mask mean, mask variance, mask − mean) for each, as pysodmetrics splits them."""
        h, w = self.gt.shape
        area = h * w
        if self.fg == 0:
            cy, cx = np.round(h / 2), np.round(w / 2)
        else:  # the centroid from integer sums: exact, as the mean of the (row, col) list is
            rows, cols = np.nonzero(self.gt)
            cy, cx = (
                (np.float64(rows.sum(dtype=np.int64)) / self.fg).round(),
                (np.float64(cols.sum(dtype=np.int64)) / self.fg).round(),
            )
        cy, cx = int(cy) + 1, int(cx) + 1
        w_lt = cx * cy / area
        w_rt = cy * (w - cx) / area
        w_lb = (h - cy) * cx / area
        w_rb = 1 - w_lt - w_rt - w_lb
        out = []
        for part, weight in (
            ((slice(0, cy), slice(0, cx)), w_lt),
            ((slice(0, cy), slice(cx, w)), w_rt),
            ((slice(cy, h), slice(0, cx)), w_lb),
            ((slice(cy, h), slice(cx, w)), w_rb),
        ):
            gt = self.gt[part]
            n = gt.size
            y = np.mean(gt)
            centred = gt - y
            sigma_y = np.sum(centred**2) / (n - 1 + EPS)
            out.append((part, weight, y, sigma_y, centred))
        return out


def _quadrant_ssim(pred: np.ndarray, y: Any, sigma_y: Any, centred_gt: np.ndarray) -> float:
    """Sα's SSIM of one quadrant (pysodmetrics' ``Smeasure.ssim`` with the mask side given)."""
    n = pred.size
    x = np.mean(pred)
    centred = pred - x
    sigma_x = np.sum(centred**2) / (n - 1 + EPS)
    sigma_xy = np.sum(centred * centred_gt) / (n - 1 + EPS)
    alpha = 4 * x * y * sigma_xy
    beta = (x**2 + y**2) * (sigma_x + sigma_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1 if beta == 0 else 0


def s_measure(metric: Any, pred: np.ndarray, mask: MaskQuantities) -> Any:
    gt = mask.gt
    y = np.mean(gt)
    if y == 0:
        return 1 - np.mean(pred)
    if y == 1:
        return np.mean(pred)
    inside, outside = pred[gt], pred[mask.background]
    object_score = metric.s_object(inside) * y + metric.s_object(1 - outside) * (1 - y)
    region_score = 0
    for part, weight, y_q, sigma_q, centred in mask.quadrants:
        region_score = region_score + _quadrant_ssim(pred[part], y_q, sigma_q, centred) * weight
    return np.maximum(0, object_score * metric.alpha + region_score * (1 - metric.alpha))


def e_curve(fg_hist: np.ndarray, bg_hist: np.ndarray, metric: Any, mask: MaskQuantities) -> np.ndarray:
    """Eφ over the 256 thresholds from the map's histograms on and off the object."""
    on = np.cumsum(np.flip(fg_hist), axis=0)
    off = np.cumsum(np.flip(bg_hist), axis=0)
    predicted = on + off
    predicted_bg = mask.size - predicted
    if mask.fg == 0:
        total = predicted_bg
    elif mask.fg == mask.size:
        total = predicted
    else:
        parts, combinations = metric.generate_parts_numel_combinations(
            fg_fg_numel=on, fg_bg_numel=off, pred_fg_numel=predicted, pred_bg_numel=predicted_bg
        )
        weighted = np.empty((4, 256), dtype=np.float64)
        for i, (count, (a, b)) in enumerate(zip(parts, combinations)):
            align = 2 * (a * b) / (a**2 + b**2 + EPS)
            weighted[i] = (align + 1) ** 2 / 4 * count
        total = weighted.sum(axis=0)
    return total / (mask.size - 1 + EPS)


def _filtered_at(padded: np.ndarray, width: int, pixels: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.convolve(image, kernel, mode="constant")`` at flat indices ``pixels`` of the
    image only, from the image zero-padded by the kernel's reach (``padded``, flat): the same
    products summed in the same order (scipy's, the kernel's raster order), so equal bits."""
    reach = kernel.shape[0] // 2
    stride = width + 2 * reach
    rows, cols = np.divmod(pixels, width)
    centre = (rows + reach) * stride + cols + reach
    taps = [((dy - reach) * stride + dx - reach, weight) for (dy, dx), weight in np.ndenumerate(kernel[::-1, ::-1])]
    total = padded[centre + taps[0][0]] * taps[0][1]
    index, term = np.empty_like(centre), np.empty_like(total)
    for offset, weight in taps[1:]:
        np.add(centre, offset, out=index)
        np.take(padded, index, out=term)
        term *= weight
        total += term
    return total


#: filter only the needed pixels when they are under this share of the image (else the whole image).
SPARSE_SHARE = 0.06


def weighted_f(metric: Any, error: np.ndarray, mask: MaskQuantities) -> Any:
    """The weighted Fβ (pysodmetrics' ``cal_wfm``) from ``|map − mask|``.

    The filtered error is only read on the object where it may undercut the error
    (``filtered < error``): it is never negative, so object pixels without error are skipped.
    """
    weights, band, source = mask.wfm
    kernel = metric.matlab_style_gauss2D((7, 7), sigma=5)
    w = error.shape[1]
    reach = kernel.shape[0] // 2
    on = error.reshape(-1)[mask.object_pixels]  # the error on the object, in raster order
    wrong = np.flatnonzero(on > 0)
    if wrong.size < SPARSE_SHARE * error.size:
        # the error, copied into the band from the nearest object pixel, zero-padded for the filter
        padded = np.pad(error, reach)
        rows, cols = np.divmod(band, w)
        padded.reshape(-1)[(rows + reach) * (w + 2 * reach) + cols + reach] = error.reshape(-1)[source]
        filtered = _filtered_at(padded.reshape(-1), w, mask.object_pixels[wrong], kernel)
        lower = filtered < on[wrong]
        on[wrong[lower]] = filtered[lower]
    else:
        spread = error.copy()
        spread.reshape(-1)[band] = error.reshape(-1)[source]
        filtered = convolve(spread, weights=kernel, mode="constant", cval=0)
        on = np.where(mask.gt & (filtered < error), filtered, error)[mask.gt]
    off = error[mask.background] * weights
    tp = mask.fg - np.sum(on)
    fp = np.sum(off)
    recall = 1 - np.mean(on)
    precision = tp / (tp + fp + EPS)
    return (1 + metric.beta) * recall * precision / (recall + metric.beta * precision + EPS)


def histograms(levels: np.ndarray, mask: MaskQuantities) -> Tuple[np.ndarray, np.ndarray]:
    """Counts of each 8-bit level of the normalised map on and off the object."""
    on = np.bincount(levels[mask.gt], minlength=256)
    off = np.bincount(levels.reshape(-1), minlength=256) - on
    return on, off


def normalise(pred: np.ndarray) -> np.ndarray:
    """The 8-bit map as every pysodmetrics metric normalises it (``prepare_data``: ``/ 255``,
    then min–max unless constant), computed in place: the same operations, fewer temporaries."""
    p = np.asarray(pred) / 255
    low, high = p.min(), p.max()
    if high != low:
        np.subtract(p, low, out=p)
        np.divide(p, high - low, out=p)
    return p
