"""The authors' structure loss (BCE + weighted IoU) and its deep supervision.

The pixel weight ``w = 1 + 5·|avgpool31(mask) − mask|`` emphasises pixels near
boundaries. The authors call ``binary_cross_entropy_with_logits(..., reduce='none')``:
``reduce`` is the deprecated boolean flag and ``'none'`` is truthy, so the BCE
term is the plain mean over all pixels and ``w`` never reaches it. That is the
default here (``bce="mean"``); ``bce="weighted"`` is the w-weighted BCE the
authors intended.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

#: the authors' deep-supervision weights for P1, P2, P3, P4.
DEEP_SUPERVISION_WEIGHTS = (0.7, 0.1, 0.1, 0.1)

BCE_MODES = ("mean", "weighted")
#: train.py's ``--loss``: the authors' loss as it computes (plain-mean BCE) or as intended
from utils.training.config import LOSSES  # noqa: E402,F401  (the --loss names, defined without torch)


def boundary_weight(mask: torch.Tensor) -> torch.Tensor:
    """``1 + 5·|avgpool31(mask) − mask|`` (kernel 31, stride 1, padding 15)."""
    return 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, bce: str = "mean") -> torch.Tensor:
    """BCE + weighted IoU for B×1×H×W logits and a mask in [0, 1], averaged over the batch.

    Args:
        bce: ``"mean"``: the authors' loss as it computes (plain-mean BCE);
            ``"weighted"``: the boundary-weighted BCE they intended.
    """
    if bce not in BCE_MODES:
        raise ValueError(f"bce must be one of {BCE_MODES}, got {bce!r}")
    weight = boundary_weight(mask)
    if bce == "weighted":
        pixel_bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="none")
    else:
        pixel_bce = F.binary_cross_entropy_with_logits(logits, mask, reduction="mean")
    # With a scalar BCE this ratio is that scalar again: kept to repeat the authors' arithmetic.
    wbce = (weight * pixel_bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * mask * weight).sum(dim=(2, 3))
    union = ((prob + mask) * weight).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def deep_supervision_loss(
    predictions: Sequence[torch.Tensor],
    mask: torch.Tensor,
    weights: Sequence[float] = DEEP_SUPERVISION_WEIGHTS,
    bce: str = "mean",
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """``(Σ weight_i·L(P_i), [L(P1), …])``; the frequency map is not supervised.

    Losses are computed in at least float32 whatever the autocast dtype of the logits
    (float16/bfloat16 are raised to float32; float64 stays float64, never a downcast).
    """
    mask = mask.to(torch.promote_types(mask.dtype, torch.float32))
    losses = [structure_loss(p.to(torch.promote_types(p.dtype, mask.dtype)), mask, bce) for p in predictions[: len(weights)]]
    total = sum(w * loss for w, loss in zip(weights, losses))
    return total, losses
