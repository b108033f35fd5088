"""Converting any FSANet weight file the loader takes into a ``.safetensors`` file or a
``save_pretrained`` folder, and checking a file without loading a model
(``python -m lib.convert``, its command line)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch

from lib.FSANet import FSANet
from lib.weights.errors import CheckpointError
from lib.weights.keymap import FORMAT_NAME
from lib.weights.kinds import file_kind
from lib.weights.loading import LoadReport, build_model
from lib.weights.model_card import read_results
from lib.weights.reader import WeightFile, open_weights
from lib.weights.safetensors_file import SUFFIX, read_safetensors, safetensors_header, save_safetensors
from lib.weights.sources import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from utils.common.fileio import OutputError, check_writable
from utils.common.ownership import check_replaceable, hold_file_lock

PathLike = Union[str, os.PathLike]


def check_file(source: PathLike) -> WeightFile:
    """Every check of the reader on ``source`` (CRC-32s, kind, layout, config, shapes,
    finiteness), without building a model: ``python -m lib.convert --check FILE``."""
    return open_weights(source)


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
        model, report = build_model(source, FSANet)
        state_dict = model.state_dict()
        save_safetensors(target, state_dict, model.config, report.epoch, source=Path(source).name)
        written = read_safetensors(target)["model"]
    differ = [k for k, v in state_dict.items() if not torch.equal(written[k], v)]
    if differ or set(written) != set(state_dict):
        raise OSError(f"{target}: read back differs from {source} ({differ[:4]}); the disk may be faulty")
    return report


def convert_to_folder(source: Path, folder: Path, results: Optional[Path] = None) -> LoadReport:
    """``source`` as a ``save_pretrained`` folder (:mod:`lib.weights.writing`); ``results``: eval.py's
    results.json for the model card's table. A folder holding other files is refused."""

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
        model, report = build_model(source, FSANet)
        for name in (CONFIG_NAME, CARD_NAME):  # written anew
            (folder / name).unlink(missing_ok=True)
        model.save_pretrained(folder, model_card_kwargs={"results": table})
    return report


__all__ = ["check_file", "convert_to_folder", "convert_to_safetensors", "is_fsanet_safetensors"]
