"""Reading, recognising, converting and writing FSANet weight files.

Every key mapping of the project lives in this module. Supported layouts:

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
==========================  ==================================================

A ``module.`` prefix (nn.DataParallel / DDP) is removed wherever it appears.
Files are always read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from timm.models.pvt_v2 import checkpoint_filter_fn as pvt_v2_filter_fn
from torch import nn

from utils.fileio import atomic_write, temporary_name

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

#: a key that only each layout has (after removing ``module.``).
_LAYOUT_MARKERS: List[Tuple[str, str]] = [
    ("frequency_branch.high_pass.radius", "fsanet_state_dict"),
    ("frequency.radius", "authors_state_dict"),
    ("patch_embed1.proj.weight", "pvt_v2_official"),
    ("patch_embed.proj.weight", "pvt_v2_timm"),
    ("layer1.0.convs.0.weight", "res2net50_v1b"),
    ("layer1.0.conv3.weight", "resnet50_torchvision"),
]


class CheckpointError(ValueError):
    """A weight file that cannot be used, with a message that names the file and the fix."""


@dataclass
class LoadReport:
    """What a load found and did."""

    path: str
    layout: str
    loaded: int
    skipped: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)
    epoch: Optional[int] = None
    config: Optional[Dict[str, Any]] = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.layout} layout, {self.loaded} tensors loaded"
        if self.epoch is not None:
            text += f", epoch {self.epoch}"
        if self.skipped:
            text += f", skipped {len(self.skipped)} unused ({_prefixes(self.skipped)})"
        if self.reinitialised:
            text += f", re-drawn {', '.join(self.reinitialised)}"
        return text


def _prefixes(keys: List[str]) -> str:
    return ", ".join(sorted({k.rsplit(".", 1)[0] for k in keys}))


# ----------------------------------------------------------------------------- reading


def read_checkpoint(path: PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with clear errors."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p.name for p in path.glob("*.pth"))
        hint = f"checkpoints in it: {', '.join(files[:8])}" if files else "it holds no .pth file"
        raise CheckpointError(
            f"{path}: a folder, not a checkpoint file; give a file, e.g. {path / 'best.pth'} "
            f"or {path / 'latest.pth'} ({hint})"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; check the path (pretrained files go in models/)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "global" in text.lower():  # a class or function reference: code on unpickling
            named = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global ['`]?([\w.]+)", text)
            what = f"an object of class {named.group(1)}" if named else f"Python objects ({_first_line(text)})"
            raise CheckpointError(
                f"{path}: refused to load: besides tensors the file carries {what}, "
                "which would run code when unpickled. Only weights are read "
                "(torch.load(weights_only=True)). If the file comes from a source you trust, "
                "re-save its state dict: torch.save(obj['model'], 'clean.pth')."
            ) from None
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(text)})") from None
    except Exception as err:  # garbage bytes raise anything from KeyError to RuntimeError
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint, or a truncated one ({type(err).__name__}: {_first_line(str(err))})"
        ) from None


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch 2.6")


def _first_line(text: str) -> str:
    """The informative line of a torch.load error (its boilerplate removed)."""
    for line in text.splitlines():
        line = line.replace("WeightsUnpickler error:", "").strip()
        if line and not line.startswith(_TORCH_BOILERPLATE):
            return line[:160]
    return text[:160]


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
    raise CheckpointError(
        f"{path}: a state dict of another architecture ({len(state_dict)} tensors, first keys "
        f"{list(state_dict)[:4]}); expected FSANet (authors' or this project's), PVT-v2, "
        "Res2Net-50 v1b or torchvision ResNet-50 weights"
    )


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
    optimizer_state: Mapping[str, Any], authors_model_state: Mapping[str, torch.Tensor], model: nn.Module
) -> Optional[Dict[str, Any]]:
    """The authors' AdaXW state (indexed in their parameter order) re-indexed for
    ``torch.optim`` over ``model.parameters()``; ``None`` if the file has no state.

    Their parameter order is their state dict's order without buffers, which is
    how ``model.parameters()`` enumerated them when the optimiser was built.
    """
    groups = optimizer_state.get("param_groups") if isinstance(optimizer_state, Mapping) else None
    if not groups or not optimizer_state.get("state"):
        return None
    names = [k for k in strip_module_prefix(authors_model_state) if not k.endswith(_BUFFER_SUFFIXES)]
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


# ----------------------------------------------------------------------------- strict loading


def _check_keys(module: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str, path: PathLike) -> None:
    """Raise one error listing missing keys, unexpected keys and shape mismatches."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"{path}: does not fit {what}"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            shown = "\n    ".join(items[:12])
            more = f"\n    … and {len(items) - 12} more" if len(items) > 12 else ""
            lines.append(f"  {len(items)} {title}:\n    {shown}{more}")
    lines.append("  (was the file made for another --backbone / --freq_backbone?)")
    raise CheckpointError("\n".join(lines))


