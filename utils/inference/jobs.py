"""What test.py will write: one job per image (its map's path and size), from a DIS
test set or from ``--input`` images, checked before any model runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from utils.common.logs import get_logger
from utils.data.folders import DatasetError, list_images
from utils.data.images import MASK_EXTENSIONS, exif_note, image_size
from utils.data.pairing import LAYOUTS
from utils.data.sets import find_sets

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)


@dataclass
class Job:
    """One image to predict: where to write its map and at which (H, W)."""

    image: Path
    output: Path
    size_hw: Optional[Tuple[int, int]] = None  # None: the image's own size
    exif: bool = False  # turn the image as its EXIF orientation says (photos, not DIS sets)
    cutout: Optional[Path] = None  # --cutout: where its RGBA cut-out goes (<stem>_cutout.png beside the map)


@dataclass
class PredictReport:
    written: List[Path] = field(default_factory=list)  # the maps
    cutouts: List[Path] = field(default_factory=list)  # --cutout's RGBA files
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
    note = exif_note([job.image for job in jobs], str(image_dir))
    if note:
        log.warning("%s", note)
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


def with_cutouts(jobs: Sequence[Job]) -> List[Job]:
    """The jobs with a cut-out each, ``<map stem>_cutout.png`` beside the map (test.py ``--cutout``);
    refused when a cut-out's name is another image's map."""
    for job in jobs:
        job.cutout = job.output.with_name(f"{job.output.stem}_cutout.png")
    _refuse_shared_outputs(jobs, "a cut-out would replace another image's map")
    return list(jobs)


def job_outputs(jobs: Sequence[Job]) -> List[Path]:
    """Every file the jobs write: the maps and, with ``--cutout``, the cut-outs."""
    return [path for job in jobs for path in (job.output, job.cutout) if path is not None]


def _refuse_shared_outputs(jobs: Sequence[Job], why: str) -> None:
    by_output: Dict[Path, List[str]] = {}
    for job in jobs:
        for path in (job.output, job.cutout):
            if path is not None:
                by_output.setdefault(path, []).append(job.image.name)
    shared = [f"{', '.join(images)} → {output.name}" for output, images in by_output.items() if len(images) > 1]
    if shared:
        raise DatasetError(f"{why}: {'; '.join(shared)}; rename or remove one of each")


def refuse_writing_into(
    jobs: Sequence[Job], protected: Sequence[Path], flag: str = "--save_path", below: Sequence[Path] = ()
) -> None:
    """Raise when a map would be written into a folder holding inputs or masks, or anywhere below ``below``."""
    guarded = {Path(p).resolve() for p in protected if p is not None}
    guarded_below = {Path(p).resolve() for p in below}

    def hits(folder: Path) -> bool:
        folder = folder.resolve()
        return folder in guarded or any(folder.is_relative_to(g) for g in guarded_below)

    hit = sorted({str(job.output.parent) for job in jobs if hits(job.output.parent)})
    if hit:
        raise DatasetError(
            f"{flag} would write maps into {', '.join(hit)}, which holds the input images or the "
            "ground-truth masks (they could be overwritten or mixed with maps); choose another folder"
        )


def masks_beside(folder: Path) -> List[Path]:
    """The mask folders next to an image folder (``X/Imgs`` → ``X/GT``, ``X/im`` → ``X/gt``)."""
    siblings = [folder.parent / masks for images, masks in LAYOUTS.values() if folder.name == images]
    return [s for s in siblings if s.is_dir()]
