"""Prediction maps for DIS test sets or any images (``test.py`` is the CLI).

Each image is processed as the authors test (``utils.inference.processing``): resized to
testsize × testsize, P1 brought back to the mask's size (or, without a mask,
the image's own size), sigmoid, min-max, 8-bit PNG named after the image. Maps
are written as soon as their batch is done, each through a temporary file, so
a crash never loses or truncates the maps already written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lib.checkpoint import build_from_checkpoint
from utils.common.amp import AMP_DTYPES, autocast
from utils.common.devices import resolve_device
from utils.common.fileio import atomic_write_bytes, check_writable
from utils.common.logs import get_logger
from utils.data.folders import DatasetError, list_images
from utils.data.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS, image_size, read_rgb
from utils.data.sets import find_sets
from utils.inference.processing import postprocess, preprocess

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


@dataclass
class Job:
    """One image to predict: where to write its map and at which (H, W)."""

    image: Path
    output: Path
    size_hw: Optional[Tuple[int, int]] = None  # None: the image's own size
    exif: bool = False  # turn the image as its EXIF orientation says (photos, not DIS sets)


@dataclass
class PredictReport:
    written: List[Path] = field(default_factory=list)
    failed: List[str] = field(default_factory=list)  # "path (reason)"
    skipped: List[str] = field(default_factory=list)  # files that are not images


def find_test_sets(test_path: PathLike, sets: Optional[Sequence[str]] = None) -> List[Tuple[str, Path, Optional[Path]]]:
    """``(set name, image folder, mask folder or None)`` for each set under ``test_path``
    (:func:`utils.data.sets.find_sets`)."""
    return find_sets(test_path, sets, "images")


def _mask_for(image: Path, mask_dir: Optional[Path]) -> Optional[Path]:
    if mask_dir is None:
        return None
    for ext in MASK_EXTENSIONS:
        candidate = mask_dir / (image.stem + ext)
        if candidate.exists():
            return candidate
    return None


def set_jobs(image_dir: Path, mask_dir: Optional[Path], out_dir: Path, report: PredictReport) -> List[Job]:
    """One job per image of a test set; maps at their mask's size when there is one."""
    jobs = []
    for image in list_images(image_dir, report.skipped):
        mask = _mask_for(image, mask_dir)
        size = None
        if mask is not None:
            try:
                width, height = image_size(mask)
                size = (height, width)
            except Exception as error:  # noqa: BLE001
                log.warning("%s: cannot read its mask %s (%s); the map gets the image's size", image, mask, error)
        jobs.append(Job(image, out_dir / f"{image.stem}.png", size))
    _refuse_shared_outputs(jobs, "two images of a set would write one map, and eval.py matches maps by stem")
    return jobs


def input_jobs(paths: Sequence[Path], out_dir: Path) -> List[Job]:
    """One job per ``--input`` image, at the image's own size (EXIF-oriented); images whose
    stems collide (``photo.jpg`` + ``photo.png``) get their extension in the name."""
    stems: Dict[str, int] = {}
    for path in paths:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    jobs = []
    for path in paths:
        name = f"{path.stem}.png" if stems[path.stem] == 1 else f"{path.stem}_{path.suffix.lstrip('.').lower()}.png"
        jobs.append(Job(path, out_dir / name, None, exif=True))
    renamed = [f"{j.image.name} → {j.output.name}" for j in jobs if stems[j.image.stem] > 1]
    if renamed:
        log.warning("images sharing a name get their extension in the map's name: %s", ", ".join(renamed))
    _refuse_shared_outputs(jobs, "two images would write one map")
    return jobs


def _refuse_shared_outputs(jobs: Sequence[Job], why: str) -> None:
    by_output: Dict[Path, List[str]] = {}
    for job in jobs:
        by_output.setdefault(job.output, []).append(job.image.name)
    shared = [f"{', '.join(images)} → {output.name}" for output, images in by_output.items() if len(images) > 1]
    if shared:
        raise DatasetError(f"{why}: {'; '.join(shared)}; rename or remove one of each")


def refuse_writing_into(jobs: Sequence[Job], protected: Sequence[Path], flag: str = "--save_path") -> None:
    """Raise when a map would be written into a folder holding inputs or masks (they could be overwritten)."""
    guarded = {Path(p).resolve() for p in protected if p is not None}
    hit = sorted({str(job.output.parent) for job in jobs if job.output.parent.resolve() in guarded})
    if hit:
        raise DatasetError(
            f"{flag} would write maps into {', '.join(hit)}, which holds the input images or the "
            "ground-truth masks (they could be overwritten); choose another folder"
        )


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
    testsize: int = 992,
    device: Optional[torch.device] = None,
    amp_dtype: Optional[torch.dtype] = None,
    size_hw: Optional[Tuple[int, int]] = None,
) -> np.ndarray:
    """One RGB image → its test.py map (H×W uint8, at ``size_hw`` or the image's size)."""
    logits = predict_logits(model, preprocess(image, testsize), device or torch.device("cpu"), amp_dtype)
    return postprocess(logits[0], size_hw or (image.height, image.width))


