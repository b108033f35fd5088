"""The authors' test-time pre- and post-processing (README, "Prediction maps").

Pre: RGB → resize to testsize × testsize (Pillow bilinear) → tensor → ImageNet
normalisation. Post: P1 logits → bilinear to the mask's size
(align_corners=False) → sigmoid → per-image min-max ((x − min) / (max − min + 1e-8))
→ ×255 → nearest integer → 8-bit map.
"""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from utils.data.transforms import image_to_tensor, resize_8bit


def preprocess(image: Image.Image, size: Union[int, Tuple[int, int]]) -> torch.Tensor:
    """A Pillow RGB image as a 1×3×size×size (or 1×3×H×W) normalised batch."""
    return image_to_tensor(resize_8bit(image, size)).unsqueeze(0)


def postprocess(logits: torch.Tensor, size_hw: Tuple[int, int]) -> np.ndarray:
    """One 1×1×h×w (or 1×h×w) P1 logit map → H×W uint8 map at ``size_hw`` = (H, W)."""
    logits = logits.float().reshape(1, 1, *logits.shape[-2:])
    prob = torch.sigmoid(F.interpolate(logits, size=tuple(size_hw), mode="bilinear", align_corners=False))
    prob = (prob - prob.min()) / (prob.max() - prob.min() + 1e-8)
    return np.rint(prob[0, 0].cpu().numpy() * 255).clip(0, 255).astype(np.uint8)
