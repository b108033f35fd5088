"""The web app's logic (``app.py`` is the CLI): photos in, FSANet's map, a cut-out and an
overlay out, with test.py's own reading, pre- and post-processing (``utils.inference.predict``).

Everything but :func:`build_app` is plain Python and numpy, tested without a browser;
:func:`build_app` lays out the gradio page (the ``app`` extra: ``pip install -e .[app]``).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from utils.common.extras import require_extra
from utils.common.logs import get_logger
from utils.data.images import image_size, read_rgb
from utils.inference.config import DEFAULT_TESTSIZE
from utils.inference.predict import predict_image, write_png

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: the default upper bound on an upload's pixels (a 12-megapixel photo is 12e6)
MAX_PIXELS = 60_000_000
#: overlay colour (RGB) and opacity over the object
OVERLAY_RGB, OVERLAY_ALPHA = (255, 40, 90), 0.5


def require_app_extra() -> None:
    """A :class:`MissingExtraError` naming the install command when gradio is missing."""
    require_extra("app", "the web app", "gradio")


@dataclass
class Prediction:
    """One photo's result: its name, its RGB pixels and test.py's map of it."""

    name: str
    image: np.ndarray  # H×W×3 uint8
    map: np.ndarray  # H×W uint8, what test.py writes for this photo


def compose(image: np.ndarray, prob_map: np.ndarray, threshold: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(binary mask, cut-out, overlay)`` of a photo and its map at ``threshold`` (0–255).

    The binary mask is 255 where the map exceeds the threshold. The cut-out is the photo
    with the map as its alpha channel, pixels at or below the threshold fully
    transparent (RGBA). The overlay tints the masked pixels.
    """
    keep = prob_map > threshold
    mask = np.where(keep, 255, 0).astype(np.uint8)
    cutout = np.dstack([image, np.where(keep, prob_map, 0).astype(np.uint8)])
    tint = np.asarray(OVERLAY_RGB, dtype=np.float32)
    blended = image.astype(np.float32) * (1 - OVERLAY_ALPHA) + tint * OVERLAY_ALPHA
    overlay = np.where(keep[..., None], np.rint(blended), image).astype(np.uint8)
    return mask, cutout, overlay


class Segmenter:
    """A loaded model and test.py's prediction of one photo at a time, one caller at a time.

    Args:
        model: FSANet (or an ``OnnxFSANet``) in eval mode on ``device``.
        testsize: the square input side (test.py's ``--testsize``).
        random_weights: the page then says, in a banner, that the maps mean nothing.
        max_pixels: larger uploads are refused before they are decoded.
    """

    def __init__(
        self,
        model: nn.Module,
        testsize: int = DEFAULT_TESTSIZE,
        device: Optional[torch.device] = None,
        amp_dtype: Optional[torch.dtype] = None,
        random_weights: bool = False,
        max_pixels: int = MAX_PIXELS,
        description: str = "",
    ) -> None:
        self.model, self.testsize = model, testsize
        self.device = device or torch.device("cpu")
        self.amp_dtype, self.random_weights, self.max_pixels = amp_dtype, random_weights, max_pixels
        self.description = description
        self._lock = threading.Lock()  # one forward at a time, whatever the server's threads

    def predict(self, path: PathLike, name: Optional[str] = None) -> Prediction:
        """test.py ``--input``'s map of one file; an ``OSError``/``ValueError`` that names the
        file when it is not an image, is damaged or is too large."""
        name = name or Path(path).name
        try:
            width, height = image_size(path)
        except Exception:  # noqa: BLE001  (Pillow raises many types)
            raise ValueError(f"{name}: not an image this app can read (JPEG, PNG, BMP, TIFF, WebP, …)") from None
        if width * height > self.max_pixels:
            raise ValueError(
                f"{name}: {width}×{height} pixels, more than this app's limit of {self.max_pixels:,} "
                "(app.py --max_pixels); scale it down first"
            )
        try:
            image = read_rgb(path, exif_orientation=True)  # as test.py --input reads photos
        except OSError as error:
            raise ValueError(f"{name}: damaged or truncated image ({str(error).split(': ', 1)[-1]})") from None
        with self._lock:
            prob_map = predict_image(self.model, image, self.testsize, self.device, self.amp_dtype)
        return Prediction(name, np.asarray(image), prob_map)


def write_outputs(prediction: Prediction, threshold: int, folder: Path) -> Dict[str, Path]:
    """The four PNG files of one result in ``folder``: ``<stem>_map.png`` (byte for byte what
    test.py writes), ``_mask``, ``_cutout`` (RGBA) and ``_overlay``."""
    stem = Path(prediction.name).stem
    mask, cutout, overlay = compose(prediction.image, prediction.map, threshold)
    files = {kind: folder / f"{stem}_{kind}.png" for kind in ("map", "mask", "cutout", "overlay")}
    write_png(prediction.map, files["map"])
    write_png(mask, files["mask"])
    Image.fromarray(cutout, mode="RGBA").save(files["cutout"])
    Image.fromarray(overlay).save(files["overlay"])
    return files


