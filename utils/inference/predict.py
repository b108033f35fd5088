"""Prediction maps for DIS test sets or any images (``test.py`` is the CLI).

Each image is processed as the authors test (``utils.inference.processing``): resized to
testsize × testsize, P1 brought back to the mask's size (or, without a mask,
the image's own size), sigmoid, min-max, 8-bit PNG named after the image. Maps
are written as soon as their batch is done, each through a temporary file, so
a crash never loses or truncates the maps already written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lib.checkpoint import build_from_checkpoint
from lib.hub import resolve_weights
from utils.common.amp import AMP_DTYPES, autocast
from utils.common.cli import set_threads
from utils.common.devices import resolve_device
from utils.common.fileio import atomic_write_bytes, check_writable
from utils.common.logs import get_logger
from utils.common.ownership import claim_folder
from utils.common.signals import start_iterating
from utils.data.folders import DatasetError, list_images
from utils.data.images import IMAGE_EXTENSIONS, read_rgb
from utils.inference.config import DEFAULT_TESTSIZE, PredictConfig
from utils.inference.jobs import Job, PredictReport, find_test_sets, input_jobs, masks_beside, refuse_writing_into, set_jobs
from utils.inference.processing import postprocess, preprocess

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


class _JobDataset(Dataset):
    """Decodes and resizes in DataLoader workers; a failed read yields ``ok = False``."""

    def __init__(self, jobs: Sequence[Job], testsize: int) -> None:
        self.jobs, self.testsize = list(jobs), testsize

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int):
        job = self.jobs[index]
        try:
            image = read_rgb(job.image, exif_orientation=job.exif)
        except Exception as error:  # noqa: BLE001  (Pillow raises many types)
            return torch.zeros(3, self.testsize, self.testsize), index, 0, 0, f"{type(error).__name__}: {error}"
        height, width = job.size_hw or (image.height, image.width)
        return preprocess(image, self.testsize)[0], index, height, width, ""


def write_png(array: np.ndarray, path: Path) -> None:
    """An 8-bit PNG written through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())


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
) -> np.ndarray:
    """One RGB image → its test.py map (H×W uint8, at ``size_hw`` or the image's size)."""
    logits = predict_logits(model, preprocess(image, testsize), device or torch.device("cpu"), amp_dtype)
    return postprocess(logits[0], size_hw or (image.height, image.width))


def load_predictor(config: PredictConfig) -> Tuple[nn.Module, torch.device]:
    """The model test.py and the web app predict with, and the device its input goes to:
    FSANet from weights (``pth_path``, any layout or ``.safetensors``) on ``device``
    (default: cuda when available), or an exported ``onnx`` file run by onnxruntime
    (:class:`utils.inference.onnx_model.OnnxFSANet`; on the CPU unless ``device`` names a GPU, its
    input always from host memory), checked against ``testsize``."""
    pth_path, onnx, device = config.pth_path, config.onnx, config.device
    set_threads(config.threads)
    if (pth_path is None) == (onnx is None):
        raise ValueError("give FSANet weights (--pth_path) or an exported model (--onnx), one of the two")
    if onnx is not None:
        from utils.inference.onnx_model import OnnxFSANet

        if config.amp != "none" or config.channels_last or config.fold_bn or config.compile:
            raise ValueError(
                "--amp, --channels_last, --fold_bn and --compile apply to PyTorch; an ONNX file runs as it was "
                "exported (onnxruntime applies its own graph optimisations)"
            )
        model = OnnxFSANet(onnx, resolve_device(device).type if device else "cpu")
        model.check_input(config.testsize, config.batch_size)
        log.info("%s: onnxruntime, input %s", onnx, model.input_shape)
        return model, torch.device("cpu")
    device = resolve_device(device)
    model, loaded = build_from_checkpoint(pth_path)
    log.info("%s", loaded)
    model.to(device).eval()
    if config.fold_bn:
        from lib.fold_batchnorm import fold_batchnorm

        log.info("folded %d BatchNorms into their convolutions (--fold_bn)", fold_batchnorm(model))
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    if config.compile:
        log.info("torch.compile: the first batch compiles the model (minutes on a CPU)")
        model = torch.compile(model)
    return model, device


