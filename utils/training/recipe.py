"""The authors' training recipe, one optimiser step at a time (docs/training.md).

Every batch is used for one optimiser step at each size rate (0.75, 1, 1.25 →
544, 736, 928 for trainsize 736; bilinear, align_corners=True); loss
0.7·L(P1) + 0.1·(L(P2) + L(P3) + L(P4)) with L = BCE + weighted IoU
(``utils.training.losses``); AdaXW (``utils.training.adaxw``); poly LR per epoch,
lr·(1 − epoch/E)^0.9 with epochs counted from 1; gradients clamped to ±clip
before each step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from utils.common.amp import autocast
from utils.common.distributed import DistInfo, all_reduce_sum
from utils.common.logs import get_logger
from utils.common.signals import check_stop, start_iterating
from utils.training.adaxw import AdaXW
from utils.training.losses import DEEP_SUPERVISION_WEIGHTS, LossFn, authors_loss, deep_supervision_loss, get_loss

log = get_logger(__name__)

#: the authors' AdaXW settings besides lr and weight decay (their AdaXW defaults).
ADAX_BETAS = (0.9, 1e-4)
ADAX_EPS = 1e-12

# ----------------------------------------------------------------------------- recipe pieces


def scaled_sizes(trainsize: int, rates: Sequence[float]) -> List[int]:
    """``round(trainsize·rate/32)·32`` per rate (736 → 544, 736, 928)."""
    return [int(round(trainsize * rate / 32) * 32) for rate in rates]


def warn_if_nothing_learned(epochs: int, power: float, start_epoch: int) -> bool:
    """Warn (and return True) when every epoch left has learning rate 0 in the poly schedule."""
    if all(PolyDecay(epochs, power)(i) == 0 for i in range(start_epoch, epochs)):
        if start_epoch > 0:  # a resumed or continued run whose remaining epoch is the schedule's last
            log.warning(
                "the remaining epoch (%d of --epoch %d) runs at learning rate 0: the authors' poly schedule "
                "reaches 0 at its last epoch, so nothing more will be learned; to train further, give a "
                "larger --epoch (e.g. --epoch %d)",
                epochs,
                epochs,
                max(epochs + 1, 2 * epochs),
            )
        else:
            log.warning(
                "every epoch of this run has learning rate 0: the authors' poly schedule reaches 0 at its "
                "last epoch (--epoch %d), so nothing will be learned; use --epoch 2 or more",
                epochs,
            )
        return True
    return False


def rescale(images: torch.Tensor, masks: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both tensors bilinear to size×size with align_corners=True (unchanged at their own size)."""
    if images.shape[-2:] == (size, size):
        return images, masks
    resize = dict(size=(size, size), mode="bilinear", align_corners=True)
    return F.interpolate(images, **resize), F.interpolate(masks, **resize)


class PolyDecay:
    """LR factor for ``torch.optim.lr_scheduler.LambdaLR``: scheduler index i → epoch i + 1,
    ``(1 − epoch/total)^power`` (0 from the last epoch on, as the authors' formula gives)."""

    def __init__(self, total_epochs: int, power: float = 0.9) -> None:
        self.total_epochs = int(total_epochs)
        self.power = float(power)

    def __call__(self, index: int) -> float:
        return max(0.0, 1.0 - (index + 1) / self.total_epochs) ** self.power


