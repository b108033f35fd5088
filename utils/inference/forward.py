"""The model's forward pass as test.py, the web app, validation and video input run it:
a preprocessed batch to P1 logits, and one image to its 8-bit map."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from utils.common.amp import autocast
from utils.inference.config import DEFAULT_TESTSIZE
from utils.inference.processing import input_size, postprocess, preprocess


def predict_logits(
    model: nn.Module,
    batch: torch.Tensor,
    device: torch.device,
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """P1 logits of a preprocessed batch: test.py's forward pass (also the web app's)."""
    batch = batch.to(device, non_blocking=True)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with autocast(device.type, amp_dtype):
        return model(batch)[0]


@torch.inference_mode()
def predict_image(
    model: nn.Module,
    image: Image.Image,
    testsize: int = DEFAULT_TESTSIZE,
    device: Optional[torch.device] = None,
    amp_dtype: Optional[torch.dtype] = None,
    size_hw: Optional[Tuple[int, int]] = None,
    keep_aspect: bool = False,
) -> np.ndarray:
    """One RGB image → its test.py map (H×W uint8, at ``size_hw`` or the image's size)."""
    size = input_size(image.height, image.width, testsize, keep_aspect)
    logits = predict_logits(model, preprocess(image, size), device or torch.device("cpu"), amp_dtype)
    return postprocess(logits[0], size_hw or (image.height, image.width))
