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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lib.checkpoint import build_from_checkpoint
from lib.FSANet import FSANet
from lib.weights import WeightFile, open_weights
from utils.common.amp import AMP_DTYPES
from utils.common.cli import set_threads
from utils.common.devices import resolve_device
from utils.common.errors import ConfigError
from utils.common.fileio import check_writable
from utils.common.logs import get_logger
from utils.common.ownership import claim_folder
from utils.common.signals import start_iterating
from utils.data.folders import DatasetError, list_images
from utils.data.images import IMAGE_EXTENSIONS, exif_orientation, image_size, read_rgb
from utils.inference.config import PredictConfig
from utils.inference.forward import predict_image, predict_logits
from utils.inference.jobs import (
    Job,
    PredictReport,
    find_test_sets,
    input_jobs,
    job_outputs,
    masks_beside,
    refuse_writing_into,
    set_jobs,
    with_cutouts,
)
from utils.inference.processing import input_size, postprocess, preprocess
from utils.inference.video import SIDECAR, is_video, predict_video, probe
from utils.inference.writing import write_cutout, write_png

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


class _JobDataset(Dataset):
    """Decodes and resizes in DataLoader workers; a failed read yields ``ok = False``."""

    def __init__(self, jobs: Sequence[Job], testsize: int, keep_aspect: bool = False) -> None:
        self.jobs, self.testsize, self.keep_aspect = list(jobs), testsize, keep_aspect

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int):
        job = self.jobs[index]
        try:
            image = read_rgb(job.image, exif_orientation=job.exif)
        except Exception as error:  # noqa: BLE001  (Pillow raises many types)
            return torch.zeros(3, self.testsize, self.testsize), index, 0, 0, f"{type(error).__name__}: {error}"
        height, width = job.size_hw or (image.height, image.width)
        size = input_size(image.height, image.width, self.testsize, self.keep_aspect)
        return preprocess(image, size)[0], index, height, width, ""


