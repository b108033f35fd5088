"""A readable config in every run folder, and runs started from one.

At start (and again on every resume) a run writes ``config.json`` beside its checkpoints:
the effective :class:`~utils.training.config.TrainConfig` (``train``; with ``--resume`` the
checkpoint's architecture), the library versions, and one line per start (``starts``: when,
from which epoch, the command line). ``train.py --config_file FILE`` starts a run from such a
file (or from a plain JSON object of train.py options, as a committed recipe holds); the
flags given on the command line win over the file.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from utils.common.errors import ConfigError
from utils.common.fileio import atomic_write_text
from utils.training.config import TrainConfig

PathLike = Union[str, os.PathLike]

#: the file's name in ``checkpoints/<train_save>/``
CONFIG_NAME = "config.json"
#: the distributions whose versions a run's numbers depend on
LIBRARIES = ("torch", "torchvision", "timm", "numpy", "opencv-python-headless", "pysodmetrics")
#: options a recipe file does not carry over: they say what to do with one run folder
RUN_ONLY = ("resume", "overwrite")


def versions() -> Dict[str, Optional[str]]:
    """Python's and each library's version (None where one is not installed)."""
    found: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def write_run_config(checkpoint_dir: PathLike, config: TrainConfig, start_epoch: int, argv: Sequence[str] = ()) -> Path:
    """Write (or update, on resume) ``config.json`` in the run folder; returns its path."""
    path = Path(checkpoint_dir) / CONFIG_NAME
    starts: List[Dict[str, Any]] = []
    if path.is_file():
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            earlier = None  # an unreadable earlier file: this start begins the list again
        if isinstance(earlier, dict) and isinstance(earlier.get("starts"), list):
            starts = earlier["starts"]
    starts.append(
        {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "from_epoch": int(start_epoch),
            "argv": list(argv) if argv else sys.argv[1:],
        }
    )
    document = {"train": config.as_dict(), "versions": versions(), "starts": starts}
    return atomic_write_text(path, json.dumps(document, indent=2) + "\n")


def read_config_file(path: PathLike) -> Dict[str, Any]:
    """train.py options from a run's ``config.json`` (its ``train`` entry) or a plain JSON object
    of options; the run-only options (:data:`RUN_ONLY`) are left out."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"--config_file {path}: cannot be read ({error.strerror or error})") from None
    except ValueError as error:
        raise ConfigError(f"--config_file {path}: not JSON ({error})") from None
    values = data.get("train", data) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise ConfigError(f"--config_file {path}: expected a JSON object of train.py options (or a run's config.json)")
    return {k: v for k, v in values.items() if k not in RUN_ONLY}


__all__ = ["CONFIG_NAME", "read_config_file", "versions", "write_run_config"]
