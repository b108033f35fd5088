"""What the three scripts share on the command line: checked number types, the help
formatter, rounding sizes to the network's multiple, and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Callable

#: exit codes: refused input, interrupted (as shells report SIGINT).
EXIT_REFUSED, EXIT_INTERRUPTED = 2, 130


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default in ``-h``."""


def _number(kind: Callable, test: Callable[[float], bool], what: str) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number ≥ 1")
non_negative_int = _number(int, lambda v: v >= 0, "a whole number ≥ 0")
positive_float = _number(float, lambda v: v > 0, "a number > 0")
non_negative_float = _number(float, lambda v: v >= 0, "a number ≥ 0")
probability = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def round_to_multiple(value: int, flag: str, log: logging.Logger, multiple: int = 32) -> int:
    """``value`` rounded to the nearest multiple of ``multiple`` (at least one), with a warning
    that names ``--flag`` when it changes."""
    if value % multiple == 0:
        return value
    rounded = max(multiple, int(round(value / multiple)) * multiple)
    log.warning("--%s %d is not a multiple of %d (FSANet's coarsest stride): using %d", flag, value, multiple, rounded)
    return rounded


#: the help of every script's --threads flag.
THREADS_HELP = (
    "CPU threads for PyTorch (default: what PyTorch picks, one per core). Use 1 on a machine other "
    "jobs share: busy cores make PyTorch's threads wait on each other (4-13x slower measured)"
)


def usable_cores(limit: int = 8) -> int:
    """The cores this process may run on (its CPU affinity, as under SLURM or taskset), at most ``limit``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, limit))


def add_inference_speed_flags(parser: argparse.ArgumentParser) -> None:
    """test.py's and app.py's opt-in speed flags for PyTorch models (``PredictConfig.compile``/``fold_bn``)."""
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model: the first batch compiles (minutes), later ones run faster; docs/performance.md",
    )
    parser.add_argument(
        "--fold_bn",
        action="store_true",
        help="fold BatchNorm into the convolutions (inference only; maps within 1 grey level; docs/performance.md)",
    )


def set_threads(threads: "int | None") -> None:
    """``torch.set_num_threads`` (and OpenCV's) when ``threads`` is given; None leaves PyTorch's choice."""
    if threads is None:
        return
    import cv2
    import torch

    torch.set_num_threads(int(threads))
    cv2.setNumThreads(int(threads))
