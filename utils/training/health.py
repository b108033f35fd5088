"""Whether a run is still sound at the end of an epoch: finite weights before anything is
saved, and a loss that has not exploded (docs/errors.md)."""

from __future__ import annotations

from typing import Dict, List

import torch

from utils.common.logs import get_logger

log = get_logger(__name__)

#: an epoch's loss this many times the first epoch's is reported as a likely divergence
DIVERGED_LOSS_FACTOR = 1e3


def check_finite_weights(model: torch.nn.Module, epoch: int) -> None:
    """Raise :class:`FloatingPointError` (train.py's NaN-loss path: no checkpoint of this epoch is
    written, the last good one is named) when a parameter or buffer holds NaN or ±inf: a
    BatchNorm running variance can overflow while the training-mode loss stays finite."""
    bad = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if bad:
        shown = ", ".join(bad[:3]) + (f" … ({len(bad)} tensors in all)" if len(bad) > 3 else "")
        raise FloatingPointError(
            f"epoch {epoch}: the weights are no longer finite ({shown}), so nothing of this epoch was saved; "
            "the run diverged: lower --lr, or use --amp bf16 instead of fp16"
        )


def warn_if_diverging(history: List[Dict[str, float]], epoch: int, stats: Dict[str, float]) -> bool:
    """Warn (and return True) when the epoch's loss is :data:`DIVERGED_LOSS_FACTOR` × the first
    recorded epoch's or more: finite, yet a run that has most likely exploded."""
    first = next((h["loss"] for h in history if h.get("loss") is not None and h["loss"] > 0), None)
    loss = stats.get("loss")
    if first is None or loss is None or not loss >= DIVERGED_LOSS_FACTOR * first:
        return False
    log.warning(
        "epoch %d: the loss %.3g is %.0e× the first epoch's (%.3g): the run has most likely diverged "
        "(lower --lr); its checkpoints are saved, but check them before use",
        epoch,
        loss,
        loss / first,
        first,
    )
    return True
