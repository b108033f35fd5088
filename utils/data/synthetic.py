"""Synthetic DIS-like data: fine structures on textured backgrounds, with exact masks.

Each sample is one object made of some of: nested shapes with holes, thin lines
(1–3 px "cables"), a mesh (a fence-like grid) and a frame, over a textured,
shaded background. The mask is drawn first, without anti-aliasing, and the image
is composed from it, so the mask is exact. Sample ``i`` of seed ``s`` is the
same whatever the count, so datasets of different sizes share their first
samples.

    python -m utils.data.synthetic --out data/demo/TrainDataset --count 16 --size 256
    python -m utils.data.synthetic --out data/demo/DIS-VD --layout dis5k --count 8 --size 320x240
"""

from __future__ import annotations

import argparse
import os
import sys
import zlib
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from utils.common.fileio import OutputError
from utils.common.ownership import claim_folder
from utils.data.pairing import LAYOUTS

PathLike = Union[str, os.PathLike]


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """H×W×3 float texture in [0, 1]: smooth colour noise, stripes, a shading ramp, grain."""
    cells = int(rng.integers(3, 12))
    coarse = rng.random((cells, cells, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 40)
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    ramp = (xx / max(width - 1, 1)) * rng.uniform(-0.3, 0.3) + (yy / max(height - 1, 1)) * rng.uniform(-0.3, 0.3)
    tint = rng.random(3).astype(np.float32)
    texture = 0.5 * texture + 0.2 * stripes[..., None] * tint + ramp[..., None]
    texture += rng.normal(0, 0.03, texture.shape).astype(np.float32)
    return np.clip(texture, 0, 1)


def _point(rng: np.random.Generator, width: int, height: int, margin: float = 0.1) -> Tuple[int, int]:
    return (
        int(rng.uniform(margin, 1 - margin) * width),
        int(rng.uniform(margin, 1 - margin) * height),
    )


def _nested_shapes(rng: np.random.Generator, mask: np.ndarray) -> None:
    """A filled shape with a hole, a shape inside the hole, and small punched holes."""
    height, width = mask.shape
    centre = _point(rng, width, height, 0.3)
    radius = int(min(width, height) * rng.uniform(0.15, 0.3))
    if rng.random() < 0.5:
        cv2.circle(mask, centre, radius, 255, -1)
    else:
        sides = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, sides))
        pts = np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    cv2.circle(mask, centre, max(radius // 2, 2), 0, -1)  # the hole
    cv2.circle(mask, centre, max(radius // 5, 1), 255, -1)  # a shape inside the hole
    for _ in range(int(rng.integers(0, 6))):  # punched holes
        offset = rng.uniform(-0.8, 0.8, 2) * radius
        cv2.circle(mask, (int(centre[0] + offset[0]), int(centre[1] + offset[1])), int(rng.integers(1, 4)), 0, -1)


def _thin_lines(rng: np.random.Generator, mask: np.ndarray) -> None:
    """Cables: polylines 1–3 px thick."""
    height, width = mask.shape
    for _ in range(int(rng.integers(2, 7))):
        points = np.array([_point(rng, width, height, 0.02) for _ in range(int(rng.integers(2, 5)))], np.int32)
        cv2.polylines(mask, [points], False, 255, int(rng.integers(1, 4)), lineType=cv2.LINE_8)


def _mesh(rng: np.random.Generator, mask: np.ndarray) -> None:
    """A fence: a rectangle filled with a 1–2 px grid, and its frame."""
    height, width = mask.shape
    x0, y0 = _point(rng, width, height, 0.05)
    x1 = min(width - 1, x0 + int(width * rng.uniform(0.2, 0.5)))
    y1 = min(height - 1, y0 + int(height * rng.uniform(0.2, 0.5)))
    step = int(rng.integers(4, 12))
    thickness = int(rng.integers(1, 3))
    for x in range(x0, x1, step):
        cv2.line(mask, (x, y0), (x, y1), 255, thickness)
    for y in range(y0, y1, step):
        cv2.line(mask, (x0, y), (x1, y), 255, thickness)
    cv2.rectangle(mask, (x0, y0), (x1, y1), 255, thickness + 1)


def make_sample(rng: np.random.Generator, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
    """One (H×W×3 uint8 RGB image, H×W uint8 mask of 0/255) pair."""
    mask = np.zeros((height, width), np.uint8)
    parts = [_nested_shapes, _thin_lines, _mesh]
    chosen = [p for p in parts if rng.random() < 0.6] or [parts[int(rng.integers(len(parts)))]]
    for part in chosen:
        part(rng, mask)
    background = _texture(rng, height, width)
    foreground = _texture(rng, height, width)
    # keep the object distinguishable: shift its brightness away from the background's
    shift = 0.35 if background.mean() < 0.5 else -0.35
    foreground = np.clip(foreground * 0.6 + background.mean() + shift, 0, 1)
    image = np.where(mask[..., None] > 0, foreground, background)
    return (image * 255).round().astype(np.uint8), mask


def parse_size(text: str) -> Tuple[int, int]:
    """``"256"`` → (256, 256); ``"320x240"`` → (width 320, height 240)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or WxH, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 8:
        raise argparse.ArgumentTypeError(f"size must be N or WxH with sides ≥ 8, got {text!r}")
    return values[0], values[1]


def write_dataset(
    out: PathLike,
    count: int,
    size: Union[int, Sequence[int]] = 256,
    layout: str = "authors",
    seed: int = 0,
    image_ext: str = ".jpg",
    progress: bool = False,
) -> List[Tuple[Path, Path]]:
    """Write ``count`` pairs under ``out`` in ``layout`` ("authors": Imgs/GT, "dis5k":
    im/gt); returns the (image, mask) paths. Images are JPEG (quality 95) or PNG,
    masks PNG."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    width, height = (size, size) if isinstance(size, int) else size
    with claim_folder(out, "utils.data.synthetic", "--out") as owned:  # one writer; released when done
        image_dir, mask_dir = (Path(out) / name for name in LAYOUTS[layout])
        names = [f"synth_{index:05d}" for index in range(count)]
        files = [image_dir / f"{n}{image_ext}" for n in names] + [mask_dir / f"{n}.png" for n in names]
        owned.record([os.path.abspath(f) for f in files])  # as opened, whatever the cwd
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for index in tqdm(range(count), desc=f"synthetic {out}", disable=not progress, unit="img"):
            rng = np.random.default_rng([seed, index])
            image, mask = make_sample(rng, width, height)
            image_path = image_dir / f"synth_{index:05d}{image_ext}"
            mask_path = mask_dir / f"synth_{index:05d}.png"
            cv2.imwrite(str(image_path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(str(mask_path), mask)
            written.append((image_path, mask_path))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="dataset root to write (created)")
    parser.add_argument("--count", type=int, default=16, help="number of image/mask pairs")
    parser.add_argument("--size", type=parse_size, default=(256, 256), help="N or WxH (default 256)")
    parser.add_argument(
        "--layout", choices=sorted(LAYOUTS), default="authors", help="authors: Imgs/ + GT/; dis5k: im/ + gt/"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="default: derived from the --out folder's name, so that each set differs"
    )
    parser.add_argument("--image_ext", choices=[".jpg", ".png"], default=".jpg")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else zlib.crc32(Path(args.out).resolve().name.encode())
    try:
        written = write_dataset(args.out, args.count, args.size, args.layout, seed, args.image_ext, progress=True)
    except OutputError as error:  # a folder holding a dataset or anything else: nothing is written
        sys.stderr.write(f"{error}\n")
        return 2
    sys.stdout.write(f"wrote {len(written)} pairs to {args.out} (seed {seed})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
