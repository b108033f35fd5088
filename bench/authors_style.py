"""An FSANet that computes the way the authors' code does, for speed comparisons only.

Same weights and outputs as ``lib.FSANet.FSANet`` (up to float rounding); it
differs in the two places where the authors' code does avoidable work:

- the high-pass filter builds its distance grid with ``meshgrid`` and two full
  B×C×H×W tensors of ones and zeros on every call, and rolls the B×C×H×W complex
  spectrum (docs/faithfulness.md);
- their PVT-v2 computes attention explicitly (``softmax(q·kᵀ·scale)·v``) where
  timm uses PyTorch's fused scaled-dot-product attention;
- their PVT-v2 keeps the depthwise and spatial-reduction conv weights in NCHW, so
  every block copies its token view to NCHW first (``models.backbones.token_grid_convs``).

This is our reading of their implementation, written from the spec, not their code.
"""

from __future__ import annotations

import torch
from torch import nn

from lib.FSANet import FSANet
from models.backbones import token_grid_convs


class AuthorsHighPass(nn.Module):
    """The high-pass image as the authors compute it (full-size masks, rolled spectrum)."""

    def __init__(self, radius: nn.Parameter) -> None:
        super().__init__()
        self.radius = radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), dim=-1).float().to(x.device)
        centre = torch.tensor([(h - 1) / 2, (w - 1) / 2], device=x.device)
        dist = torch.sqrt(torch.sum((grid - centre) ** 2, dim=-1))
        ones, zeros = torch.ones((b, c, h, w), device=x.device), torch.zeros((b, c, h, w), device=x.device)
        low_pass = torch.where(dist <= self.radius, ones, zeros)
        spectrum = torch.roll(torch.fft.fftn(x, dim=(-2, -1)), (h // 2, w // 2), dims=(2, 3))
        image = torch.fft.ifftn(spectrum * (1 - low_pass), dim=(-2, -1)).abs()
        return image.mean(dim=1, keepdim=True)


def make_authors_style(model: FSANet) -> FSANet:
    """Turn ``model`` (in place) into the authors' way of computing; returns it."""
    high_pass = model.frequency_branch.high_pass
    model.frequency_branch.high_pass = AuthorsHighPass(high_pass.radius)
    for module in model.spatial_encoder.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    for conv in token_grid_convs(model.spatial_encoder):
        conv.to(memory_format=torch.contiguous_format)
    return model
