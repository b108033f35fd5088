"""Finding image/mask pairs in the two DIS folder layouts, by file stem.

The authors pair the i-th sorted image with the i-th sorted mask, so one missing
file silently shifts every later pair. Here pairs are matched by stem, and every
file that cannot be paired is named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from utils.common.logs import get_logger
from utils.data.folders import DatasetError, list_folder
from utils.data.images import (
    IMAGE_EXTENSIONS,
    MASK_EXTENSIONS,
    TURNING_ORIENTATIONS,
    ImageReadError,
    exif_note,
    exif_orientation,
    image_size,
)

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: (image folder, mask folder) of each supported layout.
LAYOUTS: Dict[str, Tuple[str, str]] = {"authors": ("Imgs", "GT"), "dis5k": ("im", "gt")}

LAYOUT_HELP = (
    "expected one of these layouts:\n"
    "  <root>/Imgs/<name>.jpg + <root>/GT/<name>.png   (the authors', e.g. data/TrainDataset)\n"
    "  <root>/im/<name>.jpg   + <root>/gt/<name>.png   (DIS5K, e.g. DIS5K/DIS-TR)\n"
    f"images: {' '.join(IMAGE_EXTENSIONS)}; masks: {' '.join(MASK_EXTENSIONS)}; "
    "an image and its mask share the file stem"
)


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


def _unique_files(folder: Path, extensions: Tuple[str, ...], scan: PairScan) -> Dict[str, Path]:
    listing = list_folder(folder, extensions)
    scan.not_images.extend(str(p.relative_to(scan.root)) for p in listing.others)
    files, duplicates = listing.unique()
    for paths in duplicates:
        scan.duplicate_stems.append(", ".join(str(p.relative_to(scan.root)) for p in paths))
        scan.ambiguous.add(paths[0].stem)
    return files


def scan_pairs(root: PathLike) -> PairScan:
    """Pair images and masks under ``root`` by stem, in either layout.

    Every file's header is read: unreadable files are listed and pairs whose image
    and mask sizes differ go to ``size_mismatch`` (the authors drop those pairs).
    """
    layout, image_dir, mask_dir = find_layout(root)
    scan = PairScan(Path(root), layout, image_dir, mask_dir)
    images = _unique_files(image_dir, IMAGE_EXTENSIONS, scan)
    masks = _unique_files(mask_dir, MASK_EXTENSIONS, scan)
    # a stem with two images (or masks) is reported as ambiguous, not its partner as unpaired
    scan.images_without_mask = [
        str(images[s].relative_to(scan.root)) for s in sorted(set(images) - set(masks) - scan.ambiguous)
    ]
    scan.masks_without_image = [
        str(masks[s].relative_to(scan.root)) for s in sorted(set(masks) - set(images) - scan.ambiguous)
    ]
    for stem in sorted(set(images) & set(masks)):
        image, mask = images[stem], masks[stem]
        sizes = []
        for path in (image, mask):
            try:
                sizes.append(image_size(path))
            except ImageReadError as error:  # the reason, e.g. over Pillow's pixel limit
                scan.unreadable.append(f"{path.relative_to(scan.root)} ({str(error).split(': ', 1)[-1]})")
            except Exception as error:  # noqa: BLE001  (Pillow raises many types)
                scan.unreadable.append(f"{path.relative_to(scan.root)} ({type(error).__name__}: {error})")
        if len(sizes) < 2:
            continue
        if sizes[0] != sizes[1]:
            turned = exif_orientation(image) in TURNING_ORIENTATIONS and sizes[0][::-1] == sizes[1]
            scan.size_mismatch.append(
                f"{stem} (image {sizes[0][0]}×{sizes[0][1]}, mask {sizes[1][0]}×{sizes[1][1]}"
                + (
                    "; the image's EXIF orientation turns it to the mask's size: the mask was drawn on the turned photo"
                    if turned
                    else ""
                )
                + ")"
            )
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
    note = exif_note([image for image, _ in scan.pairs], f"{scan.root}")
    if note:
        log.warning("%s", note)
    if not scan.pairs:
        if scan.size_mismatch:
            raise DatasetError(
                f"{scan.root}: every one of the {len(scan.size_mismatch)} pairs has an image and a mask "
                "of different sizes, so none can be trained on (the layout is fine); resize the masks "
                "to their images"
            )
        raise DatasetError(f"{scan.root}: no image/mask pairs to train on; {LAYOUT_HELP}")
    return scan.pairs
