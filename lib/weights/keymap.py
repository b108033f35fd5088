"""Recognising what a loaded weight file holds and mapping its keys: pure functions, no file access.

Every key mapping of the project lives in this module; :func:`interpret` is its one entry
(the reader calls it once per file). Supported layouts:

==========================  ==================================================
layout                      what it is
==========================  ==================================================
``authors``                 the authors' training checkpoint (FSANet-100.pth):
                            ``{"model", "opech", "optimizer", "loss"}``, keys
                            prefixed ``module.``, the authors' key names
``project``                 this project's checkpoint (:func:`save_checkpoint`)
``authors_state_dict``      a bare state dict with the authors' key names
``fsanet_state_dict``       a bare state dict with this project's key names
``pvt_v2_official``         official PVT-v2 ImageNet file (``pvt_v2_b2.pth``)
``pvt_v2_timm``             timm's PVT-v2 state dict
``res2net50_v1b``           official Res2Net-50 v1b 26w×4s ImageNet file
                            (its keys are timm's ``res2net50d`` keys)
``resnet50_torchvision``    torchvision's ResNet-50 (``resnet50-0676ba61.pth``)
``resnet18_torchvision``    torchvision's ResNet-18 (``resnet18-f37072fd.pth``)
``timm``                    any other state dict: a timm model's own keys (a
                            backbone entry may accept it; its classifier is
                            dropped and every other key must fit)
==========================  ==================================================

A ``module.`` prefix (nn.DataParallel / DDP) is removed wherever it appears.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
from timm.models.pvt_v2 import checkpoint_filter_fn as pvt_v2_filter_fn
from torch import nn

from lib.weights.errors import CheckpointError

PathLike = Union[str, os.PathLike]
StateDict = Dict[str, torch.Tensor]

#: written into every checkpoint this project saves.
FORMAT_NAME = "fsanet-reproduced"
FORMAT_VERSION = 1

#: tensors of the authors' checkpoint that their forward never uses: skipped by name.
AUTHORS_UNUSED = ("conv_up2.", "conv_up3.", "conv_up4.", "sff.bn_out.")

#: the authors' key prefixes -> this project's (applied in order, first match wins).
#: ``backbone.`` (PVT-v2 in the original PVT key names) goes through timm's filter.
AUTHORS_KEY_MAP: List[Tuple[str, Union[str, Callable[[re.Match], str]]]] = [
    (r"^resnet_f\.layer3_1\.", "frequency_branch.encoder.body.layer3."),
    (r"^resnet_f\.layer4_1\.", "frequency_branch.encoder.body.layer4."),
    (r"^resnet_f\.", "frequency_branch.encoder.body."),
    (r"^frequency\.radius$", "frequency_branch.high_pass.radius"),
    (r"^conv_([1-4])\.", lambda m: f"modality_fusion.levels.{int(m.group(1)) - 1}.conv."),
    (r"^se([1-4])\.", lambda m: f"modality_fusion.levels.{int(m.group(1)) - 1}.se."),
    (r"^((?:down|upsample)\d+_\d+)\.", r"scale_fusion.\1."),
    (r"^rfb([1-4])_after\.", lambda m: f"context_fusion.{int(m.group(1)) - 1}."),
    (r"^sff\.", "feature_fusion."),
    (r"^conv_up1\.", "head.conv_up."),
    (r"^conv2_1\.", "head.conv_out."),
]

#: layouts that hold a whole FSANet; the others hold one ImageNet encoder.
FSANET_LAYOUTS = ("authors", "authors_state_dict", "project", "fsanet_state_dict")

#: a key that only each layout has (after removing ``module.``).
_LAYOUT_MARKERS: List[Tuple[str, str]] = [
    ("frequency_branch.high_pass.radius", "fsanet_state_dict"),
    ("frequency.radius", "authors_state_dict"),
    ("patch_embed1.proj.weight", "pvt_v2_official"),
    ("patch_embed.proj.weight", "pvt_v2_timm"),
    ("layer1.0.convs.0.weight", "res2net50_v1b"),
    ("layer1.0.conv3.weight", "resnet50_torchvision"),
    ("layer1.0.conv2.weight", "resnet18_torchvision"),  # BasicBlock: no conv3
]


def strip_module_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Remove the ``module.`` prefix nn.DataParallel and DDP add, where present."""
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def detect_layout(obj: Any, path: PathLike = "<checkpoint>") -> Tuple[str, StateDict, Dict[str, Any]]:
    """Recognise a loaded checkpoint: ``(layout, state_dict without "module.", metadata)``.

    Raises :class:`CheckpointError` for anything that is not a known layout.
    """
    meta: Dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT_NAME:
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: project checkpoint format version {version}, this code reads "
                f"version {FORMAT_VERSION}; update the code or re-export the checkpoint"
            )
        meta = {"epoch": obj.get("epoch"), "config": obj.get("config")}
        return "project", strip_module_prefix(obj["model"]), meta
    if isinstance(obj, Mapping) and "model" in obj and "opech" in obj:
        epoch = obj["opech"]
        meta = {"epoch": int(epoch) if isinstance(epoch, (int, torch.Tensor)) else None}
        obj = obj["model"]
        wrapped = True
    else:
        wrapped = False
        for key in ("state_dict", "model"):  # common wrappers (timm, lightning, others)
            if isinstance(obj, Mapping) and key in obj and _is_state_dict(obj[key]):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        kind = type(obj).__name__
        keys = list(obj)[:8] if isinstance(obj, Mapping) else []
        raise CheckpointError(
            f"{path}: no state dict found (a {kind}{f' with keys {keys}' if keys else ''}); "
            "expected an FSANet checkpoint or an ImageNet backbone file"
        )
    state_dict = strip_module_prefix(obj)
    for marker, layout in _LAYOUT_MARKERS:
        if marker in state_dict:
            if wrapped and layout == "authors_state_dict":
                layout = "authors"
            return layout, state_dict, meta
    return "timm", state_dict, meta  # no marker: a timm model's own state dict (its fit is checked on load)