@torch.inference_mode()
def predict_jobs(
    model: nn.Module,
    jobs: Sequence[Job],
    config: PredictConfig,
    device: Optional[torch.device] = None,
    progress: bool = True,
    desc: str = "predict",
    report: Optional[PredictReport] = None,
) -> PredictReport:
    """Predict every job and write its map; unreadable images are reported and skipped.

    ``config.channels_last`` feeds the batch in NHWC layout (for a model converted with
    ``model.to(memory_format=torch.channels_last)``).
    """
    report = report or PredictReport()
    device = device or torch.device("cpu")
    model.eval()
    loader = DataLoader(
        _JobDataset(jobs, config.testsize),
        batch_size=config.batch_size,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
    )
    batches = start_iterating(loader)  # a stop while the workers start is raised once they are up
    for images, indices, heights, widths, errors in tqdm(
        batches, total=len(loader), desc=desc, unit="batch", disable=not progress
    ):
        keep = [i for i, error in enumerate(errors) if not error]
        for i, error in enumerate(errors):
            if error:
                report.failed.append(f"{jobs[int(indices[i])].image} ({error})")
                log.warning("skipped %s: %s", jobs[int(indices[i])].image, error)
        if not keep:
            continue
        logits = predict_logits(model, images[keep], device, AMP_DTYPES[config.amp], config.channels_last)
        if not torch.isfinite(logits).all():  # min-max of NaN is NaN: the map would be black, silently
            raise ValueError(
                f"{config.pth_path or config.onnx}: the model gives NaN or inf for "
                f"{jobs[int(indices[keep[0]])].image.name}, so its maps would be black; the weights are damaged "
                "or from a diverged run (use an earlier checkpoint)"
                + (f", or drop --amp {config.amp}" if config.amp != "none" else "")
            )
        for row, i in enumerate(keep):
            job = jobs[int(indices[i])]
            write_png(postprocess(logits[row], (int(heights[i]), int(widths[i]))), job.output)
            report.written.append(job.output)
    return report


def run_prediction(
    config: PredictConfig,
    save_path: PathLike,
    test_path: PathLike = "./data/TestDataset",
    sets: Optional[Sequence[str]] = None,
    input: Optional[PathLike] = None,  # noqa: A002  (test.py's --input)
    progress: bool = True,
) -> PredictReport:
    """test.py's job: load the model once, predict every set under ``test_path`` (or the
    images of ``input``), write the maps under ``save_path``; returns what was written.
    Inputs, masks and output folders are checked before the model is loaded."""
    if config.pth_path:
        resolve_weights(config.pth_path)  # a hub id: fetched, or found in the cache, before any other work
    report = PredictReport()
    save_path = Path(save_path)
    if input:
        images = list_images(input, report.skipped)
        if not images:
            raise DatasetError(
                f"--input {input}: no image files found (extensions: {' '.join(IMAGE_EXTENSIONS)})"
                + (f"; other files: {', '.join(report.skipped[:5])}" if report.skipped else "")
            )
        jobs = input_jobs(images, save_path)
        folder = Path(input) if Path(input).is_dir() else Path(input).parent
        refuse_writing_into(jobs, [folder], below=masks_beside(folder))
        work = [("input", jobs)]
    else:
        sets = find_test_sets(test_path, sets)
        work = [(name, set_jobs(images, masks, save_path / name, report)) for name, images, masks in sets]
        inputs = [folder for _, images, masks in sets for folder in (images, masks) if folder is not None]
        refuse_writing_into([job for _, jobs in work for job in jobs], inputs, below=inputs)
    with claim_folder(save_path, "test.py", "--save_path") as owned:  # one writer; released when done
        outputs = [os.path.abspath(job.output) for _, jobs in work for job in jobs]  # as opened, whatever the cwd
        owned.check(outputs)
        for folder in sorted({job.output.parent for _, jobs in work for job in jobs}):
            check_writable(folder, "--save_path")
        model, device = load_predictor(config)
        owned.record(outputs)
        for name, jobs in work:
            before = len(report.written)
            if not jobs:
                log.warning("%s: no images to predict (its image folder is empty); no map written for it", name)
            predict_jobs(model, jobs, config, device, progress=progress, desc=name, report=report)
            log.info(
                "%s: %d maps written in %s",
                name,
                len(report.written) - before,
                save_path / name if name != "input" else save_path,
            )
        if report.skipped:
            log.warning("not images, skipped: %s", ", ".join(report.skipped))
        if report.failed:
            log.warning("%d images could not be read: %s", len(report.failed), "; ".join(report.failed))
    return report


__all__ = [
    "load_predictor",
    "predict_image",
    "predict_jobs",
    "predict_logits",
    "run_prediction",
    "write_png",
]
