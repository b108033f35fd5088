"""Prediction maps with FSANet, post-processed exactly as the authors test.

    python test.py --pth_path models/FSANet-100.pth                      # DIS-VD, DIS-TE1..4
    python test.py --pth_path CKPT --test_path DIS5K --sets DIS-TE1      # DIS5K's own layout
    python test.py --pth_path CKPT --input photos/ --save_path results/photos

Maps go to <save_path>/<set>/<stem>.png (with --input: <save_path>/<stem>.png),
each at its mask's size (with --input: at its image's size).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from lib.checkpoint import CheckpointError, build_from_checkpoint
from utils.pairing import DIS_SETS, DatasetError
from utils.predict import Job, PredictReport, find_test_sets, list_images, predict_jobs, set_jobs
from utils.training import AMP_DTYPES, resolve_device

log = logging.getLogger("fsanet.test")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pth_path", required=True,
                   help="FSANet weights: the authors' FSANet-100.pth or a checkpoint of train.py")
    p.add_argument("--testsize", type=int, default=992, help="input side (the authors' 992; a multiple of 32)")
    p.add_argument("--test_path", default="./data/TestDataset", help="folder holding the test sets")
    p.add_argument("--sets", nargs="+", default=None,
                   help=f"sets to predict (default: the evaluation sets found, {' '.join(DIS_SETS)} and any other "
                        "set folder; DIS-TR, the training set, only when named here)")
    p.add_argument("--input", default=None, help="an image or a folder of images to predict instead of test sets")
    p.add_argument("--save_path", default="./results/FSANet", help="where the maps go")
    p.add_argument("--batch_size", type=int, default=1, help="images per forward pass")
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--amp", choices=sorted(AMP_DTYPES), default="none", help="mixed precision (default none)")
    p.add_argument("--channels_last", action="store_true",
                   help="NHWC memory format (faster on CPU, maps within 1 grey level; README, Performance)")
    p.add_argument("--no_progress", action="store_true")
    return p


def run_test(args: argparse.Namespace) -> PredictReport:
    """Load the model once, predict every set (or --input), return what was written."""
    if args.testsize % 32:
        raise ValueError(f"--testsize must be a multiple of 32, got {args.testsize}")
    device = resolve_device(args.device)
    report = PredictReport()
    if args.input:
        work = [("input", [Job(p, Path(args.save_path) / f"{p.stem}.png") for p in list_images(args.input, report)])]
    else:
        work = [(name, set_jobs(images, masks, Path(args.save_path) / name, report))
                for name, images, masks in find_test_sets(args.test_path, args.sets)]
    model, loaded = build_from_checkpoint(args.pth_path)
    log.info("%s", loaded)
    model.to(device).eval()
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    for name, jobs in work:
        predict_jobs(model, jobs, args.testsize, args.batch_size, device, AMP_DTYPES[args.amp], args.workers,
                     progress=not args.no_progress, desc=name, report=report, channels_last=args.channels_last)
        log.info("%s: %d maps in %s", name, len(jobs), Path(args.save_path) / name if name != "input" else args.save_path)
    if report.skipped:
        log.warning("not images, skipped: %s", ", ".join(report.skipped))
    if report.failed:
        log.warning("%d images could not be read: %s", len(report.failed), "; ".join(report.failed))
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        report = run_test(args)
    except (DatasetError, CheckpointError, ValueError) as error:
        log.error("%s", error)
        return 2
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
