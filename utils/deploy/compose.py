"""Turning a photo and FSANet's map into what the web app shows: a binary mask, a cut-out
(RGBA, transparent background) and an overlay."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from utils.inference.processing import cutout

#: overlay colour (RGB) and opacity over the object
OVERLAY_RGB, OVERLAY_ALPHA = (255, 40, 90), 0.5


@dataclass
class Prediction:
    """One photo's result: its name, its RGB pixels and test.py's map of it."""

    name: str
    image: np.ndarray  # H×W×3 uint8
    map: np.ndarray  # H×W uint8, what test.py writes for this photo
    alpha: Optional[np.ndarray] = None  # H×W uint8: the photo's own transparency, if it has one


def compose(
    image: np.ndarray, prob_map: np.ndarray, threshold: int, alpha: Optional[np.ndarray] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(binary mask, cut-out, overlay)`` of a photo and its map at ``threshold`` (0–255).

    The binary mask is 255 where the map exceeds the threshold. The cut-out is the photo
    with the map as its alpha channel, pixels at or below the threshold fully
    transparent (RGBA); for a photo with transparency of its own (``alpha``) the cut-out's
    alpha is limited by it, so a pixel transparent in the input stays transparent. The
    overlay tints the masked pixels.
    """
    keep = prob_map > threshold
    mask = np.where(keep, 255, 0).astype(np.uint8)
    cut = cutout(image, np.where(keep, prob_map, 0).astype(np.uint8), alpha)
    tint = np.asarray(OVERLAY_RGB, dtype=np.float32)
    blended = image.astype(np.float32) * (1 - OVERLAY_ALPHA) + tint * OVERLAY_ALPHA
    overlay = np.where(keep[..., None], np.rint(blended), image).astype(np.uint8)
    return mask, cut, overlay
