"""The web app's logic (``app.py`` is the CLI): photos in, FSANet's map, a cut-out and an
overlay out, with test.py's own reading, pre- and post-processing (``utils.inference.predict``).

Everything but :func:`build_app` is plain Python and numpy, tested without a browser;
:func:`build_app` lays out the gradio page (the ``app`` extra: ``pip install -e .[app]``).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn

from utils.common.errors import ConfigError
from utils.common.extras import require_extra
from utils.common.logs import get_logger
from utils.data.images import ImageReadError, image_size, read_rgb_and_alpha
from utils.deploy.compose import Prediction, compose
from utils.deploy.limits import MAX_PIXELS
from utils.deploy.results import (
    KEEP_RESULTS_S,
    Session,
    prune_results,
    render,
    run_upload,
    unique_stems,
    write_outputs,
)
from utils.inference.config import DEFAULT_TESTSIZE
from utils.inference.forward import predict_image

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


def require_app_extra() -> None:
    """A :class:`MissingExtraError` naming the install command when gradio is missing."""
    require_extra("app", "the web app", "gradio")


class Segmenter:
    """A loaded model and test.py's prediction of one photo at a time, one caller at a time.

    Args:
        model: FSANet (or an ``OnnxFSANet``) in eval mode on ``device``.
        testsize: the square input side (test.py's ``--testsize``); with ``keep_aspect`` the long side.
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
        keep_aspect: bool = False,
    ) -> None:
        self.model, self.testsize, self.keep_aspect = model, testsize, keep_aspect
        self.device = device or torch.device("cpu")
        self.amp_dtype, self.random_weights, self.max_pixels = amp_dtype, random_weights, max_pixels
        self.description = description
        self._lock = threading.Lock()  # one forward at a time, whatever the server's threads

    def predict(self, path: PathLike, name: Optional[str] = None) -> Prediction:
        """test.py ``--input``'s map of one file; an ``OSError``/``ConfigError`` that names the
        file when it is not an image, is damaged or is too large."""
        name = name or Path(path).name
        try:  # decoded only as the format the upload's own name says (test.py --input's rule)
            width, height = image_size(path, name)
        except ImageReadError as error:
            raise ConfigError(f"{name}: not an image this app can read ({_reason(error, name)})") from None
        if width * height > self.max_pixels:
            raise ConfigError(
                f"{name}: {width}×{height} pixels, more than this app's limit of {self.max_pixels:,} "
                "(app.py --max_pixels); scale it down first"
            )
        try:
            image, alpha = read_rgb_and_alpha(path, exif_orientation=True, name=name)  # as test.py --input reads photos
        except ImageReadError as error:
            raise ConfigError(f"{name}: damaged or truncated image ({_reason(error, name)})") from None
        with self._lock:
            prob_map = predict_image(
                self.model, image, self.testsize, self.device, self.amp_dtype, keep_aspect=self.keep_aspect
            )
        return Prediction(name, np.asarray(image), prob_map, alpha)


def _reason(error: ImageReadError, name: str) -> str:
    """The reader's message without the file name it starts with (the caller names the upload)."""
    text = str(error)
    return text[len(name) + 2 :] if text.startswith(f"{name}: ") else text


def _forget(session: Optional[Session]) -> None:
    """A page closed or expired: its result files go."""
    if session is not None:
        shutil.rmtree(session.folder, ignore_errors=True)


def parse_file_size(text: str) -> int:
    """``"200mb"``, ``"1.5 GB"``, ``"5000"`` → bytes; a ``ConfigError`` naming --max_file_size otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?b)?\s*", str(text).lower())
    if not match:
        raise ConfigError(f"--max_file_size {text!r}: give a size such as 200mb, 1.5gb or 5000 (bytes)")
    scale = {None: 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}[match.group(2)]
    return int(float(match.group(1)) * scale)


def check_port(host: str, port: int) -> None:
    """A ``ConfigError`` naming --port when ``host:port`` cannot be served (busy, or not allowed)."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: choose 1–65535")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"--host {host} --port {port}: cannot serve there ({error.strerror or error}); another program "
                "may be using the port: choose another --port"
            ) from None


#: the page's style: transparent cut-out pixels show as a grey checkerboard, not as white
PAGE_CSS = (
    "#cutout img, #gallery img { background: repeating-conic-gradient(#d0d0d0 0% 25%, #ffffff 0% 50%) 50% / 16px 16px; }"
)

RANDOM_BANNER = (
    "⚠️ **Random weights.** This app was started without `--pth_path`, so the maps show the "
    "pipeline, not FSANet's segmentation. Start it with `python app.py --pth_path models/FSANet-100.pth`."
)


def build_app(segmenter: Segmenter, root: Optional[Path] = None, threshold: int = 128, keep_s: float = KEEP_RESULTS_S):
    """The gradio page: upload (several files at once), a threshold slider, the map, cut-out
    and overlay side by side (each downloadable), a gallery of every cut-out, the time taken
    and every file as a download. Queued: one model run at a time."""
    require_app_extra()
    import gradio as gr

    if root is None:  # a folder of its own, removed when the process ends
        root = Path(tempfile.mkdtemp(prefix="fsanet-app-"))
        atexit.register(shutil.rmtree, root, True)
    root = Path(root)
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
        state = gr.State(None, time_to_live=keep_s, delete_callback=_forget)
        shown = [status, *outputs.values(), gallery, downloads]

        def _values(page: Dict[str, Any]) -> List[Any]:
            return [page["status"], *(page[k] for k in outputs), page["gallery"], page["downloads"]]

        def on_run(paths: Optional[List[str]], value: float):
            if not paths:
                return [None, "Upload or drop one or more photos first.", None, None, None, None, [], []]
            session = run_upload(segmenter, paths, int(value), root, keep_s)
            return [session, *_values(render(session, int(value)))]

        def on_threshold(session: Optional[Session], value: float):
            if session is None:
                return [gr.skip()] * len(shown)
            return _values(render(session, int(value)))

        def on_select(session: Optional[Session], event):
            """A click on a gallery thumbnail: the four large panels show that photo's results."""
            if session is None or not session.predictions:
                return [gr.skip()] * len(outputs)
            session.selected = int(event.index)
            files = session.panel_files()
            return [str(files[key]) for key in outputs]

        on_select.__annotations__["event"] = gr.SelectData  # gradio passes the click by this type
        gallery.select(on_select, [state], list(outputs.values()), concurrency_limit=1)
        for event in (upload.upload, run.click):
            event(on_run, [upload, slider], [state, *shown], concurrency_limit=1)
        # change: a drag, and a value typed into the box (applied on Enter or when the box loses focus);
        # always_last: a drag renders once for where it stops, not once per step
        slider.change(on_threshold, [state, slider], shown, concurrency_limit=1, trigger_mode="always_last")
    demo.queue(default_concurrency_limit=1)
    return demo


__all__ = [
    "KEEP_RESULTS_S",
    "MAX_PIXELS",
    "PAGE_CSS",
    "check_port",
    "parse_file_size",
    "prune_results",
    "unique_stems",
    "Prediction",
    "Segmenter",
    "build_app",
    "compose",
    "render",
    "require_app_extra",
    "run_upload",
    "write_outputs",
]
