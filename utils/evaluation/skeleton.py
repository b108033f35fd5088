"""The mask skeleton HCEγ keeps in the false negatives, equal to scikit-image's ``skeletonize``.

IS-Net's HCE (and pysodmetrics') uses ``skimage.morphology.skeletonize``, the
Zhang–Suen parallel thinning: two sub-iterations repeated until nothing
changes, each removing, all at once, the foreground pixels whose 8-neighbour
configuration a look-up table marks for that sub-iteration. scikit-image scans
the whole image in every sub-iteration, which at DIS5K sizes (~2500×3000, tens of
sub-iterations) takes about a second per mask.

:func:`skeletonize` computes the same pixels by re-examining only the pixels
next to those removed since their last examination: a pixel whose neighbourhood
did not change gets the same answer as before. The look-up table is
scikit-image's (BSD-3-Clause, ``skimage/morphology/_skeletonize_cy.pyx``),
written below as the codes marked for each sub-iteration; a test keeps the
result equal to ``skimage.morphology.skeletonize`` pixel for pixel.
"""

from __future__ import annotations

import numpy as np

#: neighbour codes (bit k set: neighbour k present, k = 0..7 for NW, N, NE, E, SE, S, SW, W)
#: removed in the first sub-iteration only, the second only, and both.
FIRST_ONLY = (3, 6, 11, 12, 14, 131, 134, 143, 159, 161, 194, 198, 207, 227, 231, 243)
SECOND_ONLY = (24, 26, 56, 62, 63, 96, 104, 108, 126, 176, 192, 224, 248, 249, 252)
BOTH = (7, 10, 15, 28, 30, 31, 40, 60, 112, 120, 124, 130, 135, 160, 193, 195, 199, 225, 240, 241)


def _table() -> np.ndarray:
    table = np.zeros(256, np.uint8)
    table[list(FIRST_ONLY)] = 1
    table[list(SECOND_ONLY)] = 2
    table[list(BOTH)] = 3
    return table


TABLE = _table()


def skeletonize(mask: np.ndarray) -> np.ndarray:
    """The boolean skeleton of a 2-D boolean mask, pixel for pixel ``skimage.morphology.skeletonize(mask)``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"skeletonize takes a 2-D mask, got shape {mask.shape}")
    height, width = mask.shape
    stride = width + 2
    grid = np.zeros((height + 2, stride), np.uint8)  # a zero border: no pixel needs a bounds check
    grid[1:-1, 1:-1] = mask
    flat = grid.reshape(-1)
    offsets = np.array([-stride - 1, -stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1], np.intp)
    recent = [np.empty(0, np.intp), np.empty(0, np.intp)]  # removed in the last two sub-iterations
    step = 0
    while True:
        if step < 2:  # each sub-iteration examines every foreground pixel once
            pixels = np.flatnonzero(flat)
        else:
            removed = np.concatenate(recent)
            if removed.size == 0:  # two sub-iterations in a row removed nothing: done
                break
            near = (removed[:, None] + offsets).reshape(-1)
            pixels = np.unique(near[flat[near] != 0])
        code = np.zeros(pixels.size, np.intp)
        for bit, offset in enumerate(offsets):
            code |= flat[pixels + offset].astype(np.intp) << bit
        marked = TABLE[code]
        gone = pixels[(marked == 3) | (marked == 1 + step % 2)]
        flat[gone] = 0  # after all codes are read: the sub-iteration is parallel
        recent = [recent[1], gone]
        step += 1
    return grid[1:-1, 1:-1].astype(bool)
