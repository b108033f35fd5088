"""Parameters and FLOPs of FSANet, per part.

    python -m lib.summary --size 1024 [--backbone pvt_v2_b2] [--freq_backbone resnet50]

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add
= 2 FLOPs; convolutions, matmuls and attention; FFTs, norms and element-wise ops
are not counted). The model runs on PyTorch's ``meta`` device, so no memory is
allocated and the count is instant at any size.
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lib.FSANet import DEFAULT_CONFIG, FSANet, build_fsanet

#: top-level submodules of FSANet and the paper's name for each.
PARTS: List[Tuple[str, str]] = [
    ("spatial_encoder", "spatial encoder"),
    ("frequency_branch", "frequency branch (high-pass + encoder)"),
    ("modality_fusion", "MF fusion (1x1 conv + SE)"),
    ("scale_fusion", "CSFM"),
    ("context_fusion", "HCF x4"),
    ("feature_fusion", "SFF (shared)"),
    ("head", "heads (shared)"),
]


def count_parameters(model: FSANet) -> Dict[str, int]:
    """Parameter count per part (keys of :data:`PARTS`) plus ``"total"``."""
    counts = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name, _ in PARTS}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def count_flops(model: FSANet, height: int, width: int, batch: int = 1) -> Dict[str, int]:
    """Forward FLOPs per part plus ``"total"`` for a ``batch``×3×height×width input."""
    device = next(model.parameters()).device
    x = torch.zeros(batch, 3, height, width, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    totals = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    root = type(model).__name__
    flops = {}
    for name, _ in PARTS:
        part = f"{root}.{name}"
        if part in totals:
            flops[name] = totals[part]
        else:  # a ModuleList is never called itself: add up its direct children
            flops[name] = sum(v for k, v in totals.items() if k.rsplit(".", 1)[0] == part)
    flops["total"] = totals.get("Global", 0)
    return flops


def build_on_meta(**config) -> nn.Module:
    """FSANet on the meta device (shapes only, no memory), in eval mode."""
    with torch.device("meta"):
        return build_fsanet(config).eval()


def format_table(params: Dict[str, int], flops: Dict[str, int], height: int, width: int) -> str:
    """A plain-text table of parameters (M) and GFLOPs per part."""
    rows = [(label, params[name], flops[name]) for name, label in PARTS]
    rows.append(("total", params["total"], flops["total"]))
    width_label = max(len(r[0]) for r in rows)
    lines = [f"{'part':<{width_label}}  {'params (M)':>11}  {f'GFLOPs @ {height}x{width}':>18}"]
    lines.append("-" * len(lines[0]))
    for label, p, f in rows:
        lines.append(f"{label:<{width_label}}  {p / 1e6:>11.3f}  {f / 1e9:>18.2f}")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> None:
    from models.backbones import FREQUENCY_BACKBONES, SPATIAL_BACKBONES

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--size", type=int, nargs="+", default=[1024], help="H [W] of the input (multiples of 32)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backbone", choices=sorted(SPATIAL_BACKBONES), default=DEFAULT_CONFIG["backbone"])
    parser.add_argument("--freq_backbone", choices=sorted(FREQUENCY_BACKBONES), default=DEFAULT_CONFIG["freq_backbone"])
    args = parser.parse_args(argv)
    height, width = (args.size * 2)[:2]
    if args.batch < 1 or min(height, width) < 32 or height % 32 or width % 32:
        parser.error(f"--size must be multiples of 32 (got {height}×{width}) and --batch ≥ 1 (got {args.batch})")
    model = build_on_meta(backbone=args.backbone, freq_backbone=args.freq_backbone)
    params = count_parameters(model)
    flops = count_flops(model, height, width, args.batch)
    sys.stdout.write(f"FSANet(backbone={args.backbone}, freq_backbone={args.freq_backbone}), batch {args.batch}\n")
    sys.stdout.write(format_table(params, flops, height, width) + "\n")


if __name__ == "__main__":
    main()
