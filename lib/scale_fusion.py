"""CSFM: collaborative scale fusion, which keeps high-resolution paths alive in the encoder."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class Downsample(nn.Module):
    """k stride-2 3×3 convs (with bias, no activation in between), then one BatchNorm.

    ``widths = [c_in, c_1, …, c_k]``; submodules ``conv1…convk`` and ``bn``.
    """

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.depth = len(widths) - 1
        for i in range(self.depth):
            self.add_module(f"conv{i + 1}", nn.Conv2d(widths[i], widths[i + 1], 3, 2, 1))
        self.bn = nn.BatchNorm2d(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.depth):
            x = getattr(self, f"conv{i + 1}")(x)
        return self.bn(x)


class Upsample(nn.Module):
    """1×1 conv (bias) → BatchNorm → bilinear ×``scale`` (align_corners=True)."""

    def __init__(self, in_channels: int, out_channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv1(x))
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=True)


class CollaborativeScaleFusion(nn.Module):
    """CSFM: every level exchanges features with every other level, twice.

    With encoder widths (c1, c2, c3, c4) at strides 4–32:

    - x21 = [f1↓2, f2, f3↑2, f4↑4]           (4·c2 ch, stride 8)
    - x31 = [f1↓4, f2↓2, f3, f4↑2]           (4·c3 ch, stride 16)
    - x41 = [f1↓8, f2↓4, f3↓2, f4]           (4·c4 ch, stride 32)
    - x32 = [x21↓2, x31, x41↑2]              (4c2+4c3+2c4 ch, stride 16)
    - x43 = [x32↓2, x21↓4, x31↓2, x41]       (2c4+4c2+4c3+4c4 ch, stride 32)

    Submodule names follow the paper's code (``down1_2`` = level 1 down ×2).

    ``forward(f1, f2, f3, f4) -> (x21, x32, x43)``.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 320, 512)) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.down1_2 = Downsample([c1, c2])
        self.down1_4 = Downsample([c1, c2, c3])
        self.down1_8 = Downsample([c1, c2, c3, c4])
        self.down2_2 = Downsample([c2, c3])
        self.down2_4 = Downsample([c2, c2, c4])
        self.down3_2 = Downsample([c3, c4])
        self.upsample3_2 = Upsample(c3, c2, 2)
        self.upsample4_2 = Upsample(c4, c3, 2)
        self.upsample4_4 = Upsample(c4, c2, 4)
        x21, x31, x41 = 4 * c2, 4 * c3, 4 * c4
        self.down21_2 = Downsample([x21, x21])
        self.down21_4 = Downsample([x21, x21, x21])
        self.down31_2 = Downsample([x31, x31])
        self.upsample41_2 = Upsample(x41, x41 // 2, 2)
        x32 = x21 + x31 + x41 // 2
        self.down32_2 = Downsample([x32, 2 * c4])
        self.out_channels = (x21, x32, 2 * c4 + x21 + x31 + x41)

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x21 = torch.cat([self.down1_2(f1), f2, self.upsample3_2(f3), self.upsample4_4(f4)], 1)
        x31 = torch.cat([self.down1_4(f1), self.down2_2(f2), f3, self.upsample4_2(f4)], 1)
        x41 = torch.cat([self.down1_8(f1), self.down2_4(f2), self.down3_2(f3), f4], 1)
        x32 = torch.cat([self.down21_2(x21), x31, self.upsample41_2(x41)], 1)
        x42 = torch.cat([self.down21_4(x21), self.down31_2(x31), x41], 1)
        x43 = torch.cat([self.down32_2(x32), x42], 1)
        return x21, x32, x43
