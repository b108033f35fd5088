"""A video file as test.py ``--input``: one map per frame (OpenCV decodes the file).

Maps go to ``<save_path>/<video stem>/<frame:06d>.png`` (``<frame:06d>_cutout.png`` beside
them with ``--cutout``), each at the frame's size, post-processed exactly as an image's;
frames are predicted in batches of ``--batch_size``. ``video.json`` beside them records the
source, the frame rate, the frame count and the size, so the maps can be put back together
(e.g. ``ffmpeg -framerate FPS -i %06d.png maps.mp4``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, List, Tuple, Union

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from utils.common.amp import AMP_DTYPES
from utils.common.fileio import atomic_write_text
from utils.common.ownership import OutputFolder
from utils.data.folders import DatasetError
from utils.inference.config import PredictConfig
from utils.inference.forward import predict_logits
from utils.inference.jobs import PredictReport
from utils.inference.processing import cutout, input_size, postprocess, preprocess
from utils.inference.writing import write_png

PathLike = Union[str, os.PathLike]

#: the video files ``--input`` takes
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
#: the sidecar with the frame rate, beside the frames' maps
SIDECAR = "video.json"


def is_video(path: PathLike) -> bool:
    """Whether ``path`` is a file named as a video."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS and Path(path).is_file()


def probe(path: PathLike) -> Tuple[float, int, int, int]:
    """``(fps, frame count as the container says, width, height)``, or a :class:`DatasetError`
    naming the file when OpenCV cannot decode a first frame."""
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise DatasetError(f"--input {path}: cannot be read as a video (OpenCV decodes no frame of it)")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return fps, count, frame.shape[1], frame.shape[0]
    finally:
        capture.release()


def frames(path: PathLike) -> Iterator[np.ndarray]:
    """Every frame of the video as H×W×3 RGB uint8, in order."""
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def frame_outputs(out_dir: Path, index: int, with_cutout: bool) -> List[Path]:
    """The files one frame writes."""
    names = [f"{index:06d}.png"] + ([f"{index:06d}_cutout.png"] if with_cutout else [])
    return [out_dir / name for name in names]


@torch.inference_mode()
def predict_video(
    model: nn.Module,
    device: torch.device,
    config: PredictConfig,
    path: Path,
    out_dir: Path,
    owned: OutputFolder,
    report: PredictReport,
    with_cutout: bool = False,
    progress: bool = True,
) -> int:
    """Predict every frame of ``path`` into ``out_dir`` (recorded in ``owned``'s manifest);
    returns the number of frames."""
    fps, expected, width, height = probe(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    owned.record([os.path.abspath(p) for i in range(expected) for p in frame_outputs(out_dir, i, with_cutout)])
    owned.record([os.path.abspath(out_dir / SIDECAR)])
    size = input_size(height, width, config.testsize, config.keep_aspect)
    count, batch, batch_frames = 0, [], []
    bar = tqdm(total=expected or None, desc=path.name, unit="frame", disable=not progress)

    def flush() -> None:
        logits = predict_logits(model, torch.cat(batch), device, AMP_DTYPES[config.amp], config.channels_last)
        for row, (index, rgb) in enumerate(batch_frames):
            prob_map = postprocess(logits[row], rgb.shape[:2])
            outputs = frame_outputs(out_dir, index, with_cutout)
            if index >= expected:  # the container's count was short: record before writing
                owned.record([os.path.abspath(p) for p in outputs])
            write_png(prob_map, outputs[0])
            report.written.append(outputs[0])
            if with_cutout:
                write_png(cutout(rgb, prob_map), outputs[1])
                report.cutouts.append(outputs[1])
        bar.update(len(batch_frames))
        batch.clear()
        batch_frames.clear()

    for rgb in frames(path):
        batch.append(preprocess(Image.fromarray(rgb), size))
        batch_frames.append((count, rgb))
        count += 1
        if len(batch) == config.batch_size:
            flush()
    if batch:
        flush()
    bar.close()
    sidecar = {"source": path.name, "fps": fps, "frames": count, "width": width, "height": height}
    atomic_write_text(out_dir / SIDECAR, json.dumps(sidecar, indent=1) + "\n")
    return count
