"""The authors' image and mask transforms, shared by training (``utils.data.dataset``) and testing
(``utils.inference.processing``): Pillow-bilinear resize to a square, tensor, ImageNet normalisation."""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_8bit(image: Image.Image, size: Union[int, Tuple[int, int]]) -> np.ndarray:
    """``size``×``size`` (or (H, W)) Pillow-bilinear resize (what ``transforms.Resize`` does) as uint8."""
    height, width = (size, size) if isinstance(size, int) else size
    return np.array(TF.resize(image, [height, width], InterpolationMode.BILINEAR), dtype=np.uint8)


def image_to_tensor(array: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float, ImageNet-normalised."""
    return TF.normalize(TF.to_tensor(array), IMAGENET_MEAN, IMAGENET_STD)


def mask_to_tensor(array: np.ndarray) -> torch.Tensor:
    """H×W uint8 → 1×H×W float in [0, 1]."""
    return TF.to_tensor(array)
