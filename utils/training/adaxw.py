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
from typing import Callable, Iterable, List, Optional, Tuple

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
        foreach: update all parameters of a group with multi-tensor ``torch._foreach_*`` ops
            (a handful of kernel launches per step instead of ~6 per tensor on a GPU; no
            Python loop over the ~750 tensors). The same operations in the same order as the
            per-tensor form: bit-identical on the CPU (tested). False, the default, is the
            authors' per-tensor loop everywhere, until ``bench/gpu_check.sh`` has shown the two
            bit-identical on a GPU; None picks multi-tensor on CUDA, per-tensor elsewhere (on the
            CPU per-tensor is faster: ``python -m bench.optimizer``, 0.50 s against 0.62 s per step
            of the paper model on one thread; the multi-tensor form holds two extra copies).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 2e-4,
        betas: Tuple[float, float] = (0.9, 1e-4),
        eps: float = 1e-12,
        weight_decay: float = 1e-4,
        foreach: Optional[bool] = False,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be ≥ 0, got {lr}, {eps}, {weight_decay}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1]:
            raise ValueError(f"betas must satisfy 0 ≤ β1 < 1 and β2 ≥ 0, got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach))

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], float]] = None) -> Optional[float]:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError("AdaXW does not support sparse gradients")
            for param in params:
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
            if params:
                foreach = group.get("foreach", False)
                use_foreach = params[0].is_cuda if foreach is None else foreach
                (_step_foreach if use_foreach else _step_per_tensor)(self.state, params, group)
        return loss


def _step_per_tensor(state: dict, params: List[torch.Tensor], group: dict) -> None:
    """The update of the module docstring, one parameter at a time (the reference form)."""
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    for param in params:
        grad, exp_avg, exp_avg_sq = param.grad, state[param]["exp_avg"], state[param]["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(1 + beta2).addcmul_(grad, grad, value=beta2)
        if weight_decay:
            # p − lr·wd·p in the authors' order of operations: the product is rounded,
            # then subtracted (p·(1 − lr·wd) is the same algebra but rounds differently)
            param.sub_(torch.mul(param, lr * weight_decay))
        step_size = lr * math.sqrt((1 + beta2) ** state[param]["step"] - 1)
        param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-step_size)


def _step_foreach(state: dict, params: List[torch.Tensor], group: dict) -> None:
    """:func:`_step_per_tensor` as multi-tensor ops over every parameter at once."""
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    grads = [p.grad for p in params]
    exp_avgs = [state[p]["exp_avg"] for p in params]
    exp_avg_sqs = [state[p]["exp_avg_sq"] for p in params]
    torch._foreach_mul_(exp_avgs, beta1)
    torch._foreach_add_(exp_avgs, grads, alpha=1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, 1 + beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=beta2)
    if weight_decay:
        torch._foreach_sub_(params, torch._foreach_mul(params, lr * weight_decay))
    denominators = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denominators, eps)
    step_sizes = [-lr * math.sqrt((1 + beta2) ** state[p]["step"] - 1) for p in params]
    torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)
