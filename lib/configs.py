"""Named FSANet configurations, as data (like timm's ``pvt_v2_b0`` … ``b5`` variants).

``fsanet`` is the paper's model, what the authors released. ``fsanet_small`` is a
fast stand-in for tests, the demo and CPU experiments (18 M parameters against
the paper's 109 M): PVT-v2-b0, a ResNet-18 frequency encoder, narrower CSFM widths, a
32-channel decoder and a radius for small inputs. Every key is
a constructor argument of :class:`lib.FSANet.FSANet`.
"""

from __future__ import annotations

from typing import Any, Dict

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
        raise ValueError(f"unknown FSANet configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    return dict(CONFIGS[name])
