"""One logger tree for the project: every module logs under ``fsanet.<module>``, and the
commands set up the console once with :func:`setup_logging`."""

from __future__ import annotations

import logging

#: the root of every logger of the project (train.log and the console hang here)
ROOT_LOGGER = "fsanet"
LOG_FORMAT, DATE_FORMAT = "%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"


def get_logger(name: str) -> logging.Logger:
    """``fsanet.<name>``: pass ``__name__`` in a module, the command's name in a script."""
    return logging.getLogger(f"{ROOT_LOGGER}.{name}")


def setup_logging(level: int = logging.INFO, verbose: bool = False) -> None:
    """The console format of every command (a no-op when logging is already configured).

    The project's loggers speak at ``level``; other libraries (the ONNX exporter, httpx, …)
    only from WARNING on, unless ``verbose`` (a command's ``-v``)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT, datefmt=DATE_FORMAT)
    logging.getLogger(ROOT_LOGGER).setLevel(min(level, logging.INFO) if verbose else level)
