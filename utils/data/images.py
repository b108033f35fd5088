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
- ground-truth masks (:func:`read_gt_mask`, for training, validation and
  evaluation alike) also undo two export habits that would otherwise be read
  silently wrong: 0/1 masks (maximum 1) are scaled to 0/255, and colour masks
  (e.g. red on black) are read as their brightest channel instead of luminance.
  The caller gets a note for each, to warn once per set.

Pillow's decompression-bomb limit (about 179 M pixels, far above DIS5K's largest
images) is left as it is; a file over it is named in the error.

Files are opened by :func:`utils.data.image_files.open_image`: only as the format their
extension names.
"""

from __future__ import annotations

import os
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps

from utils.data.image_files import (  # noqa: F401  (re-exported: the names every reader imports from here)
    ACCEPTED_FORMATS,
    IMAGE_EXTENSIONS,
    IMAGE_FORMATS,
    MASK_EXTENSIONS,
    ImageReadError,
    open_image,
    sniff_format,
)

PathLike = Union[str, os.PathLike]


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


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)


def read_rgb_and_alpha(
    path: PathLike, exif_orientation: bool = False, name: Optional[str] = None
) -> Tuple[Image.Image, Optional[np.ndarray]]:
    """:func:`read_rgb`'s image and, for a file with transparency, its alpha channel (H×W
    uint8, turned with the pixels); None for an opaque file. The model sees the RGB only."""
    with open_image(path, name) as image:
        if exif_orientation:
            image = ImageOps.exif_transpose(image)
        alpha = np.asarray(image.convert("RGBA"))[..., 3].copy() if _has_alpha(image) else None
        return _to_8bit(image).convert("RGB"), alpha


def read_rgb(path: PathLike, exif_orientation: bool = False, name: Optional[str] = None) -> Image.Image:
    """An image file as an 8-bit RGB Pillow image (the authors' ``convert("RGB")``).

    ``exif_orientation`` turns the pixels as the file's EXIF orientation says (what a
    photo viewer shows); the DIS sets are read raw, as the authors read them.
    """
    with open_image(path, name) as image:
        if exif_orientation:
            image = ImageOps.exif_transpose(image)
        return _to_8bit(image).convert("RGB")


def _mask_rgba_to_rgb(image: Image.Image) -> Image.Image:
    """RGBA / LA / PA composited over black (a cut-out reads as its alpha)."""
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
    rgb = np.rint(rgba[..., :3] * rgba[..., 3:] / 255.0).astype(np.uint8)
    return Image.fromarray(rgb)


def read_mask(path: PathLike) -> Image.Image:
    """A mask file as an 8-bit grey Pillow image, 0 = background, 255 = object."""
    with open_image(path) as image:
        image = _to_8bit(image)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if image.mode in ("RGBA", "LA", "PA"):
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
            grey = np.asarray(Image.fromarray(rgba[..., :3].astype(np.uint8)).convert("L"), dtype=np.float64)
            return Image.fromarray(np.rint(grey * rgba[..., 3] / 255.0).astype(np.uint8), mode="L")
        return image.convert("L")


#: what :func:`read_gt_mask` changed, as said in warnings.
MASK_NOTES = {
    "binary01": "0/1 masks (maximum value 1), scaled to 0/255",
    "colour": "colour masks, read as their brightest channel (max of R, G, B) instead of luminance",
}
#: a mask is a colour mask when some pixel's channels differ by more than this (JPEG noise stays below).
COLOUR_SPREAD = 64


def read_gt_mask(path: PathLike) -> Tuple[np.ndarray, Optional[str]]:
    """A ground-truth mask as an H×W uint8 array and a note (a :data:`MASK_NOTES` key, or None).

    Ordinary masks give :func:`read_mask`'s array and no note.
    """
    note = None
    with open_image(path) as image:
        image = _to_8bit(image)
        if image.mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"):
            rgb = (
                _mask_rgba_to_rgb(image)
                if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
                else image.convert("RGB")
            )
            channels = np.asarray(rgb)
            spread = channels.max(axis=-1).astype(np.int16) - channels.min(axis=-1)
            if spread.size and spread.max() > COLOUR_SPREAD:
                array, note = channels.max(axis=-1), "colour"
            else:
                array = np.asarray(read_mask(path))
        else:
            array = np.asarray(image.convert("L"))
    if array.size and array.max() == 1:
        array, note = (array * 255).astype(np.uint8), "binary01"
    return np.ascontiguousarray(array, dtype=np.uint8), note


def describe_mask_notes(notes: Mapping[str, Sequence[str]], where: str) -> List[str]:
    """One warning line per kind of converted mask: the count and an example file."""
    return [f"{where}: {len(files)} {MASK_NOTES[kind]} (e.g. {files[0]})" for kind, files in notes.items() if files]


def image_size(path: PathLike, name: Optional[str] = None) -> Tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    with open_image(path, name, load=False) as image:
        return image.size


#: EXIF orientation values that turn or mirror the pixels (1 = as stored).
TURNING_ORIENTATIONS = {
    2: "mirrored",
    3: "turned 180°",
    4: "flipped",
    5: "transposed",
    6: "turned 90°",
    7: "transversed",
    8: "turned 270°",
}


def exif_orientation(path: PathLike) -> int:
    """The file's EXIF orientation tag (1 when absent or unreadable), read from the header."""
    try:
        with open_image(path, load=False) as image:
            return int(image.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001  unreadable files are reported by the readers
        return 1


def exif_note(paths: Sequence[PathLike], where: str) -> Optional[str]:
    """A warning for images whose EXIF orientation turns them in a photo viewer, or None.

    The DIS pipeline reads pixels as stored (the authors do); a mask drawn on the turned
    photo then does not match its image."""
    turned = [os.path.basename(p) for p in paths if exif_orientation(p) in TURNING_ORIENTATIONS]
    if not turned:
        return None
    return (
        f"{where}: {len(turned)} images carry an EXIF orientation tag ({', '.join(turned[:3])}"
        f"{' …' if len(turned) > 3 else ''}); their pixels are read as stored, as the authors read them, so "
        "a mask drawn on the photo as a viewer shows it is turned against its image. Check them, or save "
        "the images with the orientation applied (e.g. PIL.ImageOps.exif_transpose)"
    )
