"""Prediction heads of FSANet (deep supervision on four decoder levels)."""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PredictionHead(nn.Module):
    """Shared head: bilinear ×2 → 3×3 conv (64→64) → 3×3 conv (64→1) → bilinear to the
    input size. The SAME two convs serve all four levels, as in the authors' model
    (their ``conv_up2..4`` exist but are never used, so they are not built).

    ``forward([o1..o4] at strides 4, 8, 16, 32) -> [P1..P4] each B×1×H×W`` (logits).
    """

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv_up = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, features: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        maps = []
        for i, feat in enumerate(features):
            feat = F.interpolate(feat, scale_factor=2, mode="bilinear", align_corners=False)
            logits = self.conv_out(self.conv_up(feat))
            maps.append(F.interpolate(logits, scale_factor=2 ** (i + 1), mode="bilinear", align_corners=False))
        return maps
