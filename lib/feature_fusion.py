"""SFF: selective feature fusion of two adjacent decoder levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _bottleneck(channels: int, reduction: int) -> list:
    """1×1 conv (bias) c→c/r, BN, ReLU, 1×1 conv (bias) c/r→c, BN."""
    hidden = channels // reduction
    return [
        nn.Conv2d(channels, hidden, 1),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, channels, 1),
        nn.BatchNorm2d(channels),
    ]


class SelectionWeights(nn.Module):
    """The SEA weights of SFF: ``sigmoid(channel(x) · (local(x) + global(x)))``.

    ``local`` works per pixel, ``global`` on the pooled vector, and ``channel`` is a
    third bottleneck followed by a sigmoid. ``forward(x: B×c×h×w) -> B×c×h×w`` in (0, 1).
    """

    def __init__(self, channels: int = 64, reduction: int = 4) -> None:
        super().__init__()
        self.local_att = nn.Sequential(*_bottleneck(channels, reduction))
        self.global_att = nn.Sequential(nn.AdaptiveAvgPool2d(1), *_bottleneck(channels, reduction))
        self.channel_att = nn.Sequential(*_bottleneck(channels, reduction), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.channel_att(x) * (self.local_att(x) + self.global_att(x)))


class SelectiveFeatureFusion(nn.Module):
    """SFF: gated fusion of a fine level x and the coarser level y (upsampled ×2),
    then a per-pixel, per-channel choice ``x·w + y·(1−w)``.

    FSANet uses ONE instance for all three decoder fusions (shared weights). The
    authors' checkpoint also holds a ``bn_out`` that the forward never applies; it
    is not built here (the loader skips it by name).

    ``forward(x: B×c×2h×2w, y: B×c×h×w) -> B×c×2h×2w``.
    """

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.sea = SelectionWeights(channels)
        self.conv_xy = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, bias=False)
        self.bn_xy = nn.BatchNorm2d(2 * channels)
        self.conv_gate = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, bias=False)
        self.bn_gate = nn.BatchNorm2d(2 * channels)
        self.conv_out = nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        xy = torch.cat([x, y], 1)
        feat = F.relu(self.bn_xy(self.conv_xy(xy))) * torch.sigmoid(self.bn_gate(self.conv_gate(xy)))
        w = self.sea(self.conv_out(feat))
        return x * w + y * (1 - w)
