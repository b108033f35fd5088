"""The one strict loader: a :class:`~lib.weights.reader.WeightFile` into a whole FSANet
(:func:`build_model`, :func:`load_into`) or into one of its encoders (:func:`load_backbone`).

Strict means every missing, unexpected or mis-shaped tensor is listed in one error
(:func:`lib.weights.fit.check_fit`); only the authors' unused tensors are skipped, by name.
Each function takes a weights argument (read here through :func:`open_weights`) or a
record already read, so a caller that opened the file early does not read it again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple, Type, TypeVar, Union

import torch
from torch import nn

from lib.configs import NON_ARCHITECTURE_KEYS, flags_for, full_config, same_architecture
from lib.network import FSANetNetwork
from lib.weights.errors import CheckpointError
from lib.weights.fit import check_fit
from lib.weights.keymap import FSANET_LAYOUTS
from lib.weights.reader import WeightFile, open_weights
from models.registry import BACKBONES, FAMILY_FLAGS, ROLE_FLAGS, get_backbone

PathLike = Union[str, os.PathLike]
Source = Union[PathLike, WeightFile]
Model = TypeVar("Model", bound=nn.Module)

#: said when a file does not fit the FSANet it is loaded into
ARCHITECTURE_HINT = "(was the file made for another --backbone / --freq_backbone?)"
BARE_STATE_DICT_HINT = (
    "A bare state dict does not say its architecture, so the paper's FSANet was built. "
    "For another --backbone/--channels, save it as this project's checkpoint (it records the config): "
    "lib.weights.save_checkpoint(path, model), or use the checkpoints train.py writes"
)


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


def _record(source: Source, model_class: Optional[Type[nn.Module]] = None) -> WeightFile:
    return source if isinstance(source, WeightFile) else open_weights(source, model_class=model_class)


def _require_fsanet(record: WeightFile) -> None:
    if record.layout == "timm":
        raise CheckpointError(
            f"{record.path}: a state dict of another architecture ({len(record.tensors)} tensors, first keys "
            f"{list(record.tensors)[:4]}); expected FSANet weights (the authors' or this project's)"
        )
    if record.layout not in FSANET_LAYOUTS:
        specs = [spec for spec in BACKBONES.values() if record.layout in spec.layouts]
        flags = sorted({ROLE_FLAGS[role] for spec in specs for role in spec.roles})
        aliases = sorted({FAMILY_FLAGS[spec.family] for spec in specs if spec.family in FAMILY_FLAGS})
        raise CheckpointError(
            f"{record.path}: this is a {record.layout} backbone file, not an FSANet checkpoint; give it to "
            f"train.py's {' or '.join(flags) or 'backbone weight flags'}"
            + (f" (alias {', '.join(aliases)})" if aliases else "")
        )


def _report(record: WeightFile) -> LoadReport:
    return LoadReport(str(record.path), record.layout, len(record.tensors), list(record.skipped), epoch=record.epoch)


def build_model(source: Source, model_class: Type[Model] = FSANetNetwork, **overrides: Any) -> Tuple[Model, LoadReport]:
    """A ``model_class`` with the architecture the file records (the paper's configuration plus
    ``overrides`` for files without one), its weights loaded strictly, in eval mode.
    The shapes are checked on the meta device before the model is allocated."""
    record = _record(source, model_class)
    _require_fsanet(record)
    config = full_config(record.config if record.layout == "project" else None, **overrides)
    if record.checked_config is None or not same_architecture(record.checked_config, config):
        hint = BARE_STATE_DICT_HINT if record.layout == "fsanet_state_dict" else ARCHITECTURE_HINT
        what = "the FSANet its config describes" if record.config else "this FSANet"
        check_fit(record.tensors, record.path, what, config=config, model_class=model_class, hint=hint)
    model = model_class(**config)
    model.load_state_dict(record.tensors, strict=True)
    return model.eval(), _report(record)


def load_into(model: nn.Module, source: Source) -> LoadReport:
    """Load a whole FSANet's weights into ``model`` (DataParallel / DDP wrappers accepted):
    the authors' checkpoint, a project checkpoint or a bare state dict, either key naming."""
    model = getattr(model, "module", model)
    record = _record(source, type(model))
    _require_fsanet(record)
    model_config = getattr(model, "config", None)
    # radius is only an initial value (the loaded tensor overrides it) and drop_path_rate a
    # training-time regulariser; the rest is architecture.
    if (
        record.config
        and model_config
        and any(record.config.get(k) != model_config.get(k) for k in record.config if k not in NON_ARCHITECTURE_KEYS)
    ):
        raise CheckpointError(
            f"{record.path}: checkpoint built with {record.config}, model built with {model_config}; on the "
            f"command line add {flags_for(record.config)}; in Python build the model from the checkpoint's "
            "config (lib.checkpoint.build_from_checkpoint)"
        )
    checked = record.checked_config
    if checked is None or not model_config or not same_architecture(checked, model_config):
        hint = BARE_STATE_DICT_HINT if record.layout == "fsanet_state_dict" else ARCHITECTURE_HINT
        check_fit(record.tensors, record.path, "this FSANet", module=model, hint=hint)
    model.load_state_dict(record.tensors, strict=True)
    return _report(record)


