"""The training recipe's pieces against their formulas: loss, AdaXW, poly LR, sizes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from lib.configs import get_config
from lib.FSANet import build_fsanet
from lib.keymap import authors_optimizer_to_fsanet
from utils.training.adaxw import AdaXW
from utils.training.losses import boundary_weight, deep_supervision_loss, structure_loss
from utils.training.recipe import make_scheduler, scaled_sizes


def _case(seed=0, shape=(2, 1, 40, 40)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    mask = (torch.rand(shape, generator=g, dtype=torch.float64) > 0.6).double()
    mask[:, :, 10:30, 10:30] = 1.0
    return logits, mask


def _by_hand(logits, mask, weighted):
    w = 1 + 5 * (F.avg_pool2d(mask, 31, 1, 15) - mask).abs()
    p = torch.sigmoid(logits)
    per_pixel = -(mask * torch.log(p) + (1 - mask) * torch.log(1 - p))
    if weighted:
        bce = (w * per_pixel).sum((2, 3)) / w.sum((2, 3))
    else:
        bce = per_pixel.mean().expand(mask.shape[0], 1)  # one number for the whole batch
    iou = 1 - ((p * mask * w).sum((2, 3)) + 1) / (((p + mask) * w).sum((2, 3)) - (p * mask * w).sum((2, 3)) + 1)
    return (bce + iou).mean()


def test_authors_loss_is_plain_mean_bce_plus_weighted_iou():
    logits, mask = _case()
    assert torch.allclose(structure_loss(logits, mask), _by_hand(logits, mask, False), rtol=1e-12)
    assert torch.allclose(structure_loss(logits, mask, "weighted"), _by_hand(logits, mask, True), rtol=1e-12)
    assert not torch.allclose(structure_loss(logits, mask), structure_loss(logits, mask, "weighted"))


def test_the_authors_reduce_none_call_really_means_mean():
    """The premise of the default: ``reduce='none'`` is the legacy flag and reduces."""
    logits, mask = _case(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        authors = F.binary_cross_entropy_with_logits(logits, mask, reduce="none")
    assert authors.ndim == 0
    assert torch.allclose(authors, F.binary_cross_entropy_with_logits(logits, mask))


def test_boundary_weight_hand_case():
    mask = torch.zeros(1, 1, 31, 31, dtype=torch.float64)
    mask[..., 15, 15] = 1.0
    weight = boundary_weight(mask)
    # at the centre: avg = 1/961 (zero padding counted), |avg - 1| = 960/961
    assert weight[0, 0, 15, 15].item() == pytest.approx(1 + 5 * 960 / 961)
    assert weight[0, 0, 0, 0].item() == pytest.approx(1 + 5 / 961)


def test_deep_supervision_weights():
    logits, mask = _case(2)
    preds = [logits * s for s in (1.0, 0.5, 2.0, -1.0)]
    total, losses = deep_supervision_loss(preds, mask)
    by_hand = [_by_hand(p, mask, False) for p in preds]  # written out in this file, not utils.training.losses
    expected = 0.7 * by_hand[0] + 0.1 * (by_hand[1] + by_hand[2] + by_hand[3])  # the paper's weights
    assert torch.allclose(total.double(), expected.double(), rtol=1e-6) and len(losses) == 4
    for got, want in zip(losses, by_hand):
        assert torch.allclose(got.double(), want.double(), rtol=1e-6)
    assert not torch.allclose(total.double(), sum(by_hand).double() / 4, rtol=1e-3)  # not a plain mean


def test_adaxw_follows_the_formula():
    torch.manual_seed(0)
    start = torch.randn(5, 3, dtype=torch.float64)
    param = torch.nn.Parameter(start.clone())
    lr, (b1, b2), eps, wd = 2e-4, (0.9, 1e-4), 1e-12, 1e-4
    opt = AdaXW([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    p, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for t in range(1, 6):
        grad = torch.randn_like(start)
        param.grad = grad.clone()
        opt.step()
        m = b1 * m + (1 - b1) * grad
        v = (1 + b2) * v + b2 * grad**2
        p = p - lr * wd * p
        p = p - lr * math.sqrt((1 + b2) ** t - 1) * m / (v.sqrt() + eps)
        assert torch.allclose(param.data, p, rtol=0, atol=1e-15)
    state = opt.state[param]
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"} and state["step"] == 5
    assert torch.allclose(state["exp_avg_sq"], v)


def _authors_adaxw_step(p, grad, m, v, t, lr, wd, b1=0.9, b2=1e-4, eps=1e-12):
    """One AdaXW step in the authors' order of operations (their utils/AdaX.py): the decay
    product ``p·(lr·wd)`` is rounded, then subtracted; then the AdaX step on the decayed p."""
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(1 + b2).addcmul_(grad, grad, value=b2)
    denom = v.sqrt().add_(eps)
    p.add_(-torch.mul(p, lr * wd)).addcdiv_(m, denom, value=-lr * math.sqrt((1 + b2) ** t - 1))


def _weights_of_every_magnitude(seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = 2.0 ** torch.randint(-30, 30, (4096,), generator=g).float()
    values = torch.randn(4096, generator=g) * scale
    values[:64] = 2.0 ** torch.arange(-32, 32).float()  # powers of two: the finest spacing below
    return values


def test_adaxw_weight_decay_is_the_authors_arithmetic_bit_for_bit():
    """At a large lr·wd (0.015) float32 tells p − (lr·wd)·p from p·(1 − lr·wd); AdaXW must
    round as the authors' code does, every element, every step."""
    lr, wd = 0.05, 0.3
    start = _weights_of_every_magnitude()
    param = torch.nn.Parameter(start.clone())
    opt = AdaXW([param], lr=lr, weight_decay=wd)
    p, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    g = torch.Generator().manual_seed(1)
    for t in range(1, 6):
        grad = torch.randn(start.shape, generator=g) * 1e-3
        param.grad = grad.clone()
        opt.step()
        _authors_adaxw_step(p, grad, m, v, t, lr, wd)
        assert torch.equal(param.data, p), f"step {t}: {(param.data != p).sum().item()} weights differ"
    # the premise: the other rounding order really differs here, so the equality above has power
    assert not torch.equal(start * (1 - lr * wd), start - torch.mul(start, lr * wd))