def load_predictor(
    pth_path: Optional[PathLike] = None,
    onnx: Optional[PathLike] = None,
    device: Optional[str] = None,
    amp: str = "none",
    channels_last: bool = False,
    testsize: int = 992,
    batch_size: int = 1,
) -> Tuple[nn.Module, torch.device]:
    """The model test.py and the web app predict with, and the device its input goes to:
    FSANet from weights (``pth_path``, any layout or ``.safetensors``) on ``device``
    (default: cuda when available), or an exported ``onnx`` file run by onnxruntime
    (:class:`utils.inference.onnx_model.OnnxFSANet`; on the CPU unless ``device`` names a GPU, its
    input always from host memory), checked against ``testsize``."""
    if (pth_path is None) == (onnx is None):
        raise ValueError("give FSANet weights (--pth_path) or an exported model (--onnx), one of the two")
    if onnx is not None:
        from utils.inference.onnx_model import OnnxFSANet

        if amp != "none" or channels_last:
            raise ValueError(
                "--amp and --channels_last apply to PyTorch; an ONNX file runs in the precision it was exported in"
            )
        model = OnnxFSANet(onnx, resolve_device(device).type if device else "cpu")
        model.check_input(testsize, batch_size)
        log.info("%s: onnxruntime, input %s", onnx, model.input_shape)
        return model, torch.device("cpu")
    device = resolve_device(device)
    model, loaded = build_from_checkpoint(pth_path)
    log.info("%s", loaded)
    model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model, device


@torch.inference_mode()
def predict_jobs(
    model: nn.Module,
    jobs: Sequence[Job],
    testsize: int = 992,
    batch_size: int = 1,
    device: Optional[torch.device] = None,
    amp_dtype: Optional[torch.dtype] = None,
    workers: int = 0,
    progress: bool = True,
    desc: str = "predict",
    report: Optional[PredictReport] = None,
    channels_last: bool = False,
) -> PredictReport:
    """Predict every job and write its map; unreadable images are reported and skipped.

    ``channels_last`` feeds the batch in NHWC layout (for a model converted with
    ``model.to(memory_format=torch.channels_last)``).
    """
    report = report or PredictReport()
    device = device or torch.device("cpu")
    model.eval()
    loader = DataLoader(
        _JobDataset(jobs, testsize), batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda"
    )
    for images, indices, heights, widths, errors in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        keep = [i for i, error in enumerate(errors) if not error]
        for i, error in enumerate(errors):
            if error:
                report.failed.append(f"{jobs[int(indices[i])].image} ({error})")
                log.warning("skipped %s: %s", jobs[int(indices[i])].image, error)
        if not keep:
            continue
        logits = predict_logits(model, images[keep], device, amp_dtype, channels_last)
        for row, i in enumerate(keep):
            job = jobs[int(indices[i])]
            write_png(postprocess(logits[row], (int(heights[i]), int(widths[i]))), job.output)
            report.written.append(job.output)
    return report


def run_prediction(
    pth_path: Optional[PathLike],
    save_path: PathLike,
    test_path: PathLike = "./data/TestDataset",
    sets: Optional[Sequence[str]] = None,
    input: Optional[PathLike] = None,  # noqa: A002  (test.py's --input)
    testsize: int = 992,
    batch_size: int = 1,
    workers: int = 0,
    device: Optional[str] = None,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool = True,
    onnx: Optional[PathLike] = None,
) -> PredictReport:
    """test.py's job: load the model once, predict every set under ``test_path`` (or the
    images of ``input``), write the maps under ``save_path``; returns what was written.
    Inputs, masks and output folders are checked before the model is loaded.
    ``onnx`` (instead of ``pth_path``): an exported model, run by onnxruntime."""
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
        refuse_writing_into(jobs, [folder])
        work = [("input", jobs)]
    else:
        sets = find_test_sets(test_path, sets)
        work = [(name, set_jobs(images, masks, save_path / name, report)) for name, images, masks in sets]
        refuse_writing_into(
            [job for _, jobs in work for job in jobs], [folder for _, images, masks in sets for folder in (images, masks)]
        )
    for folder in sorted({job.output.parent for _, jobs in work for job in jobs}):
        check_writable(folder, "--save_path")
    model, device = load_predictor(pth_path, onnx, device, amp, channels_last, testsize, batch_size)
    for name, jobs in work:
        before = len(report.written)
        predict_jobs(
            model,
            jobs,
            testsize,
            batch_size,
            device,
            AMP_DTYPES[amp],
            workers,
            progress=progress,
            desc=name,
            report=report,
            channels_last=channels_last,
        )
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
    "Job",
    "PredictReport",
    "find_test_sets",
    "input_jobs",
    "load_predictor",
    "predict_image",
    "predict_jobs",
    "predict_logits",
    "refuse_writing_into",
    "run_prediction",
    "set_jobs",
    "write_png",
]