def _stem_key(encoder: nn.Module) -> str:
    """Name of the first convolution's weight in the encoder body."""
    for name, module in encoder.body.named_modules():
        if isinstance(module, nn.Conv2d):
            return name + ".weight"
    raise RuntimeError("encoder has no convolution")


def load_backbone(model: nn.Module, source: Source, part: str, generator: Optional[torch.Generator] = None) -> LoadReport:
    """Initialise one encoder of an FSANet (``part``: ``"spatial"`` or ``"frequency"``) from
    an ImageNet file of a layout its backbone accepts (the backbone table, ``models.registry``).

    The frequency encoder takes a 1-channel image, so its first convolution cannot come
    from an RGB file: as the authors do, it is drawn from N(0, 1) with ``generator``.
    Classifier weights are dropped. Everything else is strict.
    """
    model = getattr(model, "module", model)
    if part == "spatial":
        encoder = model.spatial_encoder
    elif part == "frequency":
        encoder = model.frequency_branch.encoder
    else:
        raise ValueError(f"part must be 'spatial' or 'frequency', got {part!r}")
    record = _record(source)
    accepted = get_backbone(encoder.backbone).layouts if encoder.backbone else ()
    if record.layout not in accepted:
        found = (
            f"a state dict of no known layout ({len(record.tensors)} tensors, first keys {list(record.tensors)[:4]})"
            if record.layout == "timm"
            else f"a {record.layout} file"
        )
        raise CheckpointError(
            f"{record.path}: {found}, but the {part} encoder is {encoder.timm_name}; "
            f"it needs {' or '.join(accepted) or 'no'} weights"
        )
    state_dict = dict(record.tensors)
    if record.layout == "timm":  # a timm model's own keys: its ImageNet classifier goes (the body has none)
        head = (getattr(encoder.body, "pretrained_cfg", None) or {}).get("classifier") or "fc"
        heads = head if isinstance(head, (list, tuple)) else [head]
        state_dict = {k: v for k, v in state_dict.items() if not any(k.startswith(h + ".") for h in heads)}
    reinitialised: List[str] = []
    if part == "frequency":
        stem = _stem_key(encoder)
        weight = torch.empty_like(encoder.body.state_dict()[stem])
        state_dict[stem] = weight.normal_(0.0, 1.0, generator=generator)
        reinitialised.append(f"{stem} ~ N(0, 1)")
    check_fit(state_dict, record.path, f"the {part} encoder ({encoder.timm_name})", module=encoder.body)
    encoder.body.load_state_dict(state_dict, strict=True)
    return LoadReport(str(record.path), record.layout, len(state_dict), reinitialised=reinitialised)


__all__ = ["LoadReport", "build_model", "load_backbone", "load_into"]
