"""MF: multi-modality fusion of spatial and frequency features."""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """Channel re-weighting: global average pool → FC(c→c/r) → ReLU → FC(c/r→c) → sigmoid."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.fc(x.mean(dim=(2, 3)))
        return x * weight[:, :, None, None]


class FrequencyInjection(nn.Module):
    """One level of MF: ``f + SE(conv1×1(g))`` with g the frequency feature."""

    def __init__(self, freq_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(freq_channels, channels, 1)
        self.se = SqueezeExcitation(channels)

    def forward(self, spatial: torch.Tensor, frequency: torch.Tensor) -> torch.Tensor:
        return spatial + self.se(self.conv(frequency))


class MultiModalityFusion(nn.Module):
    """MF module: adds squeeze-excited frequency features to the spatial features,
    level by level (strides 4, 8, 16, 32).

    ``forward([f1..f4], [g1..g4]) -> [f1'..f4']`` with the widths of f.
    """

    def __init__(self, freq_channels: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        self.levels = nn.ModuleList(FrequencyInjection(cf, c) for cf, c in zip(freq_channels, channels))

    def forward(self, spatial: Sequence[torch.Tensor], frequency: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        return [level(f, g) for level, f, g in zip(self.levels, spatial, frequency)]
