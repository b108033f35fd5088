"""Train FSANet with the authors' recipe.

    python train.py --train_path ./data/TrainDataset --train_save FSANet
    torchrun --nproc_per_node 2 train.py --train_path DIS5K/DIS-TR --train_save FSANet_ddp

Checkpoints go to checkpoints/<train_save>/, logs and tensorboard scalars to
logs/<train_save>/ (under --out_root, default the working directory).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from lib.checkpoint import CheckpointError, read_checkpoint
from lib.FSANet import CHECKPOINT_PARTS
from models.backbones import FREQUENCY_BACKBONES, SPATIAL_BACKBONES
from utils.cli import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    HelpFormatter,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
    round_size,
)
from utils.fileio import OutputError
from utils.pairing import DatasetError
from utils.training import AMP_DTYPES, SIZE_RATES, run_training


def _gpu_list(text: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus takes comma-separated GPU indices like 0,1; got {text!r}") from None


def _optional_path(text: str) -> Optional[str]:
    return None if text in ("", "None", "none") else text


def _checkpoint_part(text: str) -> str:
    if text not in (*CHECKPOINT_PARTS, "all"):
        raise argparse.ArgumentTypeError(
            f"--grad_checkpoint takes parts of {' '.join(CHECKPOINT_PARTS)} or all; got {text!r}"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    recipe = p.add_argument_group("the authors' recipe (defaults reproduce it)")
    recipe.add_argument("--epoch", type=positive_int, default=200, help="total epochs")
    recipe.add_argument("--lr", type=positive_float, default=2e-4, help="initial learning rate of the poly schedule")
    recipe.add_argument(
        "--batchsize",
        type=positive_int,
        default=8,
        help="global batch: split over GPUs by DataParallel, or over torchrun processes",
    )
    recipe.add_argument(
        "--trainsize",
        type=positive_int,
        default=736,
        help="training side before the size rates (rounded to a multiple of 32)",
    )
    recipe.add_argument("--clip", type=non_negative_float, default=0.5, help="clamp every gradient to ±clip (0: off)")
    recipe.add_argument(
        "--rates",
        type=positive_float,
        nargs="+",
        default=list(SIZE_RATES),
        help="multi-scale rates, one optimiser step each",
    )
    recipe.add_argument(
        "--loss",
        choices=["authors", "weighted"],
        default="authors",
        help="authors: BCE as their code computes it (plain mean); weighted: the boundary-weighted BCE they intended",
    )
    recipe.add_argument("--weight_decay", type=non_negative_float, default=1e-4, help="AdaXW decoupled weight decay")
    recipe.add_argument("--power", type=positive_float, default=0.9, help="poly LR power")

    data = p.add_argument_group("data")
    data.add_argument(
        "--train_path",
        default="./data/TrainDataset",
        help="dataset root: <root>/Imgs + <root>/GT, or DIS5K's <root>/im + <root>/gt",
    )
    data.add_argument(
        "--skip_unpaired",
        action="store_true",
        help="train on the usable pairs when some files have no partner or are not images",
    )
    data.add_argument("--cache_dir", default=None, help="keep resized copies here (much faster on DIS5K)")
    data.add_argument(
        "--workers",
        type=non_negative_int,
        default=min(4, os.cpu_count() or 1),
        help="DataLoader worker processes (also the threads that check the files first)",
    )
    data.add_argument("--val_path", default=None, help="optional validation set (either layout)")
    data.add_argument("--val_every", type=positive_int, default=1, help="validate every N epochs")
    data.add_argument("--val_size", type=positive_int, default=None, help="validation input side (default: --trainsize)")

    model = p.add_argument_group("model and weights")
    model.add_argument("--backbone", choices=sorted(SPATIAL_BACKBONES), default="pvt_v2_b2")
    model.add_argument("--freq_backbone", choices=sorted(FREQUENCY_BACKBONES), default="resnet50")
    model.add_argument(
        "--channels",
        type=positive_int,
        nargs=4,
        default=[64, 128, 320, 512],
        help="CSFM widths at strides 4-32 (the paper's 64 128 320 512)",
    )
    model.add_argument("--decoder_channels", type=positive_int, default=64, help="HCF/SFF/head width (the paper's 64)")
    model.add_argument(
        "--radius",
        type=non_negative_float,
        default=100.0,
        help="initial high-pass radius (the authors' 100 removes the whole spectrum of inputs "
        "below ~142 px: use less for small demo sizes)",
    )
    model.add_argument("--drop_path", type=probability, default=0.1, help="spatial encoder stochastic depth")
    model.add_argument("--pvt_weights", default=None, help="ImageNet PVT-v2 file (official or timm keys)")
    model.add_argument("--resnet_weights", default=None, help="torchvision ResNet-50 ImageNet file")
    model.add_argument("--res2net_weights", default=None, help="official Res2Net-50 v1b 26w×4s ImageNet file")
    model.add_argument(
        "--pre_model",
        type=_optional_path,
        default=None,
        help="start from these FSANet weights (+ optimiser state and epoch), e.g. FSANet-100.pth",
    )
    model.add_argument(
        "--resume", default=None, help="continue a run exactly from its checkpoint (a file, or the run's checkpoint folder)"
    )

    run = p.add_argument_group("devices, speed and output")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--gpus", type=_gpu_list, default=None, help="DataParallel GPU ids, e.g. 0,1 (default: all visible)")
    run.add_argument("--amp", choices=sorted(AMP_DTYPES), default="none", help="mixed precision")
    run.add_argument("--channels_last", action="store_true", help="NHWC memory format")
    run.add_argument(
        "--grad_checkpoint",
        nargs="*",
        default=None,
        metavar="PART",
        type=_checkpoint_part,
        help="recompute activations in backward to save memory: no PART = both encoders; parts: "
        f"{' '.join(CHECKPOINT_PARTS)}, or all (README, Memory)",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--train_save",
        default="FSANet",
        help="run name: checkpoints/NAME and logs/NAME; a folder holding a run is refused unless --resume or --overwrite",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in checkpoints/NAME (its checkpoints and logs are deleted first)",
    )
    run.add_argument("--out_root", default=".", help="folder that holds checkpoints/ and logs/")
    run.add_argument("--save_every", type=positive_int, default=5, help="numbered checkpoint every N epochs")
    run.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("fsanet.train")
    for name in ("trainsize", "val_size"):
        round_size(args, name, log)
    run_dir = Path(args.out_root) / "checkpoints" / args.train_save
    try:
        run_training(args)
    except KeyboardInterrupt:
        saved = _last_saved(run_dir)
        log.error(
            "interrupted. %s",
            f"{saved}; continue with the same options plus --resume {run_dir}"
            if saved
            else "no epoch was finished, so nothing was saved",
        )
        return EXIT_INTERRUPTED
    except FloatingPointError as error:
        saved = _last_saved(run_dir)
        log.error("%s. %s", error, f"The last good checkpoint: {saved}" if saved else "No checkpoint was saved.")
        return EXIT_REFUSED
    except (DatasetError, CheckpointError, OutputError, ValueError) as error:
        log.error("%s", error)
        return EXIT_REFUSED
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        saved = _last_saved(run_dir)
        log.error("%s. %s", error.strerror, f"Intact: {saved}" if saved else "No checkpoint was saved before.")
        return EXIT_REFUSED
    return 0


def _last_saved(run_dir: Path) -> Optional[str]:
    """``latest.pth (epoch N)`` of the run, if it holds a readable one."""
    try:
        return f"{run_dir / 'latest.pth'} (epoch {read_checkpoint(run_dir / 'latest.pth')['epoch']})"
    except Exception:  # noqa: BLE001  absent or unreadable: nothing to point to
        return None


if __name__ == "__main__":
    sys.exit(main())
