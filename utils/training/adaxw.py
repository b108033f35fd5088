"""AdaXW, the optimiser the authors train FSANet with (AdaX of Li et al., 2020, with
decoupled weight decay).

The authors import it from ``utils/AdaX.py`` in their repository (class ``AdaXW``,
a copy of the official AdaX code); neither torch, timm nor pytorch-optimizer
(checked: 4.1.0) provides it, so the same update is written here from its definition. Per parameter and step t:

    m = β1·m + (1 − β1)·g
    v = (1 + β2)·v + β2·g²
    p ← p − lr·wd·p
    p ← p − lr·sqrt((1 + β2)^t − 1)·m / (sqrt(v) + eps)

Unlike Adam, v grows (long-term memory of past gradients) and the bias
correction multiplies the step. The decay is computed as the authors write it,
``p − (lr·wd)·p`` with the product rounded first, so the two agree bit for bit at
any lr·wd. At the recipe's defaults (lr ≤ 2e-4, wd 1e-4) lr·wd ≤ 2e-8 is below
2⁻²⁵, half a float32 ulp of a weight's own magnitude, so in float32 the decay never
changes a weight, in the authors' code as here (docs/faithfulness.md). State per parameter: ``step`` (int),
``exp_avg``, ``exp_avg_sq``: the layout of the authors' optimizer state.
Parameters without a gradient are skipped entirely (no decay either).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Optional, Tuple

import torch
from torch.optim import Optimizer


class AdaXW(Optimizer):
    """AdaX with decoupled weight decay.

    Args:
        params: parameters or parameter groups.
        lr: learning rate (the authors' 2e-4).
        betas: (β1, β2); the authors' (0.9, 1e-4).
        eps: added to sqrt(v) (1e-12).
        weight_decay: decoupled decay (the authors' 1e-4).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-4,
        betas: Tuple[float, float] = (0.9, 1e-4),
        eps: float = 1e-12,
        weight_decay: float = 1e-4,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be ≥ 0, got {lr}, {eps}, {weight_decay}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1]:
            raise ValueError(f"betas must satisfy 0 ≤ β1 < 1 and β2 ≥ 0, got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if grad.is_sparse:
                    raise RuntimeError("AdaXW does not support sparse gradients")
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(1 + beta2).addcmul_(grad, grad, value=beta2)
                if weight_decay:
                    # p − lr·wd·p in the authors' order of operations: the product is rounded,
                    # then subtracted (p·(1 − lr·wd) is the same algebra but rounds differently)
                    param.sub_(torch.mul(param, lr * weight_decay))
                step_size = lr * math.sqrt((1 + beta2) ** state["step"] - 1)
                param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-step_size)
        return loss
