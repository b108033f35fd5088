"""HCF: hierarchical context fusion, one per decoder level."""

from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn

Size2 = Union[int, Tuple[int, int]]


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm, no activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Size2, padding: Size2 = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def _strip_pair(in_channels: int, out_channels: int, k: int) -> nn.Sequential:
    """A 1×k then k×1 ConvBN pair."""
    return nn.Sequential(
        ConvBN(in_channels, out_channels, (1, k), (0, k // 2)),
        ConvBN(out_channels, out_channels, (k, 1), (k // 2, 0)),
    )


class HierarchicalContextFusion(nn.Module):
    """HCF: a cascade of growing strip convolutions (3, 5, 7, then 3×3), each stage
    re-injecting a fresh 1×1 projection of the input; residual 1×1 and ReLU.

    ``forward(x: B×in×h×w) -> B×out×h×w``.
    """

    def __init__(self, in_channels: int, out_channels: int = 64) -> None:
        super().__init__()
        c = out_channels
        self.branch1_1 = nn.Sequential(ConvBN(in_channels, c, 1), *_strip_pair(c, c, 3))
        self.branch1_2 = _strip_pair(2 * c, c, 5)
        self.branch1_3 = _strip_pair(2 * c, c, 7)
        self.branch2 = nn.Sequential(ConvBN(in_channels, c, 1))
        self.branch3 = nn.Sequential(ConvBN(in_channels, c, 1))
        self.branch4 = nn.Sequential(ConvBN(in_channels, c, 1))
        self.branch5 = nn.Sequential(ConvBN(in_channels, c, 1))
        self.conv_cat = ConvBN(2 * c, c, 3, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1_1(x)
        a = self.branch1_2(torch.cat([a, self.branch2(x)], 1))
        a = self.branch1_3(torch.cat([a, self.branch3(x)], 1))
        a = self.conv_cat(torch.cat([a, self.branch4(x)], 1))
        return self.relu(self.branch5(x) + a)