def _check_finite(state_dict: Mapping[str, torch.Tensor], path: PathLike) -> None:
    """Refuse weights holding NaN or ±inf (they give all-black maps), naming the tensors."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} tensors hold NaN or inf values ({', '.join(bad[:6])}"
            f"{' …' if len(bad) > 6 else ''}); the training that wrote them diverged. Use an "
            "earlier checkpoint (e.g. best.pth or a numbered FSANet-N.pth)"
        )


def load_fsanet_weights(model: nn.Module, path: PathLike) -> LoadReport:
    """Load a whole FSANet from the authors' checkpoint, a project checkpoint or a
    bare state dict (either key naming, with or without ``module.``). Strict: any
    missing, unexpected or mis-shaped tensor raises one error that lists them; only
    the authors' unused tensors (:data:`AUTHORS_UNUSED`) are skipped, by name.
    """
    return load_fsanet_checkpoint(model, read_checkpoint(path), path)


def load_fsanet_checkpoint(model: nn.Module, obj: Any, path: PathLike = "<checkpoint>") -> LoadReport:
    """:func:`load_fsanet_weights` on a checkpoint already read with :func:`read_checkpoint`
    (read a 440 MB file once when its other entries are needed too)."""
    model = getattr(model, "module", model)  # accept DataParallel / DDP wrappers
    layout, state_dict, meta = detect_layout(obj, path)
    skipped: List[str] = []
    if layout in ("authors", "authors_state_dict"):
        state_dict, skipped = authors_to_fsanet(state_dict)
    elif layout not in ("project", "fsanet_state_dict"):
        raise CheckpointError(
            f"{path}: this is a {layout} backbone file, not an FSANet checkpoint; "
            "give it to the backbone options (--pvt_weights, --resnet_weights, --res2net_weights)"
        )
    config = meta.get("config")
    model_config = getattr(model, "config", None)
    # radius is only an initial value (the loaded tensor overrides it) and drop_path_rate a
    # training-time regulariser; the rest is architecture.
    from lib.FSANet import NON_ARCHITECTURE_KEYS

    if (
        config
        and model_config
        and any(config.get(k) != model_config.get(k) for k in config if k not in NON_ARCHITECTURE_KEYS)
    ):
        raise CheckpointError(
            f"{path}: checkpoint built with {config}, model built with {model_config}; "
            "build the model from the checkpoint's config (lib.checkpoint.build_from_checkpoint)"
        )
    if layout == "fsanet_state_dict" and config is None:
        try:
            _check_keys(model, state_dict, "this FSANet", path)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error}\n  A bare state dict does not say its architecture, so the paper's FSANet was built. "
                "For another --backbone/--channels, save it as this project's checkpoint (it records the config): "
                "lib.checkpoint.save_checkpoint(path, model), or use the checkpoints train.py writes"
            ) from None
    _check_keys(model, state_dict, "this FSANet", path)
    _check_finite(state_dict, path)
    model.load_state_dict(state_dict, strict=True)
    return LoadReport(str(path), layout, len(state_dict), skipped, epoch=meta.get("epoch"), config=config)


def build_from_checkpoint(path: PathLike, **overrides: Any) -> Tuple[nn.Module, LoadReport]:
    """An FSANet with the architecture a checkpoint was trained with, its weights loaded,
    in eval mode (ready for inference; call ``.train()`` to train it).

    Project checkpoints carry their config; for other layouts the paper's
    configuration (plus ``overrides``) is built.
    """
    from lib.FSANet import build_fsanet

    obj = read_checkpoint(path)  # read once: FSANet checkpoints are ~440 MB
    layout, _, meta = detect_layout(obj, path)
    model = build_fsanet(meta.get("config") if layout == "project" else None, **overrides)
    report = load_fsanet_checkpoint(model, obj, path)
    return model.eval(), report


# ----------------------------------------------------------------------------- ImageNet backbones

#: backbone layouts each encoder accepts (by timm model name prefix).
_BACKBONE_LAYOUTS: Dict[str, Tuple[str, ...]] = {
    "pvt_v2": ("pvt_v2_official", "pvt_v2_timm"),
    "res2net": ("res2net50_v1b",),
    "resnet": ("resnet50_torchvision",),
}


def _stem_key(encoder: nn.Module) -> str:
    """Name of the first convolution's weight in the encoder body."""
    for name, module in encoder.body.named_modules():
        if isinstance(module, nn.Conv2d):
            return name + ".weight"
    raise RuntimeError("encoder has no convolution")


