"""Finding image/mask pairs in the two DIS folder layouts, by file stem.

The authors pair the i-th sorted image with the i-th sorted mask, so one missing
file silently shifts every later pair. Here pairs are matched by stem, and every
file that cannot be paired is named.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from utils.data.images import IMAGE_EXTENSIONS, MASK_EXTENSIONS, image_size

PathLike = Union[str, os.PathLike]
log = logging.getLogger(__name__)

#: (image folder, mask folder) of each supported layout.
LAYOUTS: Dict[str, Tuple[str, str]] = {"authors": ("Imgs", "GT"), "dis5k": ("im", "gt")}

#: DIS5K's evaluation sets in the authors' order; DIS-TR is the training set.
DIS_SETS: Tuple[str, ...] = ("DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
TE_SETS: Tuple[str, ...] = DIS_SETS[1:]
TRAINING_SETS: Tuple[str, ...] = ("DIS-TR",)


def evaluation_set_names(root: PathLike) -> Tuple[List[str], List[str]]:
    """``(sets, training sets left out)``: the sub-folders of ``root`` to predict or score
    by default: DIS5K's evaluation sets first (their order), then any other folder;
    DIS-TR (3,000 training images) only when named explicitly."""
    present = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [n for n in DIS_SETS if n in present] + [n for n in present if n not in DIS_SETS]
    return [n for n in names if n not in TRAINING_SETS], [n for n in names if n in TRAINING_SETS]


def chosen_set_names(root: PathLike, sets: Optional[Sequence[str]], action: str) -> List[str]:
    """``sets`` when given, else :func:`evaluation_set_names` with the left-out training sets logged."""
    if sets:
        return list(sets)
    names, training = evaluation_set_names(root)
    if training:
        log.info("%s: left out %s (training data; name it in --sets to %s it)", root, ", ".join(training), action)
    return names


LAYOUT_HELP = (
    "expected one of these layouts:\n"
    "  <root>/Imgs/<name>.jpg + <root>/GT/<name>.png   (the authors', e.g. data/TrainDataset)\n"
    "  <root>/im/<name>.jpg   + <root>/gt/<name>.png   (DIS5K, e.g. DIS5K/DIS-TR)\n"
    f"images: {' '.join(IMAGE_EXTENSIONS)}; masks: {' '.join(MASK_EXTENSIONS)}; "
    "an image and its mask share the file stem"
)


class DatasetError(ValueError):
    """A dataset folder that cannot be used as it is; the message says what to fix."""


def find_layout(root: PathLike, need_masks: bool = True) -> Tuple[str, Path, Optional[Path]]:
    """``(layout name, image folder, mask folder)`` of a dataset root.

    With ``need_masks=False`` a root with only an image folder is accepted (mask
    folder ``None``).
    """
    root = Path(root)
    if root.is_file():
        raise DatasetError(f"{root}: a file; give the dataset folder that holds the image and mask folders; {LAYOUT_HELP}")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; {LAYOUT_HELP}")
    for name, (images, masks) in LAYOUTS.items():
        if (root / images).is_dir() and (root / masks).is_dir():
            return name, root / images, root / masks
    if not need_masks:
        for name, (images, _) in LAYOUTS.items():
            if (root / images).is_dir():
                return name, root / images, None
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise DatasetError(f"{root}: no image/mask folders found (sub-folders: {found or 'none'}); {LAYOUT_HELP}")


@dataclass
class PairScan:
    """What :func:`scan_pairs` found in one dataset root."""

    root: Path
    layout: str
    image_dir: Path
    mask_dir: Path
    pairs: List[Tuple[Path, Path]] = field(default_factory=list)
    images_without_mask: List[str] = field(default_factory=list)
    masks_without_image: List[str] = field(default_factory=list)
    not_images: List[str] = field(default_factory=list)
    unreadable: List[str] = field(default_factory=list)
    duplicate_stems: List[str] = field(default_factory=list)
    size_mismatch: List[str] = field(default_factory=list)
    ambiguous: set = field(default_factory=set)  # stems with several files in one folder

    @property
    def has_problems(self) -> bool:
        """Anything besides size mismatches (which the authors drop silently)."""
        return bool(
            self.images_without_mask
            or self.masks_without_image
            or self.not_images
            or self.unreadable
            or self.duplicate_stems
        )

    def problems(self) -> str:
        """Every unusable file, by name, grouped by reason (one message)."""
        groups = [
            (f"images without a mask in {self.mask_dir}", self.images_without_mask),
            (f"masks without an image in {self.image_dir}", self.masks_without_image),
            ("files that are not images", self.not_images),
            ("images or masks that cannot be read", self.unreadable),
            ("stems with more than one file in a folder (ambiguous)", self.duplicate_stems),
        ]
        lines = [f"{self.root}: {len(self.pairs)} usable pairs, and:"]
        for title, names in groups:
            if names:
                lines.append(f"  {len(names)} {title}: {', '.join(names)}")
        return "\n".join(lines)


def _list_files(folder: Path, extensions: Tuple[str, ...], scan: PairScan) -> Dict[str, Path]:
    by_stem: Dict[str, List[Path]] = defaultdict(list)
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.is_dir():
            continue  # hidden files (.DS_Store, editors' temp files) and sub-folders
        if entry.suffix.lower() not in extensions:
            scan.not_images.append(str(entry.relative_to(scan.root)))
            continue
        by_stem[entry.stem].append(entry)
    files: Dict[str, Path] = {}
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            scan.duplicate_stems.append(", ".join(str(p.relative_to(scan.root)) for p in paths))
            scan.ambiguous.add(stem)
        else:
            files[stem] = paths[0]
    return files


def scan_pairs(root: PathLike, check_sizes: bool = True) -> PairScan:
    """Pair images and masks under ``root`` by stem, in either layout.

    With ``check_sizes`` every file's header is read: unreadable files are listed
    and pairs whose image and mask sizes differ go to ``size_mismatch`` (the
    authors drop those pairs).
    """
    layout, image_dir, mask_dir = find_layout(root)
    scan = PairScan(Path(root), layout, image_dir, mask_dir)
    images = _list_files(image_dir, IMAGE_EXTENSIONS, scan)
    masks = _list_files(mask_dir, MASK_EXTENSIONS, scan)
    # a stem with two images (or masks) is reported as ambiguous, not its partner as unpaired
    scan.images_without_mask = [
        str(images[s].relative_to(scan.root)) for s in sorted(set(images) - set(masks) - scan.ambiguous)
    ]
    scan.masks_without_image = [
        str(masks[s].relative_to(scan.root)) for s in sorted(set(masks) - set(images) - scan.ambiguous)
    ]
    for stem in sorted(set(images) & set(masks)):
        image, mask = images[stem], masks[stem]
        if check_sizes:
            sizes = []
            for path in (image, mask):
                try:
                    sizes.append(image_size(path))
                except Exception as error:  # noqa: BLE001  (Pillow raises many types)
                    scan.unreadable.append(f"{path.relative_to(scan.root)} ({type(error).__name__})")
            if len(sizes) < 2:
                continue
            if sizes[0] != sizes[1]:
                scan.size_mismatch.append(f"{stem} (image {sizes[0][0]}×{sizes[0][1]}, mask {sizes[1][0]}×{sizes[1][1]})")
                continue
        scan.pairs.append((image, mask))
    return scan


def training_pairs(root: PathLike, skip_unpaired: bool = False) -> List[Tuple[Path, Path]]:
    """The pairs to train on, or a :class:`DatasetError` that names every bad file.

    Unpaired, unreadable, ambiguous and non-image files stop training unless
    ``skip_unpaired``; pairs of different sizes are dropped (as the authors do)
    with a warning that names them.
    """
    scan = scan_pairs(root)
    if scan.has_problems:
        if not skip_unpaired:
            raise DatasetError(
                scan.problems() + "\nfix or remove these files, or pass --skip_unpaired to train on the usable pairs"
            )
        log.warning("%s\n--skip_unpaired: training on the %d usable pairs", scan.problems(), len(scan.pairs))
    if scan.size_mismatch:
        log.warning(
            "%s: dropping %d pairs whose image and mask sizes differ (as the authors do): %s",
            scan.root,
            len(scan.size_mismatch),
            ", ".join(scan.size_mismatch),
        )
    if not scan.pairs:
        if scan.size_mismatch:
            raise DatasetError(
                f"{scan.root}: every one of the {len(scan.size_mismatch)} pairs has an image and a mask "
                "of different sizes, so none can be trained on (the layout is fine); resize the masks "
                "to their images"
            )
        raise DatasetError(f"{scan.root}: no image/mask pairs to train on; {LAYOUT_HELP}")
    return scan.pairs
