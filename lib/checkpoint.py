"""Reading and loading FSANet weight files (the layouts and key mapping: ``lib.keymap``;
writing: ``lib.saving``).

Files are always read with ``torch.load(..., weights_only=True)``; loading is strict
(every missing, unexpected or mis-shaped tensor is listed in one error) and refuses
non-finite weights.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from lib.hub import resolve_weights
from lib.keymap import (
    CheckpointError,
    authors_to_fsanet,
    detect_layout,
)
from lib.safetensors_file import is_safetensors, read_safetensors
from lib.weight_files import check_archive, check_shapes, describe, file_kind, safetensors_plan

PathLike = Union[str, os.PathLike]


@dataclass
class LoadReport:
    """What a load found and did."""

    path: str
    layout: str
    loaded: int
    skipped: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)
    epoch: Optional[int] = None

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


def meta_state_dict(config: Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """The state dict of the FSANet ``config`` describes, on the meta device (no memory)."""
    from lib.FSANet import build_fsanet

    with torch.device("meta"):
        return build_fsanet(dict(config)).state_dict()


def check_safetensors(path: PathLike) -> None:
    """Validate an FSANet safetensors file's config and tensor shapes from its header alone."""
    plan = safetensors_plan(path)
    if plan is not None:
        check_shapes(meta_state_dict(plan[0]), plan[1], path)


def read_checkpoint(path: PathLike) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` with clear errors;
    ``.safetensors`` files through :func:`lib.safetensors_file.read_safetensors`; a
    ``save_pretrained`` folder or a hub id ``hf:owner/name[@rev]`` through :func:`lib.hub.resolve_weights`."""
    path = resolve_weights(path)
    if path.is_dir():
        files = sorted(p.name for p in [*path.glob("*.pth"), *path.glob("*.safetensors")])
        hint = f"checkpoints in it: {', '.join(files[:8])}" if files else "it holds no .pth file"
        raise CheckpointError(
            f"{path}: a folder, not a checkpoint file; give a file, e.g. {path / 'best.pth'} "
            f"or {path / 'latest.pth'} ({hint})"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; check the path (pretrained files go in models/)")
    kind = file_kind(path)  # by the bytes: a safetensors file named .pth is still read as one
    if kind == "safetensors" or (kind == "unknown" and is_safetensors(path)):
        check_safetensors(path)
        return read_safetensors(path)
    if kind == "onnx":
        raise CheckpointError(f"{path}: is {describe(kind)}, not PyTorch weights; e.g. test.py --onnx {path}")
    if kind == "pytorch":
        check_archive(path)  # torch.load does not check the CRCs: a damaged tensor would load
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
    ] + [
        f"{k}: file {state_dict[k].dtype} for a floating-point tensor"
        for k in expected
        if k in state_dict
        and expected[k].is_floating_point()
        and not state_dict[k].is_floating_point()
        and state_dict[k].shape == expected[k].shape
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
        from lib.configs import flags_for

        raise CheckpointError(
            f"{path}: checkpoint built with {config}, model built with {model_config}; on the command line "
            f"add {flags_for(config)}; in Python build the model from the checkpoint's config "
            "(lib.checkpoint.build_from_checkpoint)"
        )
    if layout == "fsanet_state_dict" and config is None:
        try:
            _check_keys(model, state_dict, "this FSANet", path)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error}\n  A bare state dict does not say its architecture, so the paper's FSANet was built. "
                "For another --backbone/--channels, save it as this project's checkpoint (it records the config): "
                "lib.saving.save_checkpoint(path, model), or use the checkpoints train.py writes"
            ) from None
    _check_keys(model, state_dict, "this FSANet", path)
    _check_finite(state_dict, path)
    model.load_state_dict(state_dict, strict=True)
    return LoadReport(str(path), layout, len(state_dict), skipped, epoch=meta.get("epoch"))


def build_from_checkpoint(path: PathLike, **overrides: Any) -> Tuple[nn.Module, LoadReport]:
    """An FSANet with the architecture a checkpoint was trained with, its weights loaded,
    in eval mode (ready for inference; call ``.train()`` to train it).

    Project checkpoints carry their config; for other layouts the paper's
    configuration (plus ``overrides``) is built.
    """
    from lib.configs import validate_config
    from lib.FSANet import build_fsanet

    obj = read_checkpoint(path)  # read once: FSANet checkpoints are ~440 MB
    layout, state_dict, meta = detect_layout(obj, path)
    config = meta.get("config") if layout == "project" else None
    if config is not None:
        try:
            config = validate_config(config, str(path))
        except ValueError as error:
            raise CheckpointError(str(error)) from None
        shapes = {k: (tuple(v.shape), v.dtype) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
        check_shapes(meta_state_dict({**config, **overrides}), shapes, path)  # on the meta device, before any allocation
    model = build_fsanet(config, **overrides)
    report = load_fsanet_checkpoint(model, obj, path)
    return model.eval(), report


__all__: List[str] = [
    "LoadReport",
    "build_from_checkpoint",
    "load_fsanet_checkpoint",
    "load_fsanet_weights",
    "read_checkpoint",
]
