"""Convert any FSANet weight file the loader takes into a ``.safetensors`` file, or into a
pretrained folder for the Hugging Face Hub (``model.safetensors``, ``config.json``, a model card).

    python -m lib.convert models/FSANet-100.pth models/fsanet.safetensors
    python -m lib.convert models/FSANet-100.pth hub/fsanet --results results/eval/results.json

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
from lib.keymap import FORMAT_NAME, CheckpointError
from lib.safetensors_file import SUFFIX, read_safetensors, save_safetensors
from lib.weight_files import file_kind, safetensors_header
from utils.common.cli import EXIT_REFUSED, HelpFormatter
from utils.common.fileio import OutputError, check_writable
from utils.common.logs import get_logger, setup_logging
from utils.common.ownership import check_replaceable, hold_file_lock

log = get_logger(__name__)


def is_fsanet_safetensors(path: Path) -> bool:
    """A safetensors file carrying this project's FSANet metadata (what this command writes)."""
    try:
        return file_kind(path) == "safetensors" and safetensors_header(path)[1].get("format") == FORMAT_NAME
    except (CheckpointError, ValueError, OSError):
        return False


def convert_to_safetensors(source: Path, target: Path) -> LoadReport:
    """Load ``source`` strictly into the FSANet it was made for, write its weights to
    ``target`` and read them back to check every tensor is bit-identical."""
    if Path(target).suffix.lower() != SUFFIX:
        raise OutputError(f"{target}: the output name must end in {SUFFIX}")
    with hold_file_lock(target, "OUT", "lib.convert"):  # one writer of the file
        check_replaceable(target, "OUT", is_fsanet_safetensors, "an FSANet safetensors file", inputs=[source])
        check_writable(Path(target).parent, "OUT")
        model, report = build_from_checkpoint(source)
        state_dict = model.state_dict()
        save_safetensors(target, state_dict, model.config, report.epoch, source=Path(source).name)
        written = read_safetensors(target)["model"]
    differ = [k for k, v in state_dict.items() if not torch.equal(written[k], v)]
    if differ or set(written) != set(state_dict):
        raise OSError(f"{target}: read back differs from {source} ({differ[:4]}); the disk may be faulty")
    return report


def convert_to_folder(source: Path, folder: Path, results: Optional[Path] = None) -> LoadReport:
    """``source`` as a ``save_pretrained`` folder (:mod:`lib.hub`); ``results``: eval.py's
    results.json for the model card's table. A folder holding other files is refused."""
    from lib.hub import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_results

    folder = Path(folder)
    if folder.is_file():
        raise OutputError(f"{folder}: a file; OUT is a {SUFFIX} file name or a folder for the Hub")
    foreign = (
        sorted(p.name for p in folder.iterdir() if p.name not in (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME, ".cache"))
        if folder.is_dir()
        else []
    )
    if foreign:
        raise OutputError(f"{folder}: holds other files ({', '.join(foreign[:5])}); give a new or empty folder")
    table = read_results(results)
    check_writable(folder.parent if not folder.exists() else folder, "OUT")
    with hold_file_lock(folder, "OUT", "lib.convert"):  # one writer of the folder
        model, report = build_from_checkpoint(source)
        for name in (CONFIG_NAME, CARD_NAME):  # written anew
            (folder / name).unlink(missing_ok=True)
        model.save_pretrained(folder, model_card_kwargs={"results": table})
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lib.convert", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("source", help="FSANet weights (.pth, any layout the loader takes, or .safetensors)")
    p.add_argument("out", help=f"the {SUFFIX} file to write, or a folder: model.safetensors, config.json, README.md")
    p.add_argument("--results", default=None, help="eval.py's results.json: its table goes into the folder's model card")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
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