def load_backbone_weights(
    model: nn.Module,
    path: PathLike,
    part: str,
    generator: Optional[torch.Generator] = None,
) -> LoadReport:
    """Initialise one encoder of an FSANet from an ImageNet backbone file.

    Args:
        model: an FSANet.
        path: ``pvt_v2_b*.pth`` (official or timm keys), the official Res2Net-50 v1b
            file, or torchvision's ResNet-50 file.
        part: ``"spatial"`` or ``"frequency"``.
        generator: RNG for the frequency encoder's stem.

    The frequency encoder takes a 1-channel image, so its first convolution cannot
    come from an RGB file: as the authors do, it is drawn from N(0, 1). Classifier
    weights (``head``/``fc``) are dropped. Everything else is strict.
    """
    model = getattr(model, "module", model)
    if part == "spatial":
        encoder = model.spatial_encoder
    elif part == "frequency":
        encoder = model.frequency_branch.encoder
    else:
        raise ValueError(f"part must be 'spatial' or 'frequency', got {part!r}")
    layout, state_dict, _ = detect_layout(read_checkpoint(path), path)
    family = next(f for f in _BACKBONE_LAYOUTS if encoder.timm_name.startswith(f))
    if layout not in _BACKBONE_LAYOUTS[family]:
        raise CheckpointError(
            f"{path}: a {layout} file, but the {part} encoder is {encoder.timm_name}; "
            f"it needs {' or '.join(_BACKBONE_LAYOUTS[family])} weights"
        )
    if family == "pvt_v2":
        state_dict = pvt_v2_to_timm(state_dict)
    else:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    reinitialised: List[str] = []
    if part == "frequency":
        stem = _stem_key(encoder)
        weight = torch.empty_like(encoder.body.state_dict()[stem])
        state_dict[stem] = weight.normal_(0.0, 1.0, generator=generator)
        reinitialised.append(f"{stem} ~ N(0, 1)")
    _check_keys(encoder.body, state_dict, f"the {part} encoder ({encoder.timm_name})", path)
    encoder.body.load_state_dict(state_dict, strict=True)
    return LoadReport(str(path), layout, len(state_dict), reinitialised=reinitialised)


# ----------------------------------------------------------------------------- writing


def atomic_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` through :func:`utils.fileio.atomic_write`: a kill or a full disk
    during the write never leaves a truncated file at ``path``."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_copy(source: PathLike, target: PathLike) -> Path:
    """Give ``target`` the content of ``source`` atomically: a hard link when the file
    system allows (no extra disk; later replacing ``source`` leaves ``target`` as
    it is), else a copy; either goes through a temporary name and ``os.replace``."""
    source, target = Path(source), Path(target)
    tmp = temporary_name(target)
    try:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return target


def make_checkpoint(
    model: nn.Module,
    epoch: int = 0,
    optimizer: Optional[torch.optim.Optimizer] = None,
    args: Optional[Mapping[str, Any]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """The project's checkpoint dict (format :data:`FORMAT_VERSION`).

    Keys: ``format``, ``format_version``, ``config`` (the FSANet constructor
    arguments), ``model`` (state dict, no ``module.``), ``epoch``, ``optimizer``
    (state dict or None), ``args`` (plain values only), plus ``extra`` (LR
    scheduler, AMP scaler, RNG states, … added by the training script).
    """
    model = getattr(model, "module", model)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": dict(getattr(model, "config", {})),
        "model": model.state_dict(),
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "args": {k: _plain(v) for k, v in (args or {}).items()},
        **extra,
    }


def _plain(value: Any) -> Any:
    """Values ``weights_only`` loading accepts: paths and other objects become strings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def save_checkpoint(path: PathLike, model: nn.Module, **kwargs: Any) -> Path:
    """Write :func:`make_checkpoint` atomically to ``path``; returns the path."""
    atomic_save(make_checkpoint(model, **kwargs), path)
    return Path(path)


__all__: List[str] = [
    "AUTHORS_KEY_MAP",
    "AUTHORS_UNUSED",
    "CheckpointError",
    "FORMAT_VERSION",
    "LoadReport",
    "atomic_copy",
    "atomic_save",
    "authors_optimizer_to_fsanet",
    "authors_to_fsanet",
    "build_from_checkpoint",
    "detect_layout",
    "load_backbone_weights",
    "load_fsanet_checkpoint",
    "load_fsanet_weights",
    "make_checkpoint",
    "pvt_v2_to_timm",
    "read_checkpoint",
    "save_checkpoint",
    "strip_module_prefix",
]
