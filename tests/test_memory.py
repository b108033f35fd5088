"""The training-step memory model (utils/training/memory.py, bench/memory.py) and decoder checkpointing."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from lib.configs import get_config
from lib.FSANet import CHECKPOINT_PARTS, FSANet, build_fsanet, checkpoint_parts
from utils.training.memory import SavedTensorCounter, count_step_activations, estimate_training_memory

TINY = get_config("fsanet_small")


_META_MODEL = []


def tiny() -> FSANet:
    """The small configuration; built once (on whatever device is current) and copied after."""
    if not _META_MODEL or _META_MODEL[0][1] != torch.empty(0).device:
        _META_MODEL[:] = [(build_fsanet(**TINY), torch.empty(0).device)]
    return copy.deepcopy(_META_MODEL[0][0])


def test_saved_tensor_count_of_a_hand_computed_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    counter = SavedTensorCounter(exclude=list(net.parameters()))
    with counter.counting():
        net(torch.randn(4, 10)).sum()
    # the first Linear saves its input (4×10 fp32), ReLU its output (4×20), which the second
    # Linear saves again (same storage, counted once); weights are parameters, left out
    assert counter.bytes == 4 * 10 * 4 + 4 * 20 * 4


def _independent_count(model: nn.Module, x: torch.Tensor) -> int:
    """Saved tensors of a real forward, distinct storages by address, parameters left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(storages.values())


def test_fake_tensor_estimate_equals_a_real_count_and_scales_with_pixels():
    torch.manual_seed(0)
    model = tiny().train()
    model.frequency_branch.high_pass.radius.requires_grad_(False)
    estimates = {}
    for size in (32, 64):
        x, y = torch.randn(2, 3, size, size), torch.rand(2, 1, size, size)
        real_with_loss = count_step_activations(model, x, y)
        forward_only = _independent_count(model, x)
        assert forward_only < real_with_loss < 1.05 * forward_only  # the loss adds a little
        estimates[size] = estimate_training_memory(tiny, size, 2, "none", (), device="cpu")
        assert estimates[size].activations_bytes == real_with_loss
    # a fake GPU saves what CUDA's kernels save: close to the CPU's, not the same
    cuda = estimate_training_memory(tiny, 64, 2, "none", (), device="cuda").activations_bytes
    assert abs(cuda - estimates[64].activations_bytes) / estimates[64].activations_bytes < 0.05
    ratio = estimates[64].activations_bytes / estimates[32].activations_bytes
    assert ratio == pytest.approx(4.0, rel=0.05)


def test_parameter_gradient_and_optimizer_bytes():
    estimate = estimate_training_memory(tiny, 64, 2, "none", (), device="cpu")
    model = tiny()
    params = sum(p.numel() * 4 for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert estimate.parameters_bytes == params + buffers
    assert estimate.gradients_bytes == params - 4  # the radius is frozen, as in training
    assert estimate.optimizer_bytes == 2 * estimate.gradients_bytes  # AdaXW: two moments per weight


def test_amp_and_checkpointing_lower_the_activations():
    # large enough that bf16's halved activations outweigh autocast's bf16 weight copies (~37 MB here)
    fp32 = estimate_training_memory(tiny, 256, 2, "none", ()).activations_bytes
    bf16 = estimate_training_memory(tiny, 256, 2, "bf16", ()).activations_bytes
    encoder = estimate_training_memory(tiny, 256, 2, "bf16", ("encoder",)).activations_bytes
    every = estimate_training_memory(tiny, 256, 2, "bf16", CHECKPOINT_PARTS).activations_bytes
    assert fp32 > bf16 > encoder > every > 0


def test_checkpointing_every_part_keeps_gradients_and_keys():
    torch.manual_seed(0)
    plain = tiny().train()
    checkpointed = tiny().train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.set_grad_checkpointing(True, parts=checkpoint_parts(["all"]))
    assert checkpointed.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # same drop-path draws
        sum(p.float().mean() for p in model(x)[:4]).backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name
    assert checkpointed.checkpointed == frozenset(CHECKPOINT_PARTS) - {"encoder"}
    checkpointed.set_grad_checkpointing(False)
    assert checkpointed.checkpointed == frozenset()


def test_checkpoint_parts_resolve_as_the_flag_documents():
    assert checkpoint_parts([]) == ("encoder",)
    assert checkpoint_parts(["hcf", "csfm"]) == ("csfm", "hcf")
    assert checkpoint_parts(["all"]) == CHECKPOINT_PARTS
    with pytest.raises(ValueError, match="unknown checkpoint parts"):
        checkpoint_parts(["decoder"])


def test_memory_cli_writes_the_documented_json(tmp_path, capsys):
    from bench.memory import main

    out = tmp_path / "m.json"
    main(["--size", "64", "--batch", "2", "--amp", "bf16", "--grad_checkpoint", "encoder", "hcf", "--json", str(out)])
    data = json.loads(out.read_text())
    for key in ("parameters_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "total_bytes"):
        assert isinstance(data[key], int) and data[key] > 0
    direct = estimate_training_memory(build_fsanet, 64, 2, "bf16", ("encoder", "hcf"), "cuda").as_dict()
    assert {k: data[k] for k in direct if k.endswith("_bytes")} == {k: v for k, v in direct.items() if k.endswith("_bytes")}
    assert (data["size"], data["batch"], data["amp"], data["grad_checkpoint"]) == (64, 2, "bf16", ["encoder", "hcf"])
    assert f"{data['activations_bytes']:>15,d} B" in capsys.readouterr().out
