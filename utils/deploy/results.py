"""The web app's results of one upload, kept as files in the upload's own folder: unique
names per upload, the pixels on disk rather than in the server's memory, and old
uploads' folders deleted on a schedule."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from PIL import Image

from utils.common.errors import FSANetError
from utils.common.logs import get_logger
from utils.deploy.compose import Prediction, compose
from utils.deploy.limits import KEEP_RESULTS_S
from utils.inference.writing import write_png

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


@dataclass
class StoredPrediction:
    """A :class:`Prediction` kept on disk in its session's folder (a session holds paths, not pixels,
    so the server's memory does not grow with the sessions it serves)."""

    name: str  # the upload's file name
    stem: str  # unique within the session: the result files' prefix
    pixels: Path  # the photo's RGB pixels (.npy)
    map_path: Path  # test.py's map (PNG, byte for byte what test.py writes)

    def load(self) -> Prediction:
        pixels = np.load(self.pixels)  # H×W×3, or H×W×4 with the photo's own alpha
        alpha = pixels[..., 3] if pixels.shape[-1] == 4 else None
        with Image.open(self.map_path, formats=["PNG"]) as map_image:  # this app's own file
            prob_map = np.asarray(map_image)
        return Prediction(self.name, pixels[..., :3], prob_map, alpha)


def unique_stems(names: Sequence[str]) -> List[str]:
    """A file-name stem per upload, distinct within one upload: ``photo.jpg`` + ``photo.png`` →
    ``photo_jpg``, ``photo_png`` (as test.py --input names them); the same name twice gets ``_2``."""
    stems = [Path(n).stem for n in names]
    counts = {s: stems.count(s) for s in stems}
    named = [f"{Path(n).stem}_{Path(n).suffix.lstrip('.').lower()}" if counts[s] > 1 else s for n, s in zip(names, stems)]
    seen: Dict[str, int] = {}
    result = []
    for stem in named:
        seen[stem] = seen.get(stem, 0) + 1
        result.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return result


#: the files of one result, each shown in a large panel of the page
PANELS = ("map", "cutout", "overlay", "mask")


def write_outputs(prediction: Prediction, threshold: int, folder: Path, stem: Optional[str] = None) -> Dict[str, Path]:
    """The four PNG files of one result in ``folder``: ``<stem>_map.png`` (byte for byte what
    test.py writes), ``_mask``, ``_cutout`` (RGBA) and ``_overlay``."""
    stem = stem or Path(prediction.name).stem
    mask, cutout, overlay = compose(prediction.image, prediction.map, threshold, prediction.alpha)
    files = {kind: folder / f"{stem}_{kind}.png" for kind in PANELS}
    write_png(prediction.map, files["map"])
    write_png(mask, files["mask"])
    Image.fromarray(cutout, mode="RGBA").save(files["cutout"])
    Image.fromarray(overlay).save(files["overlay"])
    return files


class Session:
    """What one page shows: the results of the last upload, kept as files in its own folder."""

    def __init__(self, root: Path) -> None:
        self.folder = root / uuid.uuid4().hex[:12]
        self.predictions: List[StoredPrediction] = []
        self.errors: List[str] = []
        self.seconds = 0.0
        #: the result the four large panels show (a click in the gallery selects another)
        self.selected = 0

    def panel_files(self) -> Dict[str, Optional[Path]]:
        """The selected result's four files as :func:`render` last wrote them (None without results)."""
        if not self.predictions:
            return {kind: None for kind in PANELS}
        stem = self.predictions[min(self.selected, len(self.predictions) - 1)].stem
        return {kind: self.folder / f"{stem}_{kind}.png" for kind in PANELS}


def prune_results(root: Path, keep_s: float = KEEP_RESULTS_S) -> List[Path]:
    """Delete the session folders under ``root`` older than ``keep_s`` seconds; returns them."""
    removed = []
    now = time.time()
    for folder in root.iterdir() if root.is_dir() else []:
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > keep_s:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            continue
    return removed


def run_upload(
    segmenter: Any, paths: Sequence[PathLike], threshold: int, root: Path, keep_s: float = KEEP_RESULTS_S
) -> Session:
    """Predict every uploaded file; files that fail are reported in ``Session.errors``.
    Older sessions' files (over ``keep_s`` seconds) are deleted first."""
    prune_results(root, keep_s)
    session = Session(root)
    start = time.perf_counter()
    stems = unique_stems([Path(p).name for p in paths])
    for path, stem in zip(paths, stems):
        name = Path(path).name
        try:
            prediction = segmenter.predict(path, name)
            session.folder.mkdir(parents=True, exist_ok=True)
            pixels = session.folder / f".{stem}_pixels.npy"
            stored = prediction.image if prediction.alpha is None else np.dstack([prediction.image, prediction.alpha])
            np.save(pixels, stored)
            map_path = session.folder / f"{stem}_map.png"
            write_png(prediction.map, map_path)
            session.predictions.append(StoredPrediction(name, stem, pixels, map_path))
        except (FSANetError, OSError) as error:  # an upload refused by name (not an image, damaged, too large)
            session.errors.append(str(error))
        except Exception as error:  # noqa: BLE001  (never a traceback on the page)
            log.exception("%s: prediction failed", name)
            session.errors.append(f"{name}: prediction failed ({type(error).__name__}); the server log has details")
    session.seconds = time.perf_counter() - start
    return session


def render(session: Session, threshold: int) -> Dict[str, Any]:
    """Write every result's files at ``threshold``; the page's values (see :func:`build_app`)."""
    files: List[Dict[str, Path]] = []
    for stored in session.predictions:
        session.folder.mkdir(parents=True, exist_ok=True)
        files.append(write_outputs(stored.load(), threshold, session.folder, stored.stem))
    shown = session.panel_files()
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
        **{kind: (str(path) if path else None) for kind, path in shown.items()},
        "gallery": [(str(f["cutout"]), p.name) for f, p in zip(files, session.predictions)],
        "downloads": [str(path) for f in files for path in f.values()],
    }
