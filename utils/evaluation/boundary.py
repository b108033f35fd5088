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

The bands are computed on bits (:class:`MbaBands`): a binary morphological gradient is "the
window holds both classes", the dilation of the object AND that of the background, and OpenCV's
ellipse is a union of centred rectangles, each a dilation along x then along y; on 64-pixel
words this is ~3× faster than ``cv2.morphologyEx`` and equal to it pixel for pixel (tested).
What depends on the mask alone (the five mBA bands, the mask's BIoU boundary) is computed
once per mask (:class:`utils.evaluation.pairs.MaskQuantities`) and shared by every method.
Each metric is an object with ``step``/``get_results`` (pysodmetrics' protocol) whose
``add`` takes the shared quantities.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

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


def _ellipse_rectangles(radius: int) -> List[Tuple[int, int]]:
    """OpenCV's elliptic structuring element of ``radius`` as a union of centred rectangles
    ``[−a, a] × [−b, b]``: its rows are centred runs whose half-width shrinks away from the middle."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    half = [int(kernel[radius + dy].sum()) // 2 for dy in range(radius + 1)]
    return [(a, max(dy for dy, width in enumerate(half) if width >= a)) for a in sorted(set(half))]


class PackedMask:
    """A boolean H×W image as bits (64 pixels a word, little-endian along x), with zero margins
    wide enough that shifting by up to ``reach`` pixels loses nothing."""

    def __init__(self, shape: Tuple[int, int], reach: int) -> None:
        self.shape = shape
        self.pad_words, self.pad_rows = reach // 64 + 1, reach

    def pack(self, mask: np.ndarray) -> np.ndarray:
        h, _ = self.shape
        packed = np.packbits(mask, axis=1, bitorder="little")
        words = -(-packed.shape[1] // 8)
        buffer = np.zeros((h + 2 * self.pad_rows, (words + 2 * self.pad_words) * 8), np.uint8)
        start = self.pad_words * 8
        buffer[self.pad_rows : self.pad_rows + h, start : start + packed.shape[1]] = packed
        return buffer.view(np.uint64)


def _shift_x(words: np.ndarray, shift: int) -> np.ndarray:
    """Pixel x takes the value of pixel x − ``shift`` (zeros come in)."""
    out = np.zeros_like(words)
    whole, bits = divmod(abs(shift), 64)
    n = words.shape[1]
    if shift > 0:
        source, target = words[:, : n - whole], out[:, whole:]
        up, down = np.uint64(bits), np.uint64(64 - bits)
        if bits:
            target |= source << up
            target[:, 1:] |= source[:, :-1] >> down
        else:
            target |= source
    elif shift < 0:
        source, target = words[:, whole:], out[:, : n - whole]
        up, down = np.uint64(64 - bits), np.uint64(bits)
        if bits:
            target |= source >> down
            target[:, :-1] |= source[:, 1:] << up
        else:
            target |= source
    else:
        out[:] = words
    return out


def _shift_y(words: np.ndarray, shift: int) -> np.ndarray:
    out = np.zeros_like(words)
    if shift > 0:
        out[shift:] = words[:-shift]
    elif shift < 0:
        out[:shift] = words[-shift:]
    else:
        out[:] = words
    return out


def _dilate_run(words: np.ndarray, reach: int, shift: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Dilation by the run [−reach, reach] along one axis: steps of 1, 2, 4 … and the rest
    (a Minkowski sum of {−s, 0, s} sets covers every offset in between)."""
    current, span, step = words, 0, 1
    while span + step <= reach:
        current = current | shift(current, step) | shift(current, -step)
        span, step = span + step, step * 2
    if reach > span:
        rest = reach - span
        current = current | shift(current, rest) | shift(current, -rest)
    return current


class MbaBands:
    """mBA's five boundary bands of a boolean mask: the morphological gradients by OpenCV's
    ellipse, computed on bits (a binary gradient is "the window holds both classes", i.e. the
    dilation of the object AND the dilation of the background, each a union of rectangle
    dilations), equal to ``cv2.morphologyEx(…, MORPH_GRADIENT, ellipse) > 0`` pixel for pixel."""

    def __init__(self, gt: np.ndarray) -> None:
        self.radii = mba_radii(*gt.shape)
        self.layout = PackedMask(gt.shape, max(self.radii))
        inside, outside = self.layout.pack(gt), self.layout.pack(~gt)
        image = inside | outside  # the image's own pixels: dilations spill into the margins
        across: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}  # half-width → both classes dilated along x
        self.bands: List[np.ndarray] = []
        for radius in self.radii:
            grown_in = grown_out = None
            for a, b in _ellipse_rectangles(radius):
                if a not in across:
                    across[a] = (_dilate_run(inside, a, _shift_x), _dilate_run(outside, a, _shift_x))
                part_in, part_out = (_dilate_run(words, b, _shift_y) for words in across[a])
                grown_in = part_in if grown_in is None else grown_in | part_in
                grown_out = part_out if grown_out is None else grown_out | part_out
            self.bands.append(grown_in & grown_out & image)
        self.sizes = [_popcount(band) for band in self.bands]

    def masks(self) -> List[np.ndarray]:
        """The bands as boolean H×W arrays."""
        h, w = self.layout.shape
        rows = slice(self.layout.pad_rows, self.layout.pad_rows + h)
        start = self.layout.pad_words * 8
        return [
            np.unpackbits(band[rows].view(np.uint8)[:, start:], axis=1, bitorder="little", count=w).astype(bool)
            for band in self.bands
        ]

    def accuracy(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """One image's boundary accuracy: ``pred`` the 8-bit map, ``gt`` the boolean mask."""
        agree = self.layout.pack((np.asarray(pred) > 128) == gt)
        shares = []
        with np.errstate(invalid="ignore", divide="ignore"):  # an empty mask has empty bands: NaN, as defined
            for band, size in zip(self.bands, self.sizes):
                shares.append(np.int64(_popcount(agree & band)) / np.int64(size))
        return sum(shares) / MBA_STEPS


def _popcount(words: np.ndarray) -> int:
    return int(np.bitwise_count(words).sum(dtype=np.int64))


def mba_bands(gt: np.ndarray) -> MbaBands:
    """The five boundary bands of a boolean mask (:class:`MbaBands`)."""
    return MbaBands(np.asarray(gt, dtype=bool))


def boundary_accuracy(pred: np.ndarray, gt: np.ndarray, bands: MbaBands) -> float:
    """One image's boundary accuracy: ``pred`` the 8-bit map, ``gt`` the boolean mask."""
    return bands.accuracy(pred, gt)


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

    def add(self, pred: np.ndarray, gt: np.ndarray, bands: MbaBands) -> None:
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
