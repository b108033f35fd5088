"""Decoding DIS images and masks into the 8-bit forms the authors' loader produces.

The authors' loader does ``Image.open(path).convert("RGB")`` for images and
``.convert("L")`` for masks. That is right for ordinary 8-bit files and wrong for
16-bit ones (Pillow clips them to 255) and for masks kept in an alpha channel.
These readers give the authors' result on ordinary files and the intended one on
the others:

- 16-bit grey (``I;16``/``I``): scaled to 8 bits (value / 257, rounded).
- images: palette and RGBA become RGB as Pillow converts them (alpha dropped,
  as the authors do); grey is repeated over the three channels.
- masks: grey as is; RGB by Pillow's luminance; RGBA and palette-with-alpha are
  composited over black first, so a white cut-out on a transparent background
  reads as its alpha.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]

#: DIS5K images are up to ~6 k px wide; Pillow's bomb check stops at ~179 M px.
Image.MAX_IMAGE_PIXELS = None

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-/32-bit integer grey images as 8-bit ``L`` (full range kept)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or array.max(initial=0) > 255:
            array = array / 257.0
        return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.rint(array * scale), 0, 255).astype(np.uint8), mode="L")
    return image


def read_rgb(path: PathLike) -> Image.Image:
    """An image file as an 8-bit RGB Pillow image (the authors' ``convert("RGB")``)."""
    with Image.open(path) as image:
        image.load()
        return _to_8bit(image).convert("RGB")


def read_mask(path: PathLike) -> Image.Image:
    """A mask file as an 8-bit grey Pillow image, 0 = background, 255 = object."""
    with Image.open(path) as image:
        image.load()
        image = _to_8bit(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA"):
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
            grey = np.asarray(Image.fromarray(rgba[..., :3].astype(np.uint8)).convert("L"), dtype=np.float64)
            return Image.fromarray(np.rint(grey * rgba[..., 3] / 255.0).astype(np.uint8), mode="L")
        return image.convert("L")


def image_size(path: PathLike) -> Tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with Image.open(path) as image:
        return image.size


def is_image_file(path: PathLike, extensions: Tuple[str, ...] = IMAGE_EXTENSIONS) -> bool:
    return Path(path).suffix.lower() in extensions
