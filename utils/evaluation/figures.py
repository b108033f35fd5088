"""Figures of this repository: the architecture diagram and qualitative grids.

    python -m utils.evaluation.figures architecture --out Figures/architecture.png
    python -m utils.evaluation.figures grid --images data/TestDataset/DIS-TE1 --pred FSANet=results/FSANet/DIS-TE1 \
        --out Figures/grid.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from utils.common.errors import FSANetError
from utils.data.folders import list_images
from utils.data.images import read_mask, read_rgb
from utils.data.pairing import find_layout

PathLike = Union[str, os.PathLike]


def _figure(figsize, dpi: int = 100, **subplots):
    """A matplotlib Figure and its axes without pyplot (the process's backend is left alone)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(**subplots)


#: (label, x, y, colour) of each block, and the arrows between them.
_BLOCKS = {
    "input": ("RGB image\nB×3×H×W", 0.5, 3.0, "#e8e8e8"),
    "hp": ("HighPassFilter\nFFT → disc mask → |iFFT|\n→ mean over RGB", 2.4, 1.4, "#fde2c8"),
    "fenc": ("frequency encoder\nResNet-50 (1-ch stem)\n256/512/1024/2048", 5.0, 1.4, "#fde2c8"),
    "senc": ("spatial encoder\nPVT-v2-b2\n64/128/320/512", 4.9, 4.6, "#cfe3f6"),
    "mf": ("MF ×4\nf + SE(conv1×1(g))", 7.1, 3.0, "#e3d7f2"),
    "csfm": ("CSFM\ncross-scale down/up\nconcat 512/2816/4864", 9.2, 3.0, "#d5eed3"),
    "hcf": ("HCF ×4\nmulti-branch convs\n→ 64 ch", 11.3, 3.0, "#f6e7a8"),
    "sff": ("SFF (one, shared) ×3\ngate + SEA selection\ntop-down", 13.4, 3.0, "#f7cfd4"),
    "head": ("shared head\nconv → ×2 up → conv\nP1 P2 P3 P4", 15.5, 3.0, "#e8e8e8"),
}
_ARROWS = [
    ("input", "hp"),
    ("input", "senc"),
    ("hp", "fenc"),
    ("fenc", "mf"),
    ("senc", "mf"),
    ("mf", "csfm"),
    ("csfm", "hcf"),
    ("hcf", "sff"),
    ("sff", "head"),
]


def draw_architecture(out: PathLike) -> Path:
    """This implementation's FSANet as a block diagram (module classes, widths)."""
    fig, ax = _figure((16, 5.2), 110)
    ax.set_xlim(-0.6, 16.6)
    ax.set_ylim(0.2, 5.8)
    ax.axis("off")
    for label, x, y, colour in _BLOCKS.values():
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=9,
            bbox=dict(boxstyle="round,pad=0.5", facecolor=colour, edgecolor="#555555"),
        )
    for start, end in _ARROWS:
        (_, x0, y0, _), (_, x1, y1, _) = _BLOCKS[start], _BLOCKS[end]
        half = {"input": 0.55, "hp": 1.1, "fenc": 1.0}
        ax.annotate(
            "",
            xy=(x1 - half.get(end, 0.95), y1),
            xytext=(x0 + half.get(start, 0.95), y0),
            arrowprops=dict(arrowstyle="-|>", color="#333333", lw=1.2, shrinkA=4, shrinkB=4),
        )
    ax.text(
        0.5,
        0.55,
        "lib/frequency.py · models/backbones.py · lib/modality_fusion.py · lib/scale_fusion.py · "
        "lib/context_fusion.py · lib/feature_fusion.py · lib/head.py",
        fontsize=8,
        color="#555555",
    )
    ax.set_title("FSANet as implemented here (python -m utils.evaluation.figures architecture)", fontsize=11)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    return out


def qualitative_grid(
    images: PathLike,
    predictions: Dict[str, PathLike],
    out: PathLike,
    masks: Optional[PathLike] = None,
    count: int = 4,
) -> Path:
    """Rows of image | mask | one prediction per method, for the first ``count`` images.

    ``images`` is an image folder or a set folder (``Imgs``/``im`` + ``GT``/``gt``).
    """
    images = Path(images)
    if masks is None and not list_images(images):
        _, images, masks = find_layout(images, need_masks=False)
    paths = list_images(images)[:count]
    for name, root in predictions.items():
        absent = [p.name for p in paths if not (Path(root) / f"{p.stem}.png").exists()]
        if len(absent) == len(paths):
            raise FileNotFoundError(
                f"{root}: no prediction for any of {absent} (method {name}); "
                "point --pred at the folder holding <stem>.png maps"
            )
    columns = ["image"] + (["mask"] if masks else []) + list(predictions)
    fig, axes = _figure((2.4 * len(columns), 2.2 * len(paths)), nrows=len(paths), ncols=len(columns), squeeze=False)
    for row, path in enumerate(paths):
        cells = [np.asarray(read_rgb(path))]
        if masks:
            mask_path = next(Path(masks).glob(path.stem + ".*"), None)
            cells.append(np.asarray(read_mask(mask_path)) if mask_path else np.zeros(cells[0].shape[:2], np.uint8))
        for root in predictions.values():
            pred_path = Path(root) / f"{path.stem}.png"
            cells.append(np.asarray(read_mask(pred_path)) if pred_path.exists() else np.zeros(cells[0].shape[:2]))
        for col, (ax, cell) in enumerate(zip(axes[row], cells)):
            ax.imshow(cell, cmap=None if cell.ndim == 3 else "gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def _method(text: str):
    name, _, path = text.partition("=")
    return (name, path) if path else (Path(text).name, text)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="figure", required=True)
    arch = sub.add_parser("architecture", help="the block diagram")
    arch.add_argument("--out", default="Figures/architecture.png")
    grid = sub.add_parser("grid", help="image | mask | predictions")
    grid.add_argument("--images", required=True, help="image folder, or a set folder with Imgs/GT or im/gt")
    grid.add_argument("--masks", default=None, help="mask folder (found automatically in a set folder)")
    grid.add_argument("--pred", type=_method, nargs="+", required=True, metavar="NAME=DIR")
    grid.add_argument("--count", type=int, default=4)
    grid.add_argument("--out", default="Figures/demo_grid.png")
    args = parser.parse_args(argv)
    try:
        if args.figure == "architecture":
            draw_architecture(args.out)
        else:
            qualitative_grid(args.images, dict(args.pred), args.out, args.masks, args.count)
    except (FSANetError, OSError) as error:  # DatasetError and unreadable files included
        parser.error(str(error))
    sys.stdout.write(f"wrote {args.out}\n")


if __name__ == "__main__":
    main()
