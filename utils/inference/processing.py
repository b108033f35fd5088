"""The authors' test-time pre- and post-processing (docs/prediction.md).

Pre: RGB → resize to testsize × testsize (Pillow bilinear) → tensor → ImageNet
normalisation. Post: P1 logits → bilinear to the mask's size
(align_corners=False) → sigmoid → per-image min-max ((x − min) / (max − min + 1e-8))
→ ×255 → nearest integer → 8-bit map.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from utils.data.transforms import image_to_tensor, resize_8bit


def input_size(height: int, width: int, testsize: int, keep_aspect: bool = False) -> Tuple[int, int]:
    """The (H, W) an image is resized to: the authors' ``testsize``×``testsize`` square, or with
    ``keep_aspect`` the long side ``testsize`` and the short side the nearest multiple of 32 (at
    least 32) of its proportional length."""
    if not keep_aspect:
        return testsize, testsize
    if height >= width:
        return testsize, max(32, int(round(width * testsize / height / 32)) * 32)
    return max(32, int(round(height * testsize / width / 32)) * 32), testsize


def preprocess(image: Image.Image, size: Union[int, Tuple[int, int]]) -> torch.Tensor:
    """A Pillow RGB image as a 1×3×size×size (or 1×3×H×W) normalised batch."""
    return image_to_tensor(resize_8bit(image, size)).unsqueeze(0)


#: the post-processing of :func:`postprocess`, in its order, as said to other runtimes (the ONNX
#: file's ``postprocess`` metadata, docs/onnx.md)
POSTPROCESS_STEPS = (
    "1. resize the P1 logits (B×1×h×w) bilinearly to the image's own H×W (align_corners=False, half-pixel "
    "centres), on the logits, before anything else; "
    "2. sigmoid; "
    "3. min-max per image: (p - min) / (max - min + 1e-8); "
    "4. ×255, round to the nearest integer, clip to 0..255, uint8. "
    "Another order (the sigmoid or the min-max before the resize) gives another map, off by several grey levels"
)


def postprocess(logits: torch.Tensor, size_hw: Tuple[int, int]) -> np.ndarray:
    """One 1×1×h×w (or 1×h×w) P1 logit map → H×W uint8 map at ``size_hw`` = (H, W)."""
    logits = logits.float().reshape(1, 1, *logits.shape[-2:])
    prob = torch.sigmoid(F.interpolate(logits, size=tuple(size_hw), mode="bilinear", align_corners=False))
    prob = (prob - prob.min()) / (prob.max() - prob.min() + 1e-8)
    return np.rint(prob[0, 0].cpu().numpy() * 255).clip(0, 255).astype(np.uint8)


def cutout(image: np.ndarray, alpha: np.ndarray, own_alpha: Optional[np.ndarray] = None) -> np.ndarray:
    """H×W×4 RGBA: the photo's RGB with ``alpha`` (a map, H×W uint8) as its alpha channel,
    limited by the photo's own alpha when it has one (a pixel transparent in the input stays
    transparent). test.py ``--cutout`` gives the map itself; the web app the thresholded map."""
    if own_alpha is not None:
        alpha = np.minimum(alpha, own_alpha)
    return np.dstack([image, alpha.astype(np.uint8)])


class MapDifference(NamedTuple):
    """How far apart two 8-bit maps of one image are, in grey levels."""

    max_grey: int
    beyond_one: int  # pixels more than 1 grey level apart
    pixels: int

    @property
    def share_beyond_one(self) -> float:
        return self.beyond_one / self.pixels if self.pixels else 0.0


def map_difference(got: np.ndarray, expected: np.ndarray) -> MapDifference:
    """The grey-level difference of two maps of the same shape (the agreement test.py's maps are held to)."""
    if got.shape != expected.shape:
        raise ValueError(f"maps of different shapes: {got.shape} and {expected.shape}")
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    return MapDifference(int(diff.max()) if diff.size else 0, int((diff > 1).sum()), int(diff.size))
