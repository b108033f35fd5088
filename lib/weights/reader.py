"""The one reader of weight files: :func:`open_weights` turns a weights argument into a
:class:`WeightFile`, running every check once.

    spec ─ sources.locate ─ kinds.file_kind ─┬─ safetensors_file (header, shapes, then tensors)
                                             └─ torch_file (mmap + CRC-32s, weights_only)
         ─ keymap.interpret (layout, key mapping) ─ config validation ─ fit.check_fit ─ finiteness

``spec`` is a local file (any layout :mod:`lib.weights.keymap` knows, ``.pth`` or
``.safetensors``, recognised by its bytes), a ``save_pretrained`` folder or a hub id
``hf:owner/name[@revision]``. Nothing is built or loaded into a model here
(:mod:`lib.weights.loading` does that from the record).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Type, Union

import torch
from torch import nn

from lib.configs import validate_config
from lib.weights import fit, keymap, kinds, safetensors_file, sources, torch_file
from lib.weights.errors import CheckpointError

PathLike = Union[str, os.PathLike]

#: what the shape check of a file with a config compares against
CONFIG_FIT = "the FSANet its config describes"


@dataclass
class WeightFile:
    """A weight file, read and checked: what :func:`open_weights` returns."""

    #: the local file read
    path: Path
    #: ``"pytorch"``, ``"pytorch_legacy"``, ``"safetensors"`` (by the file's bytes)
    kind: str
    #: :mod:`lib.weights.keymap`'s layout name
    layout: str
    #: the tensors, in the key names of the model they are for (see ``keymap.Interpreted``)
    tensors: Dict[str, torch.Tensor]
    #: the FSANet constructor arguments the file records (validated), or None
    config: Optional[Dict[str, Any]] = None
    #: completed epochs the file records, or None
    epoch: Optional[int] = None
    #: the authors' unused tensors, skipped by name
    skipped: List[str] = field(default_factory=list)
    #: optimizer, scheduler, scaler, rng, best, history, args, weights_only … as the file holds them
    extras: Dict[str, Any] = field(default_factory=dict)
    #: the config whose tensor shapes were checked (on the meta device), or None
    checked_config: Optional[Dict[str, Any]] = None


def open_weights(
    spec: PathLike,
    *,
    model_class: Optional[Type[nn.Module]] = None,
    hub_options: Optional[Mapping[str, Any]] = None,
) -> WeightFile:
    """Read and check the weights ``spec`` names (see the module docstring), each check once.

    ``model_class``: the FSANet class a file's config is checked against on the meta device
    (default :class:`lib.network.FSANetNetwork`; the same tensors as :class:`lib.FSANet.FSANet`).
    ``hub_options``: ``hf_hub_download``'s options for a hub id.
    """
    path = sources.locate(spec, **dict(hub_options or {}))
    kind = kinds.file_kind(path)  # by the bytes: a safetensors file named .pth is still read as one
    checked = None
    if kind == "onnx":
        raise CheckpointError(f"{path}: is {kinds.describe(kind)}, not PyTorch weights; e.g. test.py --onnx {path}")
    if kind == "safetensors" or (kind == "unknown" and safetensors_file.is_safetensors(path)):
        # an FSANet file's config and shapes are checked from its header, before any tensor is read
        check = functools.partial(fit.check_fit, path=path, what=CONFIG_FIT, model_class=model_class)
        obj = safetensors_file.read_safetensors(path, before_read=check)
        checked = obj.get("config") if isinstance(obj, dict) and "format" in obj else None
    else:
        obj = torch_file.read_torch_file(path, kind)
    found = keymap.interpret(obj, path)
    config = found.config if found.layout == "project" else None
    if config is not None and checked is None:
        try:
            config = validate_config(config, str(path))
        except ValueError as error:
            raise CheckpointError(str(error)) from None
        fit.check_fit(found.tensors, path, CONFIG_FIT, config=config, model_class=model_class)
        checked = config
    _check_finite(found.tensors, path)
    return WeightFile(path, kind, found.layout, found.tensors, config, found.epoch, found.skipped, found.extras, checked)


def _check_finite(tensors: Mapping[str, torch.Tensor], path: PathLike) -> None:
    """Refuse weights holding NaN or ±inf (they give all-black maps), naming the tensors.
    One float64 sum per tensor: it cannot overflow for finite float32 values, and any NaN
    or inf makes it non-finite."""
    bad = [
        k
        for k, v in tensors.items()
        if v.is_floating_point() and v.numel() and not torch.isfinite(v.sum(dtype=torch.float64))
    ]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} tensors hold NaN or inf values ({', '.join(bad[:6])}"
            f"{' …' if len(bad) > 6 else ''}); the training that wrote them diverged. Use an "
            "earlier checkpoint (e.g. best.pth or a numbered FSANet-N.pth)"
        )


def read_checkpoint(spec: PathLike) -> Any:
    """The object a weight file holds, as stored (``torch.load(..., weights_only=True)``, its
    archive checked; a ``.safetensors`` file as :func:`lib.weights.safetensors_file.read_safetensors`
    returns it): for tools that need the raw entries. Loading goes through :func:`open_weights`."""
    path = sources.locate(spec)
    kind = kinds.file_kind(path)
    if kind == "onnx":
        raise CheckpointError(f"{path}: is {kinds.describe(kind)}, not PyTorch weights; e.g. test.py --onnx {path}")
    if kind == "safetensors" or (kind == "unknown" and safetensors_file.is_safetensors(path)):
        return safetensors_file.read_safetensors(path)
    return torch_file.read_torch_file(path, kind)


__all__ = ["WeightFile", "open_weights", "read_checkpoint"]
