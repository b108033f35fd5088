"""The files test.py writes for one image: its 8-bit map and, with ``--cutout``, its RGBA cut-out,
each written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from utils.common.fileio import atomic_write_bytes
from utils.data.images import read_rgb_and_alpha
from utils.inference.jobs import Job
from utils.inference.processing import cutout


def write_png(array: np.ndarray, path: Path) -> None:
    """An 8-bit PNG (H×W grey, or H×W×4 RGBA) written through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA) if array.ndim == 3 else array)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())


def write_cutout(job: Job, prob_map: np.ndarray) -> None:
    """``--cutout``: the job's image at its own size (EXIF-oriented like its map) as RGBA with the
    map as alpha, limited by the image's own alpha (written whole or not at all)."""
    image, own_alpha = read_rgb_and_alpha(job.image, exif_orientation=job.exif)
    if (image.height, image.width) != prob_map.shape:  # a test set's map at its mask's size
        prob_map = np.asarray(Image.fromarray(prob_map).resize((image.width, image.height), Image.BILINEAR))
    write_png(cutout(np.asarray(image), prob_map, own_alpha), job.cutout)
