"""Encoders for FSANet, built with timm and wrapped (never copied).

FSANet needs four feature maps at strides 4, 8, 16 and 32 from two encoders:
the *spatial encoder* (RGB, PVT-v2-b2 in the paper) and the *frequency encoder*
(the 1-channel high-pass image, ResNet-50 in the paper). Both are plain timm
models held as ``.body``; features come from timm's ``forward_intermediates``,
so the state-dict keys are exactly timm's own (``body.stages.0.blocks.0...`` for
PVT-v2, ``body.layer1.0.conv1...`` for ResNet/Res2Net) and stay stable across
timm's ``features_only`` renames.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import timm
import torch
from timm.models.pvt_v2 import Attention as PvtAttention
from timm.models.pvt_v2 import MlpWithDepthwiseConv
from torch import nn

from models.registry import (  # noqa: F401  (re-exported)
    BACKBONES,
    FREQUENCY_BACKBONES,
    SPATIAL_BACKBONES,
    BackboneSpec,
    get_backbone,
)

#: the reductions FSANet takes features at.
FEATURE_REDUCTIONS = (4, 8, 16, 32)


def token_grid_convs(model: nn.Module) -> List[nn.Conv2d]:
    """The convs of a PVT-v2 that run on a B×N×C token tensor viewed as B×C×H×W.

    That view (the MLP's depthwise conv, the attention's spatial-reduction conv) has
    channels-last strides. With the usual NCHW weights PyTorch first copies the input
    to NCHW; with channels-last weights it convolves the view as it is, and the
    result flattens back to tokens without another copy.
    """
    convs = []
    for module in model.modules():
        if isinstance(module, MlpWithDepthwiseConv):
            convs.append(module.dwconv)
        elif isinstance(module, PvtAttention) and isinstance(getattr(module, "sr", None), nn.Conv2d):
            convs.append(module.sr)
    return convs


class ConvBNProjection(nn.Sequential):
    """1×1 conv + BatchNorm that adapts an encoder width to the width FSANet expects."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class TimmEncoder(nn.Module):
    """A timm classification model used as a 4-level feature pyramid (strides 4–32).

    Args:
        timm_name: timm model name (e.g. ``pvt_v2_b2``, ``resnet50``, ``res2net50d``).
        in_chans: input channels (3 for RGB, 1 for the high-pass image).
        out_channels: widths to return; where they differ from the model's own
            widths a :class:`ConvBNProjection` adapts them. ``None`` keeps the model's.
        drop_path_rate: stochastic depth of the timm model (active in training only).
        timm_kwargs: further ``timm.create_model`` arguments (the table entry's init quirks).
        backbone: the table entry it was built from (:mod:`models.registry`), or None.

    ``forward(x: B×in_chans×H×W) -> [B×c_i×H/r_i×W/r_i for r_i in 4, 8, 16, 32]``.
    """

    def __init__(
        self,
        timm_name: str,
        in_chans: int = 3,
        out_channels: Sequence[int] | None = None,
        drop_path_rate: float = 0.0,
        timm_kwargs: Optional[Mapping[str, Any]] = None,
        backbone: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.timm_name = timm_name
        self.backbone = backbone
        # pretrained=False: never touches the network; weights come from local files
        # through lib.weights. num_classes=0 drops the classifier.
        extra = dict(timm_kwargs or {})
        self.body = timm.create_model(
            timm_name, pretrained=False, num_classes=0, in_chans=in_chans, drop_path_rate=drop_path_rate, **extra
        )
        # Same values, another memory layout: saves two copies per PVT block (see
        # token_grid_convs). load_state_dict and .to(device) keep the layout.
        for conv in token_grid_convs(self.body):
            conv.to(memory_format=torch.channels_last)
        info = self.body.feature_info
        reductions = [f["reduction"] for f in info]
        self.indices = [reductions.index(r) for r in FEATURE_REDUCTIONS]
        self.body_channels = [info[i]["num_chs"] for i in self.indices]
        self.out_channels = list(out_channels) if out_channels else list(self.body_channels)
        if len(self.out_channels) != 4:
            raise ValueError(f"out_channels needs 4 widths, got {self.out_channels}")
        if self.out_channels != self.body_channels:
            self.proj = nn.ModuleList(
                ConvBNProjection(c_in, c_out) for c_in, c_out in zip(self.body_channels, self.out_channels)
            )
        else:
            self.proj = None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the encoder's activations in backward (timm's own mechanism)."""
        self.body.set_grad_checkpointing(enable)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = self.body.forward_intermediates(x, indices=self.indices, intermediates_only=True)
        if self.proj is not None:
            feats = [p(f) for p, f in zip(self.proj, feats)]
        return feats


def build_encoder(
    name: str, role: str, out_channels: Optional[Sequence[int]] = None, drop_path_rate: float = 0.0
) -> TimmEncoder:
    """The encoder of the table entry ``name`` in ``role`` (``"spatial"``: 3 input channels,
    ``"frequency"``: 1), returning ``out_channels`` (None: its own widths)."""
    spec = get_backbone(name, role)
    in_chans = 3 if role == "spatial" else 1
    return TimmEncoder(spec.timm_name, in_chans, out_channels, drop_path_rate, spec.timm_kwargs, spec.name)


def build_spatial_encoder(name: str, out_channels: Sequence[int], drop_path_rate: float = 0.0) -> TimmEncoder:
    """The RGB encoder ``name`` (a spatial entry of :data:`BACKBONES`) returning ``out_channels``."""
    return build_encoder(name, "spatial", out_channels, drop_path_rate)


def build_frequency_encoder(name: str) -> TimmEncoder:
    """The 1-channel frequency encoder ``name`` (a frequency entry of :data:`BACKBONES`)."""
    return build_encoder(name, "frequency")