class Session:
    """What one page shows: the results of the last upload and their files."""

    def __init__(self, root: Path) -> None:
        self.folder = root / uuid.uuid4().hex[:12]
        self.predictions: List[Prediction] = []
        self.errors: List[str] = []
        self.seconds = 0.0


def run_upload(segmenter: Segmenter, paths: Sequence[PathLike], threshold: int, root: Path) -> Session:
    """Predict every uploaded file; files that fail are reported in ``Session.errors``."""
    session = Session(root)
    start = time.perf_counter()
    for path in paths:
        name = Path(path).name
        try:
            session.predictions.append(segmenter.predict(path, name))
        except (ValueError, OSError) as error:
            session.errors.append(str(error))
        except Exception as error:  # noqa: BLE001  (never a traceback on the page)
            log.exception("%s: prediction failed", name)
            session.errors.append(f"{name}: prediction failed ({type(error).__name__}); the server log has details")
    session.seconds = time.perf_counter() - start
    return session


def render(session: Session, threshold: int) -> Dict[str, Any]:
    """Write every result's files at ``threshold``; the page's values (see :func:`build_app`)."""
    files: List[Dict[str, Path]] = []
    for prediction in session.predictions:
        session.folder.mkdir(parents=True, exist_ok=True)
        files.append(write_outputs(prediction, threshold, session.folder))
    first = files[0] if files else {}
    lines = []
    if session.predictions:
        count = len(session.predictions)
        lines.append(f"**{count} image{'s' if count > 1 else ''} in {session.seconds:.2f} s**")
    for error in session.errors:
        lines.append(f"⚠️ {error}")
    if not session.predictions and not session.errors:
        lines.append("Upload or drop one or more photos.")
    return {
        "status": "\n\n".join(lines),
        "map": first.get("map"),
        "cutout": first.get("cutout"),
        "overlay": first.get("overlay"),
        "mask": first.get("mask"),
        "gallery": [(str(f["cutout"]), p.name) for f, p in zip(files, session.predictions)],
        "downloads": [str(path) for f in files for path in f.values()],
    }


RANDOM_BANNER = (
    "⚠️ **Random weights.** This app was started without `--pth_path`, so the maps show the "
    "pipeline, not FSANet's segmentation. Start it with `python app.py --pth_path models/FSANet-100.pth`."
)


def build_app(segmenter: Segmenter, root: Optional[Path] = None, threshold: int = 128):
    """The gradio page: upload (several files at once), a threshold slider, the map, cut-out
    and overlay side by side (each downloadable), a gallery of every cut-out, the time taken
    and every file as a download. Queued: one model run at a time."""
    require_app_extra()
    import gradio as gr

    root = Path(root or tempfile.mkdtemp(prefix="fsanet-app-"))
    with gr.Blocks(title="FSANet: dichotomous image segmentation", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# FSANet: cut the object out of a photo\n" + segmenter.description)
        if segmenter.random_weights:
            gr.Markdown(RANDOM_BANNER, elem_id="random-weights-banner")
        with gr.Row():
            upload = gr.File(file_count="multiple", type="filepath", label="Photos (drop one or several)", elem_id="upload")
            with gr.Column():
                slider = gr.Slider(
                    0, 254, value=threshold, step=1, label="Mask threshold (map > threshold)", elem_id="threshold"
                )
                run = gr.Button("Segment", variant="primary", elem_id="run")
                status = gr.Markdown("Upload or drop one or more photos.", elem_id="status")
        with gr.Row():
            outputs = {
                key: gr.Image(type="filepath", label=label, format="png", elem_id=key, buttons=["download"], height=320)
                for key, label in (
                    ("map", "Prediction map"),
                    ("cutout", "Cut-out (transparent background)"),
                    ("overlay", "Overlay"),
                    ("mask", "Binary mask"),
                )
            }
        gallery = gr.Gallery(
            label="All cut-outs",
            columns=6,
            height=220,
            allow_preview=False,
            object_fit="contain",
            fit_columns=False,
            elem_id="gallery",
        )
        downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads", interactive=False)
        state = gr.State(None)
        shown = [status, *outputs.values(), gallery, downloads]

        def _values(page: Dict[str, Any]) -> List[Any]:
            return [page["status"], *(page[k] for k in outputs), page["gallery"], page["downloads"]]

        def on_run(paths: Optional[List[str]], value: float):
            if not paths:
                return [None, "Upload or drop one or more photos first.", None, None, None, None, [], []]
            session = run_upload(segmenter, paths, int(value), root)
            return [session, *_values(render(session, int(value)))]

        def on_threshold(session: Optional[Session], value: float):
            if session is None:
                return [gr.skip()] * len(shown)
            return _values(render(session, int(value)))

        for event in (upload.upload, run.click):
            event(on_run, [upload, slider], [state, *shown], concurrency_limit=1)
        slider.release(on_threshold, [state, slider], shown, concurrency_limit=1)
    demo.queue(default_concurrency_limit=1)
    return demo


__all__ = [
    "MAX_PIXELS",
    "Prediction",
    "Segmenter",
    "build_app",
    "compose",
    "render",
    "require_app_extra",
    "run_upload",
    "write_outputs",
]
