"""Convert any FSANet weight file the loader takes into a ``.safetensors`` file, or into a
pretrained folder for the Hugging Face Hub (``model.safetensors``, ``config.json``, a model card).

    python -m lib.convert models/FSANet-100.pth models/fsanet.safetensors
    python -m lib.convert models/FSANet-100.pth hub/fsanet --results results/eval/results.json
    python -m lib.convert --check models/FSANet-100.pth      # every check, no output

--check runs every check the loader runs (each archive member against its CRC-32, the
layout, the config, the tensor shapes, finiteness) and prints what the file holds.

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

from lib.weights.convert import check_file, convert_to_folder, convert_to_safetensors, is_fsanet_safetensors  # noqa: F401
from lib.weights.errors import CheckpointError
from lib.weights.safetensors_file import SUFFIX
from utils.common.cli import EXIT_REFUSED, HelpFormatter
from utils.common.fileio import OutputError
from utils.common.logs import get_logger, setup_logging

log = get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.convert", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("source", help="FSANet weights (.pth, any layout the loader takes, or .safetensors)")
    p.add_argument(
        "out", nargs="?", help=f"the {SUFFIX} file to write, or a folder: model.safetensors, config.json, README.md"
    )
    p.add_argument("--check", action="store_true", help="check SOURCE (every check of the loader) and write nothing")
    p.add_argument("--results", default=None, help="eval.py's results.json: its table goes into the folder's model card")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.check == (args.out is not None):
        parser.error("give SOURCE OUT to convert, or --check SOURCE")
    setup_logging()
    if args.check:
        try:
            record = check_file(args.source)
        except (CheckpointError, OSError) as error:
            log.error("%s", error)
            return EXIT_REFUSED
        config = f", config {record.config}" if record.config else ""
        log.info(
            "%s: intact; %s, %s layout, %d tensors%s", args.source, record.kind, record.layout, len(record.tensors), config
        )
        return 0
    try:
        out = Path(args.out)
        if out.suffix and out.suffix.lower() != SUFFIX and not out.is_dir():
            raise OutputError(f"{out}: OUT is a {SUFFIX} file, or a folder (a name without a suffix) for the Hub")
        if out.suffix.lower() == SUFFIX:
            if args.results:
                raise OutputError("--results goes into a folder's model card; give a folder as OUT")
            report = convert_to_safetensors(Path(args.source), out)
        else:
            report = convert_to_folder(Path(args.source), out, Path(args.results) if args.results else None)
            out = out / "model.safetensors"
    except (CheckpointError, OutputError, OSError) as error:
        log.error("%s", error)
        return EXIT_REFUSED
    size = out.stat().st_size / 2**20
    log.info("%s → %s (%d tensors, %.1f MiB, config in the metadata)", report, args.out, report.loaded, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
