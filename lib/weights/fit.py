"""The one shape check: do a file's tensors fit a model? One error lists every missing,
unexpected, mis-shaped and integer-for-float tensor.

The expected tensors come from a module (an encoder, a built FSANet) or from a config: then
the FSANet it describes is built on the ``meta`` device (no memory, no weights), so a file
made for another architecture is refused before the model is allocated.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Tuple, Type, Union

import torch
from torch import nn

from lib.network import FSANetNetwork, build_network
from lib.weights.errors import CheckpointError

PathLike = Union[str, os.PathLike]
#: ``{key: (shape, dtype)}``
Shapes = Dict[str, Tuple[Tuple[int, ...], torch.dtype]]

#: how many names of each kind the error shows
SHOWN = 12


def shapes_of(tensors: Mapping[str, Any]) -> Shapes:
    """``{key: (shape, dtype)}`` of a state dict (its non-tensor entries left out)."""
    return {k: (tuple(v.shape), v.dtype) for k, v in tensors.items() if isinstance(v, torch.Tensor)}


def check_fit(
    found: Union[Shapes, Mapping[str, torch.Tensor]],
    path: PathLike,
    what: str,
    *,
    config: Optional[Mapping[str, Any]] = None,
    model_class: Optional[Type[nn.Module]] = None,
    module: Optional[nn.Module] = None,
    hint: str = "",
) -> None:
    """Raise one :class:`CheckpointError` unless ``found`` (tensors, or their shapes) has exactly
    the tensors of ``module``, or of the FSANet ``config`` describes (``model_class``, default
    :class:`lib.network.FSANetNetwork`, built on the meta device)."""
    if module is None:
        with torch.device("meta"):
            module = build_network(config, model_class or FSANetNetwork)
    expected = shapes_of(module.state_dict())
    found = {k: v if isinstance(v, tuple) else (tuple(v.shape), v.dtype) for k, v in found.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched, dtypes = [], []
    for key, (shape, dtype) in expected.items():
        if key not in found:
            continue
        file_shape, file_dtype = found[key]
        if tuple(file_shape) != tuple(shape):
            mismatched.append(f"{key}: file {tuple(file_shape)} vs model {tuple(shape)}")
        elif dtype.is_floating_point and not file_dtype.is_floating_point:
            dtypes.append(f"{key}: file {file_dtype} for a floating-point parameter")
    if not (missing or unexpected or mismatched or dtypes):
        return
    lines = [f"{path}: its tensors do not fit {what}"]
    for title, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", mismatched),
        ("wrong dtype", dtypes),
    ):
        if items:
            shown = "\n    ".join(items[:SHOWN])
            more = f"\n    … and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
            lines.append(f"  {len(items)} {title}:\n    {shown}{more}")
    if hint:
        lines.append(f"  {hint}")
    raise CheckpointError("\n".join(lines))


__all__ = ["Shapes", "check_fit", "shapes_of"]