def same_size_batches(jobs: Sequence[Job], testsize: int, batch_size: int) -> List[List[int]]:
    """Job indices in batches of at most ``batch_size`` whose images share their ``--keep_aspect``
    input size (read from the headers, EXIF turns included); an unreadable image gets a batch of
    its own (its error is reported when it is decoded)."""
    groups: Dict[Tuple[int, int], List[int]] = {}
    for index, job in enumerate(jobs):
        try:
            width, height = image_size(job.image)
            if job.exif and exif_orientation(job.image) in (5, 6, 7, 8):  # turned by 90°
                width, height = height, width
            key = input_size(height, width, testsize, keep_aspect=True)
        except OSError:  # an unreadable file (ImageReadError): reported when the dataset decodes it
            key = (-index, -index)
        groups.setdefault(key, []).append(index)
    return [group[i : i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def load_predictor(config: PredictConfig, weights: Optional[WeightFile] = None) -> Tuple[nn.Module, torch.device]:
    """The model test.py and the web app predict with, and the device its input goes to:
    FSANet from weights (``pth_path``, any layout or ``.safetensors``; ``weights``: the file
    already opened with :func:`lib.weights.open_weights`, so it is not read again) on ``device``
    (default: cuda when available), or an exported ``onnx`` file run by onnxruntime
    (:class:`utils.inference.onnx_model.OnnxFSANet`; on the CPU unless ``device`` names a GPU, its
    input always from host memory), checked against ``testsize``."""
    pth_path, onnx, device = config.pth_path, config.onnx, config.device
    set_threads(config.threads)
    if (pth_path is None) == (onnx is None):
        raise ConfigError("give FSANet weights (--pth_path) or an exported model (--onnx), one of the two")
    if onnx is not None:
        from utils.inference.onnx_model import OnnxFSANet

        if config.amp != "none" or config.channels_last or config.fold_bn or config.compile:
            raise ConfigError(
                "--amp, --channels_last, --fold_bn and --compile apply to PyTorch; an ONNX file runs as it was "
                "exported (onnxruntime applies its own graph optimisations)"
            )
        model = OnnxFSANet(onnx, resolve_device(device).type if device else "cpu")
        model.check_input(config.testsize, config.batch_size, config.keep_aspect)
        log.info("%s: onnxruntime, input %s", onnx, model.input_shape)
        return model, torch.device("cpu")
    device = resolve_device(device)
    model, loaded = build_from_checkpoint(weights if weights is not None else pth_path)
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
    dataset = _JobDataset(jobs, config.testsize, config.keep_aspect)
    if config.keep_aspect and config.batch_size > 1:  # a batch holds images of one input size
        loader = DataLoader(
            dataset,
            batch_sampler=same_size_batches(jobs, config.testsize, config.batch_size),
            num_workers=config.workers,
            pin_memory=device.type == "cuda",
        )
    else:
        loader = DataLoader(
            dataset, batch_size=config.batch_size, num_workers=config.workers, pin_memory=device.type == "cuda"
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
            raise ConfigError(
                f"{config.pth_path or config.onnx}: the model gives NaN or inf for "
                f"{jobs[int(indices[keep[0]])].image.name}, so its maps would be black; the weights are damaged "
                "or from a diverged run (use an earlier checkpoint)"
                + (f", or drop --amp {config.amp}" if config.amp != "none" else "")
            )
        for row, i in enumerate(keep):
            job = jobs[int(indices[i])]
            prob_map = postprocess(logits[row], (int(heights[i]), int(widths[i])))
            write_png(prob_map, job.output)
            report.written.append(job.output)
            if job.cutout is not None:
                write_cutout(job, prob_map)
                report.cutouts.append(job.cutout)
    return report


def run_prediction(
    config: PredictConfig,
    save_path: PathLike,
    test_path: PathLike = "./data/TestDataset",
    sets: Optional[Sequence[str]] = None,
    input: Optional[PathLike] = None,  # noqa: A002  (test.py's --input)
    progress: bool = True,
    cutout: bool = False,
) -> PredictReport:
    """test.py's job: load the model once, predict every set under ``test_path`` (or the
    images of ``input``), write the maps under ``save_path``; returns what was written.
    Inputs, masks and output folders are checked before the model is loaded."""
    # read and checked once, before any other work (a hub id: fetched, or found in the cache)
    weights = open_weights(config.pth_path, model_class=FSANet) if config.pth_path else None
    report = PredictReport()
    save_path = Path(save_path)
    if input and is_video(input):
        return _run_video(config, save_path, Path(input), progress, cutout, report, weights)
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
    if cutout:  # <stem>_cutout.png beside each map
        work = [(name, with_cutouts(jobs)) for name, jobs in work]
    with claim_folder(save_path, "test.py", "--save_path") as owned:  # one writer; released when done
        outputs = [os.path.abspath(path) for _, jobs in work for path in job_outputs(jobs)]  # as opened, whatever the cwd
        owned.check(outputs)
        for folder in sorted({job.output.parent for _, jobs in work for job in jobs}):
            check_writable(folder, "--save_path")
        model, device = load_predictor(config, weights)
        owned.record(outputs)
        for name, jobs in work:
            before = len(report.written)
            if not jobs:
                log.warning("%s: no images to predict (its image folder is empty); no map written for it", name)
            predict_jobs(model, jobs, config, device, progress=progress, desc=name, report=report)
            log.info(
                "%s: %d maps%s written in %s",
                name,
                len(report.written) - before,
                " and their cut-outs" if cutout else "",
                save_path / name if name != "input" else save_path,
            )
        if report.skipped:
            log.warning("not images, skipped: %s", ", ".join(report.skipped))
        if report.failed:
            log.warning("%d images could not be read: %s", len(report.failed), "; ".join(report.failed))
    return report


def _run_video(
    config: PredictConfig,
    save_path: Path,
    video: Path,
    progress: bool,
    cutout: bool,
    report: PredictReport,
    weights: Optional[WeightFile] = None,
) -> PredictReport:
    """test.py ``--input VIDEO``: the frames' maps in ``<save_path>/<video stem>/`` (utils.inference.video)."""
    fps, expected, width, height = probe(video)  # an unreadable video is refused before the model loads
    out_dir = save_path / video.stem
    with claim_folder(save_path, "test.py", "--save_path") as owned:
        check_writable(save_path, "--save_path")
        model, device = load_predictor(config, weights)
        count = predict_video(model, device, config, video, out_dir, owned, report, cutout, progress)
    log.info(
        "%s: %d frames (%dx%d, %.3g fps) → %d maps%s in %s (frame rate in %s)",
        video.name,
        count,
        width,
        height,
        fps,
        len(report.written),
        " and their cut-outs" if cutout else "",
        out_dir,
        out_dir / SIDECAR,
    )
    return report


__all__ = [
    "load_predictor",
    "predict_image",
    "predict_jobs",
    "predict_logits",
    "run_prediction",
    "write_png",
]
