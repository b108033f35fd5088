"""The backbone table: every encoder FSANet can be built with, one entry each (no torch
import, so the scripts' ``-h`` lists them fast).

An entry (:class:`BackboneSpec`) says everything the project needs to know about a
backbone; the flags' ``choices``, config validation, the weight flags, the loader's
accepted layouts, the default ImageNet weights, the docs table (``python -m
models.registry``) and the contract tests (``tests/test_backbones.py``) are all derived
from it. Adding a backbone is one :func:`register_backbone` call (``docs/extending.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from utils.common.errors import ConfigError
from utils.common.tables import add_entry

#: the two places an encoder can sit: the RGB (spatial) encoder and the 1-channel
#: high-pass (frequency) encoder.
ROLES: Tuple[str, ...] = ("spatial", "frequency")

#: the weight flag of each role (train.py); the older per-family flags are aliases (:data:`FAMILY_FLAGS`).
ROLE_FLAGS: Dict[str, str] = {"spatial": "--spatial_weights", "frequency": "--frequency_weights"}

#: the authors' frequency-encoder stem: it sees a 1-channel image, so no ImageNet tensor fits; drawn from N(0, 1).
FREQUENCY_STEM_INIT = "N(0, 1)"


@dataclass(frozen=True)
class BackboneSpec:
    """One encoder FSANet can be built with.

    Args:
        name: the user-facing name (``--backbone`` / ``--freq_backbone`` value).
        timm_name: the timm model it builds (``timm.create_model(timm_name)``, wrapped, never copied).
        roles: where it may sit, a subset of :data:`ROLES`.
        layouts: the weight-file layouts (``lib.weights.keymap``) its ImageNet files may have.
        default_weights: the ImageNet weights training starts from when no file is given, as a
            hub id ``hf:owner/name[@revision]``; ``None``: a file is needed (or ``--random_backbones``).
        channels: its feature widths at strides 4, 8, 16, 32 (checked by the contract tests).
        family: the older weight flag's family (``pvt_v2``, ``res2net``, ``resnet``), or ``""``.
        timm_kwargs: extra ``timm.create_model`` arguments (init quirks, e.g. ResNets'
            ``zero_init_last=False``: torchvision and the authors' ResNet do not zero the last BN).
        note: one line for the docs table.
    """

    name: str
    timm_name: str
    roles: Tuple[str, ...]
    layouts: Tuple[str, ...]
    default_weights: Optional[str]
    channels: Tuple[int, int, int, int]
    family: str = ""
    timm_kwargs: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not self.timm_name:
            problems.append("a name and a timm_name")
        if not self.roles or set(self.roles) - set(ROLES):
            problems.append(f"roles from {ROLES}")
        if not self.layouts:
            problems.append("at least one weight-file layout")
        if len(self.channels) != 4 or not all(isinstance(c, int) and c > 0 for c in self.channels):
            problems.append("four positive channel widths")
        if self.default_weights is not None and not self.default_weights.startswith("hf:"):
            problems.append("default_weights as hf:owner/name[@revision] or None")
        if problems:
            raise ValueError(f"backbone {self.name!r}: the entry needs {', '.join(problems)}")


#: name -> spec, in registration order.
BACKBONES: Dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec, *, replace: bool = False) -> BackboneSpec:
    """Add ``spec`` to the table (``replace=True`` to redefine a name); returns it."""
    return add_entry(BACKBONES, spec.name, spec, "backbone", replace)


def get_backbone(name: str, role: Optional[str] = None) -> BackboneSpec:
    """The spec of ``name``; a ``ValueError`` lists the names ``role`` allows."""
    spec = BACKBONES.get(name)
    if spec is None or (role is not None and role not in spec.roles):
        what = f"{role} backbone" if role else "backbone"
        raise ConfigError(f"unknown {what} {name!r}; choose one of {sorted(backbone_names(role))}")
    return spec


def backbone_names(role: Optional[str] = None) -> Tuple[str, ...]:
    """The names allowed in ``role`` (all names for ``None``)."""
    return tuple(name for name, spec in BACKBONES.items() if role is None or role in spec.roles)


class _RoleView(Mapping):
    """``{name: timm_name}`` of one role, live over :data:`BACKBONES` (the older dict API)."""

    def __init__(self, role: str) -> None:
        self.role = role

    def __getitem__(self, name: str) -> str:
        spec = BACKBONES.get(name)
        if spec is None or self.role not in spec.roles:
            raise KeyError(name)
        return spec.timm_name

    def __iter__(self) -> Iterator[str]:
        return iter(backbone_names(self.role))

    def __len__(self) -> int:
        return len(backbone_names(self.role))

    def __repr__(self) -> str:
        return repr(dict(self))


#: user-facing name -> timm model name, for the spatial (RGB) encoder (a live view of the table).
SPATIAL_BACKBONES: Mapping[str, str] = _RoleView("spatial")
#: user-facing name -> timm model name, for the frequency (1-channel) encoder (a live view).
FREQUENCY_BACKBONES: Mapping[str, str] = _RoleView("frequency")

#: the older per-family weight flags, kept as aliases of the role flags.
FAMILY_FLAGS: Dict[str, str] = {"pvt_v2": "--pvt_weights", "res2net": "--res2net_weights", "resnet": "--resnet_weights"}

_PVT_CHANNELS = {0: (32, 64, 160, 256), 1: (64, 128, 320, 512)}
# timm zero-initialises each ResNet block's last BN; torchvision and the authors' ResNet do not.
# It matters only without ImageNet weights, where timm's choice would leave the residual
# convolutions without gradient on the first step.
_RESNET = {"zero_init_last": False}

for _i in range(6):
    register_backbone(
        BackboneSpec(
            name=f"pvt_v2_b{_i}",
            timm_name=f"pvt_v2_b{_i}",
            roles=("spatial",),
            layouts=("pvt_v2_official", "pvt_v2_timm"),
            default_weights=f"hf:timm/pvt_v2_b{_i}.in1k",
            channels=_PVT_CHANNELS.get(_i, _PVT_CHANNELS[1]),
            family="pvt_v2",
            note="the paper's spatial encoder" if _i == 2 else "",
        )
    )
register_backbone(
    BackboneSpec(
        name="res2net50",
        timm_name="res2net50d",  # the keys and outputs of the official Res2Net-50 v1b 26w×4s
        roles=("spatial", "frequency"),
        layouts=("res2net50_v1b",),
        # timm's res2net50d.in1k could not be checked offline against the official v1b file
        default_weights=None,
        channels=(256, 512, 1024, 2048),
        family="res2net",
        timm_kwargs=_RESNET,
        note="official Res2Net-50 v1b 26w×4s file needed",
    )
)
register_backbone(
    BackboneSpec(
        name="resnet50",
        timm_name="resnet50",  # torchvision's ResNet-50 keys and computation
        roles=("frequency",),
        layouts=("resnet50_torchvision",),
        default_weights="hf:timm/resnet50.tv_in1k",  # torchvision's resnet50-0676ba61.pth, the authors' file
        channels=(256, 512, 1024, 2048),
        family="resnet",
        timm_kwargs=_RESNET,
        note="the paper's frequency encoder",
    )
)
register_backbone(
    BackboneSpec(
        name="resnet18",
        timm_name="resnet18",
        roles=("frequency",),
        layouts=("resnet18_torchvision",),
        default_weights="hf:timm/resnet18.tv_in1k",
        channels=(64, 128, 256, 512),
        family="resnet",
        timm_kwargs=_RESNET,
        note="the small configuration's (lib.configs)",
    )
)


def markdown_table() -> str:
    """The docs table of :data:`BACKBONES` (README and docs/extending.md show it)."""
    lines = [
        "| name | timm model | roles | weight-file layouts | default ImageNet weights | widths | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in BACKBONES.values():
        lines.append(
            f"| `{spec.name}` | `{spec.timm_name}` | {', '.join(spec.roles)} | {', '.join(spec.layouts)} | "
            f"{'`' + spec.default_weights + '`' if spec.default_weights else 'none: give a file'} | "
            f"{'/'.join(map(str, spec.channels))} | {spec.note} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())  # noqa: T201  (the docs table)
