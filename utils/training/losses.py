"""The authors' structure loss (BCE + weighted IoU) and its deep supervision.

The pixel weight ``w = 1 + 5·|avgpool31(mask) − mask|`` emphasises pixels near
boundaries. The authors call ``binary_cross_entropy_with_logits(..., reduce='none')``:
``reduce`` is the deprecated boolean flag and ``'none'`` is truthy, so the BCE
term is the plain mean over all pixels and ``w`` never reaches it. That is the
default here (``bce="mean"``); ``bce="weighted"`` is the w-weighted BCE the
authors intended.

:data:`LOSSES` is the loss table, the one owner of the ``--loss`` names: each entry is a
callable ``(logits, mask) -> scalar`` applied to every side output P1..P4 (deep
supervision). train.py's ``choices``, the config's validation and the docs are derived
from it; :func:`register_loss` adds an entry (``docs/extending.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from utils.common.tables import add_entry

#: the authors' deep-supervision weights for P1, P2, P3, P4.
DEEP_SUPERVISION_WEIGHTS = (0.7, 0.1, 0.1, 0.1)

BCE_MODES = ("mean", "weighted")


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


def authors_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The authors' structure loss as their code computes it: plain-mean BCE + weighted IoU."""
    return structure_loss(logits, mask, "mean")


def weighted_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The structure loss the authors intended: boundary-weighted BCE + weighted IoU."""
    return structure_loss(logits, mask, "weighted")


#: what a loss is: ``(B×1×H×W logits, B×1×H×W mask in [0, 1]) -> scalar``
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossSpec:
    """One ``--loss`` choice: its name, the callable and one line for ``-h`` and the docs."""

    name: str
    fn: LossFn
    summary: str

    def __post_init__(self) -> None:
        if not self.name or not callable(self.fn) or not self.summary:
            raise ValueError(f"loss {self.name!r}: an entry needs a name, a callable and a summary")


#: the loss table: ``--loss`` name -> spec, in registration order (the first is the default).
LOSSES: Dict[str, LossSpec] = {}


def register_loss(name: str, fn: LossFn, summary: str, *, replace: bool = False) -> LossSpec:
    """Add a loss to the table (``replace=True`` to redefine a name); returns its spec."""
    return add_entry(LOSSES, name, LossSpec(name, fn, summary), "loss", replace)


register_loss("authors", authors_loss, "the authors' loss as their code computes it (plain-mean BCE + weighted IoU)")
register_loss("weighted", weighted_loss, "the loss the authors intended (boundary-weighted BCE + weighted IoU)")


def markdown_table() -> str:
    """The docs table of :data:`LOSSES` (docs/extending.md shows it)."""
    lines = ["| `--loss` | what it is |", "|---|---|"]
    lines += [f"| `{spec.name}` | {spec.summary} |" for spec in LOSSES.values()]
    return "\n".join(lines)


def get_loss(loss: Union[str, LossFn]) -> LossFn:
    """The callable of a table name (or ``loss`` itself when it is a callable)."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[loss].fn


def deep_supervision_loss(
    predictions: Sequence[torch.Tensor],
    mask: torch.Tensor,
    weights: Sequence[float] = DEEP_SUPERVISION_WEIGHTS,
    loss: Union[str, LossFn] = "authors",
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """``(Σ weight_i·L(P_i), [L(P1), …])`` with ``L`` the loss ``loss`` (a table name or a
    callable); the frequency map is not supervised.

    Losses are computed in at least float32 whatever the autocast dtype of the logits
    (float16/bfloat16 are raised to float32; float64 stays float64, never a downcast).
    """
    fn = get_loss(loss)
    mask = mask.to(torch.promote_types(mask.dtype, torch.float32))
    losses = [fn(p.to(torch.promote_types(p.dtype, mask.dtype)), mask) for p in predictions[: len(weights)]]
    total = sum(w * loss for w, loss in zip(weights, losses))
    return total, losses