# ----------------------------------------------------------------------------- key mapping


def pvt_v2_to_timm(state_dict: StateDict) -> StateDict:
    """Original PVT-v2 key names (``patch_embed1``, ``block1.0``, ``norm1``) -> timm's.

    The ImageNet classifier (``head.*``) is dropped.
    """
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("head.")}
    return pvt_v2_filter_fn(state_dict, None)


def authors_to_fsanet(state_dict: StateDict) -> Tuple[StateDict, List[str]]:
    """The authors' key names -> this project's: ``(converted, skipped_unused_keys)``.

    Keys the map does not know are kept unchanged so that the strict load reports them.
    """
    converted: StateDict = {}
    skipped: List[str] = []
    backbone: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith(AUTHORS_UNUSED):
            skipped.append(key)
            continue
        if key.startswith("backbone."):
            backbone[key[len("backbone.") :]] = value
            continue
        for pattern, replacement in AUTHORS_KEY_MAP:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                key = new_key
                break
        converted[key] = value
    for key, value in pvt_v2_to_timm(backbone).items():
        converted["spatial_encoder.body." + key] = value
    return converted, skipped


#: state-dict entries that are buffers, not parameters, in the authors' model.
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def authors_optimizer_to_fsanet(
    optimizer_state: Mapping[str, Any], authors_model_state: Iterable[str], model: nn.Module
) -> Optional[Dict[str, Any]]:
    """The authors' AdaXW state (indexed in their parameter order) re-indexed for
    ``torch.optim`` over ``model.parameters()``; ``None`` if the file has no state.
    ``authors_model_state``: their model's state dict, or its keys in file order.

    Their parameter order is their state dict's order without buffers, which is
    how ``model.parameters()`` enumerated them when the optimiser was built.
    """
    groups = optimizer_state.get("param_groups") if isinstance(optimizer_state, Mapping) else None
    if not groups or not optimizer_state.get("state"):
        return None
    names = [k for k in strip_module_prefix(dict.fromkeys(authors_model_state)) if not k.endswith(_BUFFER_SUFFIXES)]
    indices = [i for group in groups for i in group["params"]]
    if len(indices) != len(names):
        raise CheckpointError(
            f"the authors' optimizer state lists {len(indices)} parameters but their model has "
            f"{len(names)}; load the weights only (--pre_model with a bare state dict)"
        )
    per_field: Dict[str, StateDict] = {"step": {}, "exp_avg": {}, "exp_avg_sq": {}}
    for index, name in zip(indices, names):
        entry = optimizer_state["state"].get(index)
        if entry:
            for key in per_field:
                per_field[key][name] = torch.as_tensor(entry[key])
    mapped = {key: authors_to_fsanet(values)[0] for key, values in per_field.items()}
    model = getattr(model, "module", model)
    ours = [name for name, _ in model.named_parameters()]
    unknown = sorted(set(mapped["exp_avg"]) - set(ours))
    if unknown:
        raise CheckpointError(f"optimizer state for parameters this model does not have: {unknown[:8]}")
    state = {
        i: {
            "step": int(mapped["step"][name]),
            "exp_avg": mapped["exp_avg"][name],
            "exp_avg_sq": mapped["exp_avg_sq"][name],
        }
        for i, name in enumerate(ours)
        if name in mapped["exp_avg"]
    }
    group = {k: v for k, v in groups[0].items() if k != "params"}
    return {"state": state, "param_groups": [{**group, "params": list(range(len(ours)))}]}


# ----------------------------------------------------------------------------- the one entry


@dataclass
class Interpreted:
    """What a loaded file holds, in the names the model it is for uses."""

    layout: str
    #: FSANet layouts: this project's key names; PVT-v2: timm's, ImageNet head dropped;
    #: ResNet / Res2Net: timm's, classifier (``fc.``) dropped.
    tensors: StateDict
    config: Optional[Dict[str, Any]] = None
    epoch: Optional[int] = None
    #: the authors' unused tensors (:data:`AUTHORS_UNUSED`), skipped by name
    skipped: List[str] = field(default_factory=list)
    #: everything else the file carries: optimizer, scheduler, scaler, rng, best, history,
    #: args, weights_only; for the authors' checkpoint their ``optimizer`` and
    #: ``authors_keys`` (their key order, which their optimiser state is indexed by)
    extras: Dict[str, Any] = field(default_factory=dict)


_PROJECT_ENTRIES = ("format", "format_version", "config", "model", "epoch")


def interpret(obj: Any, path: PathLike = "<checkpoint>") -> Interpreted:
    """Recognise a loaded file (:func:`detect_layout`) and map its keys for the model it fits."""
    layout, state_dict, meta = detect_layout(obj, path)
    extras: Dict[str, Any] = {}
    skipped: List[str] = []
    if layout == "project":
        extras = {k: v for k, v in obj.items() if k not in _PROJECT_ENTRIES}
    elif layout == "authors":
        extras = {"optimizer": obj.get("optimizer"), "authors_keys": list(obj["model"])}
    if layout in ("authors", "authors_state_dict"):
        state_dict, skipped = authors_to_fsanet(state_dict)
    elif layout.startswith("pvt_v2"):
        state_dict = pvt_v2_to_timm(state_dict)
    elif layout not in FSANET_LAYOUTS:  # ResNet / Res2Net: the ImageNet classifier goes
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    return Interpreted(layout, state_dict, meta.get("config"), meta.get("epoch"), skipped, extras)
