"""Frequency branch of FSANet's MF module: a high-pass image and its encoder."""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from models.backbones import build_frequency_encoder


def _rolled_offsets(size: int, device: torch.device) -> torch.Tensor:
    """Offset from the spectrum's centre ``(size - 1) / 2`` of each ``fft2`` frequency after
    the authors' roll by ``size // 2``: index ``i`` sits at ``(i + size//2) mod size``
    (written with ``where``, as a symbolic ``mod`` does not export to ONNX)."""
    index = torch.arange(size, device=device) + size // 2
    index = torch.where(index >= size, index - size, index)
    return index.to(torch.float32) - (size - 1) / 2


class HighPassFilter(nn.Module):
    """Ideal circular high-pass filter in the Fourier domain (the MF module's input).

    The spectrum ``fft2(x)`` is rolled by (H//2, W//2); every frequency whose distance
    to ((H-1)/2, (W-1)/2) is at most ``radius`` is zeroed; the inverse FFT is taken
    without rolling back, and its magnitude averaged over the colour channels.

    ``radius`` is a learnable parameter (initial value 100) as in the authors' model,
    but the hard threshold gives it no gradient, so it never changes in training.

    ``forward(x: B×C×H×W) -> B×1×H×W``.
    """

    def __init__(self, radius: float = 100.0) -> None:
        super().__init__()
        self.radius = nn.Parameter(torch.tensor([float(radius)]))

    def pass_mask(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """H×W float mask, 1 where a frequency passes, in the unrolled ``fft2`` frame.

        The authors roll the B×C×H×W spectrum by (H//2, W//2), mask it and never roll
        back. A roll of the spectrum only multiplies the image by a unit-modulus phase,
        which the magnitude in :meth:`forward` removes, so masking the unrolled spectrum
        with the mask rolled the other way is the same map without copying the spectrum.
        The rolled mask is indexed directly (frequency ``i`` sits at rolled row
        ``(i + H//2) mod H``), with no ``torch.roll``, which ONNX export cannot take for
        a symbolic size (``python -m utils.deploy.export --dynamic``).
        """
        rows, cols = _rolled_offsets(height, device), _rolled_offsets(width, device)
        dist = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)
        return (dist > self.radius.to(torch.float32)).to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        # at least float32 (half-precision FFTs are limited to powers of two), never a downcast:
        # a float64 model keeps its float64 spectrum (the float64 trajectory test runs that way)
        spectrum = torch.fft.fft2(x.to(torch.promote_types(x.dtype, torch.float32)))
        image = torch.fft.ifft2(spectrum * self.pass_mask(height, width, x.device)).abs()
        return image.mean(dim=1, keepdim=True).to(x.dtype)


class FrequencyBranch(nn.Module):
    """High-pass image → 1-channel encoder (ResNet-50 in the paper): the MF module's
    frequency features.

    ``forward(x: B×3×H×W) -> (frequency_map B×1×H×W, [g1..g4] at strides 4–32)``.
    """

    def __init__(self, backbone: str = "resnet50", radius: float = 100.0) -> None:
        super().__init__()
        self.high_pass = HighPassFilter(radius)
        self.encoder = build_frequency_encoder(backbone)
        self.out_channels = self.encoder.out_channels

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        frequency_map = self.high_pass(x)
        return frequency_map, self.encoder(frequency_map)
