"""Loading FSANet weights into :class:`lib.FSANet.FSANet`: the names users import
(``from lib.checkpoint import build_from_checkpoint``), over the one reader and loader of
:mod:`lib.weights` (where every check lives; see docs/weights.md for where names moved).
"""

from __future__ import annotations

import os
from typing import Any, Tuple, Union

import torch  # noqa: F401  (tests patch lib.checkpoint.torch.load to count reads)
from torch import nn

from lib.FSANet import FSANet
from lib.weights import CheckpointError, LoadReport, WeightFile, build_model, load_into, open_weights, read_checkpoint

PathLike = Union[str, os.PathLike]


def build_from_checkpoint(path: Union[PathLike, WeightFile], **overrides: Any) -> Tuple[FSANet, LoadReport]:
    """An FSANet with the architecture a checkpoint was trained with, its weights loaded,
    in eval mode (ready for inference; call ``.train()`` to train it).

    ``path``: any weights argument (a file of any layout the loader takes, a
    ``save_pretrained`` folder, ``hf:owner/name[@rev]``) or a record of :func:`open_weights`.
    Project checkpoints carry their config; for other layouts the paper's configuration
    (plus ``overrides``) is built.
    """
    return build_model(path, FSANet, **overrides)


def load_fsanet_weights(model: nn.Module, path: Union[PathLike, WeightFile]) -> LoadReport:
    """Load a whole FSANet from the authors' checkpoint, a project checkpoint or a bare state
    dict (either key naming, with or without ``module.``) into ``model``. Strict: any
    missing, unexpected or mis-shaped tensor raises one error that lists them; only the
    authors' unused tensors (``lib.weights.keymap.AUTHORS_UNUSED``) are skipped, by name."""
    return load_into(model, path)


__all__ = [
    "CheckpointError",
    "LoadReport",
    "build_from_checkpoint",
    "load_fsanet_weights",
    "open_weights",
    "read_checkpoint",
]
