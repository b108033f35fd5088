"""The encoders FSANet can be built with, by name (no torch import: the scripts' ``-h`` lists them)."""

from __future__ import annotations

from typing import Dict

#: user-facing name -> timm model name, for the spatial (RGB) encoder.
SPATIAL_BACKBONES: Dict[str, str] = {
    "pvt_v2_b0": "pvt_v2_b0",
    "pvt_v2_b1": "pvt_v2_b1",
    "pvt_v2_b2": "pvt_v2_b2",
    "pvt_v2_b3": "pvt_v2_b3",
    "pvt_v2_b4": "pvt_v2_b4",
    "pvt_v2_b5": "pvt_v2_b5",
    # timm's res2net50d has the keys and outputs of the official Res2Net-50 v1b 26w×4s.
    "res2net50": "res2net50d",
}

#: user-facing name -> timm model name, for the frequency (1-channel) encoder.
FREQUENCY_BACKBONES: Dict[str, str] = {
    "resnet50": "resnet50",  # torchvision's ResNet-50 keys and computation
    "res2net50": "res2net50d",
    "resnet18": "resnet18",  # the small configuration's (lib.configs): not the paper's
}
