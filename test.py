"""Prediction maps with FSANet, post-processed exactly as the authors test.

    python test.py --pth_path models/FSANet-100.pth                      # DIS-VD, DIS-TE1..4
    python test.py --pth_path CKPT --test_path DIS5K --sets DIS-TE1      # DIS5K's own layout
    python test.py --pth_path CKPT --input photos/ --save_path results/photos
    python test.py --onnx fsanet.onnx --testsize 992                     # onnxruntime, same maps

Maps go to <save_path>/<set>/<stem>.png (with --input: <save_path>/<stem>.png),
each at its mask's size (with --input: at its image's size).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from utils.common.amp import AMP_CHOICES
from utils.common.cli import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    THREADS_HELP,
    HelpFormatter,
    add_inference_speed_flags,
    non_negative_int,
    positive_int,
)
from utils.common.logs import get_logger, setup_logging
from utils.data.sets import DIS_SETS
from utils.inference.config import DEFAULT_TESTSIZE, PredictConfig

# torch and the model code are imported after the flags are parsed: -h needs neither

log = get_logger("test")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--pth_path",
        help="FSANet weights: the authors' FSANet-100.pth, a checkpoint of train.py or a .safetensors file",
    )
    model.add_argument(
        "--onnx",
        default=None,
        help="an exported model (python -m utils.deploy.export) to run with onnxruntime; needs pip install -e .[export]",
    )
    p.add_argument(
        "--testsize",
        type=positive_int,
        default=DEFAULT_TESTSIZE,
        help=f"input side (the authors' {DEFAULT_TESTSIZE}; rounded to a multiple of 32)",
    )
    p.add_argument("--test_path", default="./data/TestDataset", help="folder holding the test sets")
    p.add_argument(
        "--sets",
        nargs="+",
        default=None,
        help=f"sets to predict (default: the evaluation sets found, {' '.join(DIS_SETS)} and any other "
        "set folder; DIS-TR, the training set, only when named here)",
    )
    p.add_argument("--input", default=None, help="an image or a folder of images to predict instead of test sets")
    p.add_argument("--save_path", default="./results/FSANet", help="where the maps go")
    p.add_argument(
        "--cutout",
        action="store_true",
        help="also write <stem>_cutout.png beside each map: the image at its own size as RGBA, the map as its alpha",
    )
    p.add_argument(
        "--keep_aspect",
        action="store_true",
        help="resize the long side to --testsize and the short side to the nearest multiple of 32, keeping the "
        "image's aspect (default: the authors' square testsize×testsize)",
    )
    p.add_argument("--batch_size", type=positive_int, default=1, help="images per forward pass")
    p.add_argument("--workers", type=non_negative_int, default=2, help="decoding processes")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--amp", choices=sorted(AMP_CHOICES), default="none", help="mixed precision")
    p.add_argument(
        "--channels_last",
        action="store_true",
        help="NHWC memory format (faster on CPU, maps within 1 grey level; docs/performance.md)",
    )
    add_inference_speed_flags(p)
    p.add_argument("--threads", type=positive_int, default=None, help=THREADS_HELP)
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def run_test(args: argparse.Namespace):
    """test.py's flags → :func:`utils.inference.predict.run_prediction` (its ``PredictReport``)."""
    from utils.inference.predict import run_prediction

    return run_prediction(
        PredictConfig.from_args(args),
        args.save_path,
        args.test_path,
        args.sets,
        args.input,
        progress=not args.no_progress,
        cutout=args.cutout,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from utils.common.errors import FSANetError
    from utils.common.extras import MissingExtraError
    from utils.common.signals import stop_behind, stop_handlers
    from utils.data.dataset import loader_failure

    try:
        with stop_handlers():  # SIGTERM (SLURM, timeout) ends like Ctrl-C
            report = run_test(args)
    except KeyboardInterrupt:
        log.error("interrupted; the maps written so far are complete (each is written whole or not at all)")
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001  known failures end in one line; others keep their traceback
        if stop_behind(error) is not None:  # the process group signalled: a worker died of the stop signal first
            log.error("interrupted; the maps written so far are complete (each is written whole or not at all)")
            return EXIT_INTERRUPTED
        from_worker = loader_failure(error)
        if from_worker is not None:  # a decoding worker killed, an image deleted mid-run
            log.error("%s; the maps written so far are complete", from_worker)
            return EXIT_REFUSED
        if isinstance(error, (FSANetError, MissingExtraError)):  # meant for the user; anything else: traceback
            log.error("%s", error)
            return EXIT_REFUSED
        if isinstance(error, OSError):  # a full disk, a folder that became unwritable
            log.error("%s; the maps written so far are complete (each is written whole or not at all)", error)
            return EXIT_REFUSED
        raise
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
