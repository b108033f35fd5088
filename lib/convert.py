"""Convert any FSANet weight file the loader takes into a ``.safetensors`` file to publish.

    python -m lib.convert models/FSANet-100.pth models/fsanet.safetensors

The input may be the authors' FSANet-100.pth, a train.py checkpoint or a bare state
dict. The output holds the model weights only (no optimiser), in this project's key
names, with the architecture config in its metadata; ``--pth_path`` of test.py,
eval-free tools and ``app.py`` read it directly, as does ``train.py --pre_model``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from lib.checkpoint import LoadReport, build_from_checkpoint
from lib.keymap import CheckpointError
from lib.safetensors_file import SUFFIX, read_safetensors, save_safetensors
from utils.common.cli import EXIT_REFUSED, HelpFormatter
from utils.common.fileio import OutputError, check_writable
from utils.common.logs import get_logger, setup_logging

log = get_logger(__name__)


def convert_to_safetensors(source: Path, target: Path) -> LoadReport:
    """Load ``source`` strictly into the FSANet it was made for, write its weights to
    ``target`` and read them back to check every tensor is bit-identical."""
    if Path(target).suffix.lower() != SUFFIX:
        raise OutputError(f"{target}: the output name must end in {SUFFIX}")
    check_writable(Path(target).parent, "OUT")
    model, report = build_from_checkpoint(source)
    state_dict = model.state_dict()
    save_safetensors(target, state_dict, model.config, report.epoch, source=Path(source).name)
    written = read_safetensors(target)["model"]
    differ = [k for k, v in state_dict.items() if not torch.equal(written[k], v)]
    if differ or set(written) != set(state_dict):
        raise OSError(f"{target}: read back differs from {source} ({differ[:4]}); the disk may be faulty")
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.convert", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("source", help="FSANet weights (.pth, any layout the loader takes, or .safetensors)")
    p.add_argument("out", help=f"the {SUFFIX} file to write")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        report = convert_to_safetensors(Path(args.source), Path(args.out))
    except (CheckpointError, OutputError, OSError) as error:
        log.error("%s", error)
        return EXIT_REFUSED
    size = Path(args.out).stat().st_size / 2**20
    log.info("%s → %s (%d tensors, %.1f MiB, config in the metadata)", report, args.out, report.loaded, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
