"""Two boundary metrics recent DIS tables report beside the DIS ones, as BiRefNet's evaluator
defines them (``evaluation/metrics.py`` of ZhengPeng7/BiRefNet: ``MBAMeasure``,
``BIoUMeasure``; reported by its ``eval_existingOnes.py`` as ``mBA``, ``maxBIoU``, ``meanBIoU``).

**mBA** (mean boundary accuracy): the map ``> 128`` and the mask ``> 128`` (raw 8-bit values,
no normalisation) are compared inside five bands around the mask's boundary, the morphological
gradient of the mask by OpenCV's elliptic structuring element of radius
``1 + int((((H + W) / 300) − 1) / 5 · i)``, i = 0..4; the share of agreeing pixels in each band
is averaged over the five (an empty mask has no band: ``0 / 0``, NaN, as there). mBA is the
mean over images.

**BIoU** (boundary IoU): the map is min-max normalised as every other metric does it
(``/255``, then min-max unless constant) and cut to 8 bits (``(p·255).astype(uint8)``); its
boundary is the map minus its erosion by a 3×3 square ``round(0.02 · diagonal)`` times (at
least once) after a 1-pixel zero border, so an object cut by the image border has a boundary
there; the mask's boundary likewise, from the 0/255 mask, then ``> 128``. Per image, for each
of the 256 thresholds t = 255 … 0: ``IoU(t) = TP(t) / (|G| + FP(t))`` with TP/FP the boundary-map
pixels ≥ t on / off the mask's boundary and ``|G| = max(#mask boundary pixels, 1)``. The curves
are averaged over images; ``maxBIoU`` and ``meanBIoU`` are the curve's maximum and mean.

What depends on the mask alone (the five mBA bands, the mask's BIoU boundary) is computed
once per mask (:class:`utils.evaluation.pairs.MaskQuantities`) and shared by every method.
Each metric is an object with ``step``/``get_results`` (pysodmetrics' protocol) whose
``add`` takes the shared quantities.
"""

from __future__ import annotations

from typing import Any, Dict, List

import cv2
import numpy as np
from py_sod_metrics.utils import prepare_data

#: mBA: bands of 5 radii from 1 to (H + W) / 300
MBA_STEPS = 5
#: BIoU: the boundary's width as a share of the image diagonal
BIOU_DILATION_RATIO = 0.02


def mba_radii(height: int, width: int) -> List[int]:
    """The five band radii of an H×W mask."""
    low, high = 1, (width + height) / 300
    return [low + int((high - low) / MBA_STEPS * i) for i in range(MBA_STEPS)]


def mba_bands(gt: np.ndarray) -> List[np.ndarray]:
    """The five boundary bands (boolean H×W) of a boolean mask."""
    binary = gt.astype(np.uint8)
    bands = []
    for radius in mba_radii(*gt.shape):
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        bands.append(cv2.morphologyEx(binary, cv2.MORPH_GRADIENT, disk) > 0)
    return bands


def boundary_accuracy(pred: np.ndarray, gt: np.ndarray, bands: List[np.ndarray]) -> float:
    """One image's boundary accuracy: ``pred`` the 8-bit map, ``gt`` the boolean mask."""
    agree = (np.asarray(pred) > 128) == gt
    shares = []
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty mask has empty bands: NaN, as defined
        for band in bands:
            shares.append(np.int64(np.count_nonzero(agree & band)) / np.int64(np.count_nonzero(band)))
    return sum(shares) / MBA_STEPS


def biou_boundary(levels: np.ndarray) -> np.ndarray:
    """An 8-bit image minus its erosion (3×3, ``round(0.02·diagonal)`` times, zero border of 1)."""
    h, w = levels.shape
    times = max(1, int(round(BIOU_DILATION_RATIO * np.sqrt(h**2 + w**2))))
    padded = cv2.copyMakeBorder(levels, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=times)[1 : h + 1, 1 : w + 1]
    return levels - eroded


def mask_boundary(gt: np.ndarray) -> np.ndarray:
    """The boolean mask's BIoU boundary (from its 0/255 form, then ``> 128``)."""
    return biou_boundary(gt.astype(np.uint8) * np.uint8(255)) > 128


def biou_curve(levels: np.ndarray, gt_boundary: np.ndarray) -> np.ndarray:
    """One image's 256 boundary IoUs (thresholds 255 … 0) from the 8-bit normalised map."""
    edge = biou_boundary(levels)
    on = np.bincount(edge[gt_boundary], minlength=256)
    off = np.bincount(edge.reshape(-1), minlength=256) - on
    tp = np.cumsum(np.flip(on), axis=0)
    fp = np.cumsum(np.flip(off), axis=0)
    return tp / (max(int(np.count_nonzero(gt_boundary)), 1) + fp)


class BoundaryAccuracy:
    """mBA: ``step(pred, gt)`` with 8-bit arrays, ``get_results() -> {"mba": mean}``."""

    def __init__(self) -> None:
        self.bas: List[float] = []

    def add(self, pred: np.ndarray, gt: np.ndarray, bands: List[np.ndarray]) -> None:
        self.bas.append(boundary_accuracy(pred, gt, bands))

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        mask = np.asarray(gt) > 128
        self.add(pred, mask, mba_bands(mask))

    def get_results(self) -> Dict[str, Any]:
        return {"mba": np.mean(np.array(self.bas, dtype=np.float64))}


class BoundaryIoU:
    """BIoU: ``step(pred, gt)`` with 8-bit arrays, ``get_results() -> {"biou": {"curve": 256 values}}``."""

    def __init__(self) -> None:
        self.bious: List[np.ndarray] = []

    def add(self, levels: np.ndarray, gt_boundary: np.ndarray) -> None:
        self.bious.append(biou_curve(levels, gt_boundary))

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        normalised, mask = prepare_data(pred, gt)  # pysodmetrics' (and BiRefNet's) /255 and min-max
        self.add((normalised * 255).astype(np.uint8), mask_boundary(mask))

    def get_results(self) -> Dict[str, Any]:
        return {"biou": {"curve": np.mean(np.array(self.bious, dtype=np.float64), axis=0)}}
