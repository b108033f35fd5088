"""Named FSANet configurations, as data (like timm's ``pvt_v2_b0`` … ``b5`` variants).

``fsanet`` is the paper's model, what the authors released. ``fsanet_small`` is a
fast stand-in for tests, the demo and CPU experiments (18 M parameters against
the paper's 109 M): PVT-v2-b0, a ResNet-18 frequency encoder, narrower CSFM widths, a
32-channel decoder and a radius for small inputs. Every key is
a constructor argument of :class:`lib.FSANet.FSANet`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

from utils.common.errors import ConfigError

#: parts whose activations ``set_grad_checkpointing`` can recompute in backward: both
#: encoders (timm's per-block checkpointing), MF, CSFM, each HCF, each SFF call.
CHECKPOINT_PARTS: Tuple[str, ...] = ("encoder", "mf", "csfm", "hcf", "sff")


def checkpoint_parts(names: Sequence[str]) -> Tuple[str, ...]:
    """The parts a ``--grad_checkpoint`` value names: none given → the encoders (the
    flag's original meaning), ``all`` → every part."""
    if not names:
        return ("encoder",)
    if "all" in names:
        return CHECKPOINT_PARTS
    unknown = sorted(set(names) - set(CHECKPOINT_PARTS))
    if unknown:
        raise ConfigError(f"unknown checkpoint parts {unknown}; choose from {', '.join(CHECKPOINT_PARTS)} or all")
    return tuple(p for p in CHECKPOINT_PARTS if p in names)


#: the input's height and width must be multiples of this (the coarsest stride).
INPUT_MULTIPLE = 32


CONFIGS: Dict[str, Dict[str, Any]] = {
    "fsanet": {
        "backbone": "pvt_v2_b2",
        "freq_backbone": "resnet50",
        "channels": (64, 128, 320, 512),
        "decoder_channels": 64,
        "radius": 100.0,
        "drop_path_rate": 0.1,
    },
    "fsanet_small": {
        "backbone": "pvt_v2_b0",
        "freq_backbone": "resnet18",
        "channels": (16, 32, 64, 128),
        "decoder_channels": 32,
        # the paper's 100 removes the whole spectrum of inputs below ~142 px
        "radius": 8.0,
        "drop_path_rate": 0.1,
    },
}


def get_config(name: str) -> Dict[str, Any]:
    """A copy of the named configuration; a ``ValueError`` lists the names."""
    if name not in CONFIGS:
        raise ConfigError(f"unknown FSANet configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    return dict(CONFIGS[name])


#: config keys that do not change the weights' shapes (training-time values only): radius is
#: only an initial value (the loaded tensor overrides it), drop_path_rate a regulariser.
NON_ARCHITECTURE_KEYS: Tuple[str, ...] = ("radius", "drop_path_rate")


def full_config(config: Optional[Dict[str, Any]] = None, **overrides: Any) -> Dict[str, Any]:
    """The paper's configuration updated with ``config`` then ``overrides``; unknown keys refused."""
    merged = {**CONFIGS["fsanet"], **(config or {}), **overrides}
    unknown = set(merged) - set(CONFIGS["fsanet"])
    if unknown:
        raise ConfigError(f"unknown FSANet config keys {sorted(unknown)}; known: {sorted(CONFIGS['fsanet'])}")
    return merged


#: the keys that decide the tensors' shapes (the flags of the same names choose them)
SHAPE_KEYS: Tuple[str, ...] = ("backbone", "freq_backbone", "channels", "decoder_channels")


def _shape_of(config: Dict[str, Any]) -> Tuple[Any, ...]:
    return tuple(tuple(config[k]) if isinstance(config.get(k), (list, tuple)) else config.get(k) for k in SHAPE_KEYS)


def config_name_of(config: Dict[str, Any]) -> Any:
    """The name of the named configuration whose architecture ``config`` has, or None."""
    return next((name for name, named in CONFIGS.items() if _shape_of(named) == _shape_of(config)), None)


def flags_for(config: Dict[str, Any]) -> str:
    """The command-line flags that build ``config``'s architecture: ``--config NAME`` for a
    named configuration, else ``--backbone … --freq_backbone … --channels … --decoder_channels …``."""
    name = config_name_of(config)
    if name is not None:
        return f"--config {name}"
    parts = []
    for key in SHAPE_KEYS:
        value = config.get(key)
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        parts.append(f"--{key} {shown}")
    return " ".join(parts)


def same_architecture(a: Dict[str, Any], b: Dict[str, Any]) -> bool:
    """Whether two configurations build tensors of the same names and shapes."""
    return _shape_of(a) == _shape_of(b)


#: the widest encoder stage and decoder any released PVT-v2 / Res2Net configuration uses, with room to spare.
MAX_CHANNELS = 2048


def validate_config(config: Any, source: str) -> Dict[str, Any]:
    """Check an FSANet config read from a file (input from strangers) before any
    model is built from it; a ``ValueError`` names ``source`` and the bad entry."""
    from models.registry import FREQUENCY_BACKBONES, SPATIAL_BACKBONES

    def bad(what: str) -> ValueError:
        return ValueError(f"{source}: its FSANet config {what}; the file is damaged or not an FSANet file")

    if not isinstance(config, dict):
        raise bad(f"is a {type(config).__name__}, not a mapping")
    known = set(CONFIGS["fsanet"])
    unknown = sorted(set(config) - known)
    if unknown:
        raise bad(f"has unknown keys {unknown} (known: {sorted(known)})")
    choices = {"backbone": SPATIAL_BACKBONES, "freq_backbone": FREQUENCY_BACKBONES}
    for key, allowed in choices.items():
        if key in config and config[key] not in allowed:
            raise bad(f"names {key} {config[key]!r} (known: {', '.join(sorted(allowed))})")
    channels = config.get("channels", CONFIGS["fsanet"]["channels"])
    if (
        not isinstance(channels, (list, tuple))
        or len(channels) != 4
        or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_CHANNELS for c in channels)
    ):
        raise bad(f"has channels {channels!r} (four integers from 1 to {MAX_CHANNELS})")
    decoder = config.get("decoder_channels", 64)
    if not isinstance(decoder, int) or isinstance(decoder, bool) or not 1 <= decoder <= MAX_CHANNELS:
        raise bad(f"has decoder_channels {decoder!r} (an integer from 1 to {MAX_CHANNELS})")
    for key, low, high in (("radius", 0.0, 1e6), ("drop_path_rate", 0.0, 1.0)):
        value = config.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= float(value) <= high:
            raise bad(f"has {key} {value!r} (a number from {low:g} to {high:g})")
    return dict(config)