def make_scheduler(optimizer: torch.optim.Optimizer, total_epochs: int, power: float, done_epochs: int):
    """A poly LambdaLR whose current LR is that of epoch ``done_epochs + 1``."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, PolyDecay(total_epochs, power), last_epoch=done_epochs - 1)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> AdaXW:
    """The authors' optimiser over every parameter of ``model``: AdaXW(lr, betas (0.9, 1e-4),
    eps 1e-12, weight_decay)."""
    return AdaXW(model.parameters(), lr=lr, betas=ADAX_BETAS, eps=ADAX_EPS, weight_decay=weight_decay)


# ----------------------------------------------------------------------------- one epoch


@dataclass
class StepConfig:
    """Per-step settings of :func:`train_one_epoch`."""

    device: torch.device
    sizes: List[int]
    record_index: int
    clip: float = 0.5
    loss: LossFn = authors_loss  # the --loss table's callable (utils.training.losses.LOSSES)
    weights: Tuple[float, ...] = DEEP_SUPERVISION_WEIGHTS
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False


def make_step_config(
    device: torch.device,
    trainsize: int,
    rates: Sequence[float],
    clip: float,
    loss: str,
    amp_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
) -> StepConfig:
    """The step settings of a run: one size per rate (in the rates' order), the epoch's
    losses recorded at rate 1 (the authors log that one; the last rate when 1 is absent),
    the loss of the ``--loss`` table entry ``loss`` (:data:`utils.training.losses.LOSSES`)."""
    rates = [float(r) for r in rates]
    return StepConfig(
        device,
        scaled_sizes(trainsize, rates),
        rates.index(1.0) if 1.0 in rates else len(rates) - 1,
        clip,
        get_loss(loss),
        amp_dtype=amp_dtype,
        channels_last=channels_last,
    )


@dataclass
class StepRecord:
    """What :func:`train_one_epoch` tells its ``on_step`` callback after each optimiser step."""

    size: int
    x: torch.Tensor
    y: torch.Tensor
    total: torch.Tensor
    losses: List[torch.Tensor]


def optimizer_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: StepConfig,
    params: Optional[Sequence[torch.Tensor]] = None,
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """One optimiser step of the recipe on a batch already at its size: forward (autocast),
    deep-supervision loss, backward (scaled for fp16), gradients clamped to ±clip, AdaXW.
    Returns the total loss and P1..P4's (a non-finite loss is the caller's to handle)."""
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(cfg.device.type, cfg.amp_dtype):
        outputs = model(x)
    total, losses = deep_supervision_loss(outputs[:4], y, cfg.weights, cfg.loss)
    scaler.scale(total).backward()
    if cfg.clip > 0:
        scaler.unscale_(optimizer)  # clamp the true gradients, not the fp16-scaled ones
        torch.nn.utils.clip_grad_value_(params, cfg.clip)
    scaler.step(optimizer)
    scaler.update()
    return total, losses


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: StepConfig,
    desc: str = "train",
    progress: bool = True,
    info: Optional[DistInfo] = None,
    on_step: Optional[Callable[[StepRecord], None]] = None,
) -> Dict[str, float]:
    """One pass over ``loader``, one optimiser step per size in ``cfg.sizes``.

    ``on_step`` (optional) is called after every optimiser step with a :class:`StepRecord`
    (the trajectory test records the recipe step by step through it).

    Returns the epoch's mean losses (``loss``, ``P1``..``P4``) over the steps at
    the recorded rate (rate 1, as the authors log), images/s and seconds.
    """
    info = info or DistInfo()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    # total, P1..P4, samples; on the training device, where NCCL's all_reduce needs it (MPS has no float64)
    sums = torch.zeros(6, dtype=torch.float32 if cfg.device.type == "mps" else torch.float64, device=cfg.device)
    seen, start = 0, time.perf_counter()
    batches = start_iterating(loader)  # a stop while the workers start is raised once they are up
    bar = tqdm(batches, total=len(loader), desc=desc, unit="batch", disable=not progress, dynamic_ncols=True, leave=False)
    for images, masks in bar:
        images = images.to(cfg.device, non_blocking=True)
        masks = masks.to(cfg.device, non_blocking=True)
        for index, size in enumerate(cfg.sizes):
            check_stop()  # a Ctrl-C / SIGTERM that Python swallowed (e.g. while workers forked) stops here
            x, y = rescale(images, masks, size)
            total, losses = optimizer_step(model, x, y, optimizer, scaler, cfg, params)
            if not torch.isfinite(total):
                raise FloatingPointError(
                    f"{desc}: the loss became {total.item()} at size {size}; lower --lr, or use --amp bf16 instead of fp16"
                )
            if on_step is not None:
                on_step(StepRecord(size, x, y, total.detach(), [loss.detach() for loss in losses]))
            if index == cfg.record_index:
                batch = images.shape[0]
                values = torch.stack([total.detach(), *(loss.detach() for loss in losses)]).to(sums.dtype)
                sums[:5] += values * batch
                sums[5] += batch
        seen += images.shape[0]
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{(sums[0] / max(sums[5].item(), 1)).item():.4f}", img_s=f"{seen / elapsed:.1f}")
    elapsed = time.perf_counter() - start
    all_reduce_sum(sums, info)
    count = max(sums[5].item(), 1.0)
    stats = {"loss": sums[0].item() / count}
    stats.update({f"P{i + 1}": sums[i + 1].item() / count for i in range(4)})
    stats["images_per_s"] = seen * info.world_size / elapsed if elapsed > 0 else float("nan")
    stats["seconds"] = elapsed
    return stats
