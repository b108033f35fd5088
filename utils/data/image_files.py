"""Which files are images, and the one way to open them: only as the format their
extension names.

:data:`IMAGE_FORMATS` is the one list of accepted files (training, test.py, eval.py and the
web app). Pillow is never asked to guess a file's format: a PostScript file named
``photo.jpg`` is refused by name instead of being handed to Ghostscript, and an ICO or PCX
file under a PNG or JPEG name is refused the same way.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple, Union

from PIL import Image, UnidentifiedImageError

PathLike = Union[str, os.PathLike]


class ImageReadError(OSError):
    """A file that cannot be decoded; the message names it and says why."""


#: The accepted image files, one owner: extension → the Pillow formats a file of that name
#: may be decoded as (Pillow's JPEG decoder also opens a camera's MPO, a JPEG with more frames).
IMAGE_FORMATS = {
    ".jpg": ("JPEG",),
    ".jpeg": ("JPEG",),
    ".png": ("PNG",),
    ".bmp": ("BMP",),
    ".tif": ("TIFF",),
    ".tiff": ("TIFF",),
}
IMAGE_EXTENSIONS = tuple(IMAGE_FORMATS)
MASK_EXTENSIONS = (".png", *(ext for ext in IMAGE_FORMATS if ext != ".png"))  # the same files, PNG first
#: the accepted formats as said in messages ("JPEG, PNG, BMP, TIFF")
ACCEPTED_FORMATS = ", ".join(dict.fromkeys(formats[0] for formats in IMAGE_FORMATS.values()))

#: leading bytes → what a file is, to name a file whose content is not its extension's format
_SIGNATURES = (
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "PostScript (EPS)"),
    (b"%PDF", "PDF"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"qoif", "QOI"),
)


def sniff_format(path: PathLike) -> Optional[str]:
    """What a file's first bytes say it is (``"PostScript"``, ``"ICO"`` …), or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if len(head) > 2 and head[0] == 0x0A and head[1] in (0, 2, 3, 4, 5) and head[2] == 1:
        return "PCX"
    if head.lstrip()[:1] == b"<":
        return "text (HTML, SVG or XML)"
    return None


def _formats_for(path: PathLike, name: Optional[str]) -> Tuple[str, ...]:
    """The Pillow formats the file's name allows, or an :class:`ImageReadError` naming the accepted ones."""
    suffix = Path(name or path).suffix.lower()
    formats = IMAGE_FORMATS.get(suffix)
    if formats is None:
        shown = name or os.fsdecode(path)
        raise ImageReadError(
            f"{shown}: {suffix or 'no extension'} is not an accepted image file (accepted: {ACCEPTED_FORMATS}, "
            f"as {' '.join(IMAGE_EXTENSIONS)})"
        )
    return formats


def _not_its_format(path: PathLike, name: Optional[str], formats: Sequence[str]) -> Optional[str]:
    """``"a PostScript file named photo.jpg …"`` when the content is another format than the name's."""
    kind = sniff_format(path)
    if kind is None or kind in formats:
        return None
    shown = Path(name).name if name else os.fsdecode(Path(path).name)
    return (
        f"a {kind} file named {shown}: a {Path(shown).suffix.lower()} file is decoded only as {formats[0]} "
        f"(accepted: {ACCEPTED_FORMATS}); convert it, or name it by what it holds if that is accepted"
    )


@contextmanager
def open_image(path: PathLike, name: Optional[str] = None, load: bool = True) -> Iterator[Image.Image]:
    """The one way this project opens an image file: ``Image.open`` restricted to the formats
    of the file's extension (of ``name`` where given: an upload's own name), decoded in full
    (``load``) or header only, every failure an :class:`ImageReadError` naming the file."""
    formats = _formats_for(path, name)
    shown = name or os.fsdecode(path)
    try:
        with Image.open(path, formats=list(formats)) as image:
            if load:
                image.load()
            yield image
    except Image.DecompressionBombError as error:
        raise ImageReadError(
            f"{shown}: larger than Pillow's limit of {Image.MAX_IMAGE_PIXELS} pixels ({error}); "
            "if the file is genuine, raise PIL.Image.MAX_IMAGE_PIXELS in your script"
        ) from None
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        wrong = _not_its_format(path, name, formats)
        raise ImageReadError(f"{shown}: {wrong}" if wrong else f"{shown}: not a {formats[0]} file, or damaged") from None
    except ValueError as error:
        if any(text in str(error).lower() for text in ("decompressed data too large", "too much memory used in text")):
            raise ImageReadError(
                f"{shown}: its PNG text chunks (metadata) are larger than Pillow's safety limit "
                "(PIL.PngImagePlugin.MAX_TEXT_CHUNK / MAX_TEXT_MEMORY); strip the metadata and try again"
            ) from None
        raise ImageReadError(f"{shown}: cannot be decoded ({type(error).__name__}: {error})") from None
    except Exception as error:  # noqa: BLE001  (Pillow raises many types for broken files)
        raise ImageReadError(f"{shown}: cannot be decoded ({type(error).__name__}: {error})") from None
