"""BatchNorm folded into the convolution before it, for inference (``test.py`` and ``app.py`` ``--fold_bn``).

In eval mode a BatchNorm2d is a per-channel affine map, so ``bn(conv(x))`` equals
one convolution with scaled weights and a shifted bias (``torch.nn.utils.fusion``).
FSANet has 115 such pairs in its ResNet-50 frequency encoder and decoder (a
module called several times per forward, such as the shared SFF, keeps its
BatchNorm); folding removes a pass over every one of their feature maps.
The result equals the unfolded model up to float rounding (maps within one grey
level: ``tests/test_fold_batchnorm.py``). Training keeps the BatchNorms.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from utils.common.logs import get_logger

log = get_logger(__name__)


def conv_bn_pairs(model: nn.Module, size: int = 64) -> List[Tuple[str, str]]:
    """(conv name, BatchNorm name) pairs where the BatchNorm's only input is that
    convolution's output, no other module reads that output, and each of the two is
    called once per forward; found by one small forward."""
    names = {module: name for name, module in model.named_modules()}
    produced: Dict[int, str] = {}  # id of a conv output → conv name
    readers: Dict[int, List[str]] = {}  # id of a tensor → modules that took it as input
    alive: List[torch.Tensor] = []  # every tensor seen stays alive, so no id is reused during the forward
    hooks = []

    calls: Dict[str, int] = {}

    def record_output(module, _inputs, output):
        alive.append(output)
        produced[id(output)] = names[module]
        calls[names[module]] = calls.get(names[module], 0) + 1

    def record_input(module, inputs):
        for tensor in inputs:
            if isinstance(tensor, torch.Tensor):
                alive.append(tensor)
                readers.setdefault(id(tensor), []).append(names[module])
        if isinstance(module, nn.BatchNorm2d):
            calls[names[module]] = calls.get(names[module], 0) + 1

    for module in names:
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(record_output))
        if not list(module.children()) or isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(record_input))
    parameter = next(model.parameters())
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device=parameter.device, dtype=parameter.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    modules = dict(model.named_modules())
    pairs = []
    for tensor_id, conv in produced.items():
        users = readers.get(tensor_id, [])
        # a module called more than once (the shared SFF and heads) keeps its BatchNorm
        if len(users) == 1 and isinstance(modules[users[0]], nn.BatchNorm2d) and calls[conv] == calls[users[0]] == 1:
            pairs.append((conv, users[0]))
    return pairs


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm2d that directly follows a convolution into it
    (in place; the BatchNorm becomes ``nn.Identity``); returns how many were folded."""
    if model.training:
        raise ValueError("fold_batchnorm is for inference: call model.eval() first (training needs the BatchNorms)")
    pairs = conv_bn_pairs(model)
    modules = dict(model.named_modules())
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        fused = fuse_conv_bn_eval(conv, bn)
        conv.weight = fused.weight  # the same conv object keeps its memory format and hooks
        conv.bias = fused.bias
        parent, _, attr = bn_name.rpartition(".")
        setattr(modules[parent] if parent else model, attr, nn.Identity())
    log.debug("folded %d BatchNorms into their convolutions", len(pairs))
    return len(pairs)