def test_default_weight_decay_never_changes_a_float32_weight():
    """The faithfulness notes' quirk: at lr ≤ 2e-4 and wd 1e-4, lr·wd ≤ 2e-8 < 2⁻²⁵, so
    p − (lr·wd)·p rounds back to p for every float32 weight (the authors' code included)."""
    start = _weights_of_every_magnitude(2)
    for lr, wd, changes in ((2e-4, 1e-4, False), (2e-4 * (1 - 1 / 200) ** 0.9, 1e-4, False), (1e-3, 1e-4, True)):
        param = torch.nn.Parameter(start.clone())
        param.grad = torch.zeros_like(start)  # no AdaX step: only the decay acts
        AdaXW([param], lr=lr, weight_decay=wd).step()
        assert torch.equal(param.data, start) is not changes, (lr, wd)


@pytest.mark.parametrize("lr, wd", [(2e-4, 1e-4), (0.05, 0.3)])
def test_foreach_adaxw_is_the_per_tensor_form_bit_for_bit(lr, wd):
    """The multi-tensor step (the default) against the per-tensor reference, on the small
    FSANet's ~700 tensors plus weights of every magnitude, with steps skipped by some
    parameters (their step counts then differ) and a tensor without a gradient."""
    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small"))
    start = [p.detach().clone() for p in model.parameters()] + [_weights_of_every_magnitude()]
    runs = {}
    for foreach in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        opt = AdaXW(params, lr=lr, weight_decay=wd, foreach=foreach)
        g = torch.Generator().manual_seed(1)
        for step in range(4):
            for index, param in enumerate(params):
                skip = index % 7 == 0 and step == 1 or index == 3
                param.grad = None if skip else torch.randn(param.shape, generator=g) * 1e-3
            opt.step()
        runs[foreach] = (params, opt)
    (slow, slow_opt), (fast, fast_opt) = runs[False], runs[True]
    differ = [i for i, (a, b) in enumerate(zip(slow, fast)) if not torch.equal(a, b)]
    assert not differ, f"{len(differ)} of {len(slow)} tensors differ"
    for a, b in zip(slow, fast):
        sa, sb = slow_opt.state.get(a, {}), fast_opt.state.get(b, {})
        assert sa.keys() == sb.keys() and all(sa[k] == sb[k] if k == "step" else torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(fast[3], start[3])  # never had a gradient: untouched
    assert fast_opt.state[fast[7]]["step"] == 3 and fast_opt.state[fast[1]]["step"] == 4


def test_adaxw_skips_parameters_without_gradient():
    frozen = torch.nn.Parameter(torch.ones(3))
    AdaXW([frozen], lr=1.0, weight_decay=0.5).step()
    assert torch.equal(frozen.data, torch.ones(3))


@pytest.mark.filterwarnings(r"ignore:Detected call of `lr_scheduler.step\(\)`")
def test_poly_lr_per_epoch_from_one_and_on_resume():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = AdaXW([param], lr=2e-4)
    sched = make_scheduler(opt, 200, 0.9, 0)
    seen = []
    for _ in range(200):
        seen.append(opt.param_groups[0]["lr"])
        sched.step()
    expected = [2e-4 * (1 - e / 200) ** 0.9 for e in range(1, 201)]
    assert seen == pytest.approx(expected, rel=1e-12, abs=1e-20)
    assert seen[-1] == 0.0  # the authors' last epoch runs at lr 0
    resumed = make_scheduler(AdaXW([param], lr=2e-4), 200, 0.9, 37)
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(expected[37], rel=1e-12)


def test_training_sizes():
    assert scaled_sizes(736, (0.75, 1, 1.25)) == [544, 736, 928]
    assert scaled_sizes(128, (0.75, 1, 1.25)) == [96, 128, 160]


def test_authors_optimizer_state_is_reindexed_by_name(authors_recipe):
    """The authors' AdaXW state lists parameters in their model's order; it must land
    on the same tensors of this model."""
    from lib.FSANet import FSANet

    model = FSANet(backbone="pvt_v2_b2")
    names = [k for k in authors_recipe if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    picks = {
        "frequency.radius": None,
        "sff.conv_xy.weight": "feature_fusion.conv_xy.weight",
        "backbone.block2.1.attn.kv.weight": "spatial_encoder.body.stages.1.blocks.1.attn.kv.weight",
        "resnet_f.layer3_1.0.conv1.weight": "frequency_branch.encoder.body.layer3.0.conv1.weight",
        "conv_up2.weight": None,
    }
    state = {}
    for index, name in enumerate(names):
        if name in picks and picks[name] is not None:
            shape = authors_recipe[name].shape
            state[index] = {"step": 7, "exp_avg": torch.full(shape, float(index)), "exp_avg_sq": torch.ones(shape)}
    state[names.index("conv_up2.weight")] = {
        "step": 7,
        "exp_avg": torch.zeros(64, 64, 3, 3),
        "exp_avg_sq": torch.zeros(64, 64, 3, 3),
    }  # unused tensor: dropped
    authors_state = {
        "state": state,
        "param_groups": [
            {"lr": 1e-5, "betas": (0.9, 1e-4), "eps": 1e-12, "weight_decay": 1e-4, "params": list(range(len(names)))}
        ],
    }
    mapped = authors_optimizer_to_fsanet(authors_state, {"module." + k: v for k, v in authors_recipe.items()}, model)
    ours = [n for n, _ in model.named_parameters()]
    assert len(mapped["state"]) == 3
    for authors_name, our_name in picks.items():
        if our_name is None:
            continue
        entry = mapped["state"][ours.index(our_name)]
        assert entry["step"] == 7 and entry["exp_avg"].flatten()[0].item() == names.index(authors_name)
    optimizer = AdaXW(model.parameters())
    optimizer.load_state_dict(mapped)  # shapes and indices fit this model
    assert authors_optimizer_to_fsanet({}, authors_recipe, model) is None


def test_postprocess_is_the_authors_formula():
    from utils.inference.processing import postprocess

    logits = torch.tensor([[[[-4.0, 0.0], [1.0, 6.0]]]])
    out = postprocess(logits, (3, 5))
    prob = torch.sigmoid(F.interpolate(logits, size=(3, 5), mode="bilinear", align_corners=False))
    expected = ((prob - prob.min()) / (prob.max() - prob.min() + 1e-8) * 255).round().byte()[0, 0].numpy()
    assert out.dtype.name == "uint8" and out.shape == (3, 5)
    assert (out == expected).all() and out.min() == 0 and out.max() == 255


def test_precision_is_raised_never_lowered():
    """The loss and the high-pass FFT compute in at least float32: bf16 logits are raised to
    float32 (as before), float64 stays float64 (the float64 trajectory test depends on it)."""
    from lib.frequency import HighPassFilter
    from utils.training.losses import deep_supervision_loss

    torch.manual_seed(0)
    logits, mask = torch.randn(2, 1, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    for dtype, expected in ((torch.bfloat16, torch.float32), (torch.float32, torch.float32), (torch.float64, torch.float64)):
        total, losses = deep_supervision_loss([logits.to(dtype)] * 4, mask.to(dtype))
        assert total.dtype == expected and all(loss.dtype == expected for loss in losses), dtype
    exact = deep_supervision_loss([logits.double()] * 4, mask.double())[0]
    single = deep_supervision_loss([logits] * 4, mask)[0]
    assert 0 < abs(exact.item() - single.item()) < 1e-5  # float64 is not float32 rounded again
    image = torch.randn(1, 3, 32, 48, dtype=torch.float64)
    high = HighPassFilter(radius=4.0).double()
    assert high(image).dtype == torch.float64
    assert torch.allclose(high(image).float(), high.float()(image.float()), atol=1e-5)
    assert not torch.equal(high(image), high(image.float()).double())  # computed in float64, not in float32
