"""FSANet's interface: shapes, input checks, variants, gradients, no file access."""

from __future__ import annotations

import socket

import pytest
import torch

import lib
from lib.context_fusion import HierarchicalContextFusion
from lib.feature_fusion import SelectiveFeatureFusion
from lib.frequency import FrequencyBranch, HighPassFilter
from lib.FSANet import FSANet, build_fsanet
from lib.modality_fusion import MultiModalityFusion
from lib.scale_fusion import CollaborativeScaleFusion


def test_paper_model_builds_without_files_or_network(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("FSANet() tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.chdir(tmp_path)  # nothing relative to the repository to read
    model = FSANet()
    assert model.config["backbone"] == "pvt_v2_b2"
    assert model.config["freq_backbone"] == "resnet50"
    assert model.spatial_encoder.out_channels == [64, 128, 320, 512]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", [(64, 64), (64, 128), (96, 32)])
def test_outputs_are_five_maps_at_input_size(size):
    model = build_fsanet(backbone="pvt_v2_b0").eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, *size))
    assert len(outputs) == 5
    for out in outputs:
        assert out.shape == (2, 1, *size)


@pytest.mark.parametrize("shape", [(1, 3, 100, 96), (1, 3, 64, 48), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shapes_raise_value_error(shape):
    model = build_fsanet(backbone="pvt_v2_b0").eval()
    with pytest.raises(ValueError, match="FSANet"):
        model(torch.randn(*shape))


@pytest.mark.parametrize("backbone,freq_backbone", [("res2net50", "resnet50"), ("pvt_v2_b0", "res2net50")])
def test_variants_train_forward_and_backward_at_64(backbone, freq_backbone):
    model = build_fsanet(backbone=backbone, freq_backbone=freq_backbone).train()
    outputs = model(torch.randn(2, 3, 64, 64))
    sum(o.mean() for o in outputs[:4]).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    # The hard high-pass threshold gives the radius no gradient, as in the authors' model.
    assert no_grad == ["frequency_branch.high_pass.radius"]
    if backbone == "res2net50":  # widths 256..2048 are projected to the CSFM widths
        assert model.spatial_encoder.proj is not None
        assert [f.shape[1] for f in model.spatial_encoder(torch.randn(1, 3, 64, 64))] == [64, 128, 320, 512]


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="pvt_v2_b2"):
        build_fsanet(backbone="pvt_v3")
    with pytest.raises(ValueError, match="unknown FSANet config keys"):
        build_fsanet(depth=3)


def test_high_pass_of_constant_image_depends_on_the_off_centre_disc():
    # A constant image has only the DC frequency. After the roll, DC sits at
    # (H//2, W//2) = (16, 24), while the disc is centred at ((H-1)/2, (W-1)/2) =
    # (15.5, 23.5): 0.707 away. So radius 0 removes nothing (|ifft(fft(x))| = x),
    # and radius 0.75 removes DC, leaving zero: the authors' half-pixel quirk.
    image = torch.full((1, 3, 32, 48), 0.7)
    assert torch.allclose(HighPassFilter(radius=0.0)(image), torch.full((1, 1, 32, 48), 0.7), atol=1e-5)
    assert HighPassFilter(radius=0.70)(image).abs().min() > 0.69
    assert HighPassFilter(radius=0.75)(image).abs().max() < 1e-5


def test_high_pass_matches_the_spec_formula():
    # Spec: roll the spectrum by (H//2, W//2), zero the disc of the radius around
    # ((H-1)/2, (W-1)/2), inverse FFT without rolling back, |.|, mean over colours.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40, 56)
    radius = 9.0
    h, w = x.shape[-2:]
    spectrum = torch.roll(torch.fft.fftn(x, dim=(-2, -1)), (h // 2, w // 2), dims=(2, 3))
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    dist = torch.sqrt((ii - (h - 1) / 2) ** 2 + (jj - (w - 1) / 2) ** 2)
    expected = torch.fft.ifftn(spectrum * (dist > radius), dim=(-2, -1)).abs().mean(1, keepdim=True)
    got = HighPassFilter(radius)(x)
    assert torch.allclose(got, expected, atol=1e-5)
    # and the radius matters: a larger disc removes more
    assert not torch.allclose(HighPassFilter(radius + 10)(x), expected, atol=1e-3)


@pytest.mark.parametrize("height,width", [(40, 56), (33, 17), (1, 5), (96, 160)])
def test_pass_mask_is_the_rolled_centred_disc_exactly(height, width):
    """The mask is indexed in the rolled frame (exportable); it must be, bit for bit, the
    centred disc rolled back by (H//2, W//2), at odd and even sizes."""
    radius = 7.3
    rows = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    centred = (torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2) > radius).float()
    expected = torch.roll(centred, (-(height // 2), -(width // 2)), (0, 1))
    assert torch.equal(HighPassFilter(radius).pass_mask(height, width, torch.device("cpu")), expected)


def test_paper_modules_are_where_the_readme_says():
    """The README's table of paper modules names classes and files: each class is in that file
    and is what FSANet actually uses for that part of the paper."""
    import importlib
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| ([^|]+) \| `([\w.]+)`(?:, `(\w+)`)? \| `([\w/]+)\.py` \|$", readme, re.M)
    assert len(rows) >= 7, rows
    for _, first, second, path in rows:
        module = importlib.import_module(path.replace("/", "."))
        for name in filter(None, (first.rsplit(".", 1)[-1], second)):
            assert hasattr(module, name), f"README: {name} is not in {path}.py"
    model = lib.FSANet.FSANet(backbone="pvt_v2_b0")
    for attribute, cls in [
        ("frequency_branch", FrequencyBranch),
        ("modality_fusion", MultiModalityFusion),
        ("scale_fusion", CollaborativeScaleFusion),
        ("feature_fusion", SelectiveFeatureFusion),
    ]:
        assert type(getattr(model, attribute)) is cls, attribute
    assert all(type(m) is HierarchicalContextFusion for m in model.context_fusion) and len(model.context_fusion) == 4


def test_csfm_widths_follow_the_channel_rule():
    c1, c2, c3, c4 = 16, 32, 48, 64
    csfm = CollaborativeScaleFusion((c1, c2, c3, c4)).eval()
    feats = [torch.randn(1, c, 64 // s, 64 // s) for c, s in zip((c1, c2, c3, c4), (4, 8, 16, 32))]
    x21, x32, x43 = csfm(*feats)
    assert x21.shape[1] == 4 * c2
    assert x32.shape[1] == 4 * c2 + 4 * c3 + 2 * c4
    assert x43.shape[1] == 2 * c4 + 4 * c2 + 4 * c3 + 4 * c4
    assert csfm.out_channels == (x21.shape[1], x32.shape[1], x43.shape[1])


def test_token_grid_convs_keep_channels_last_weights_through_loading(tmp_path, faithful_model):
    """PVT-v2's depthwise and spatial-reduction convs get a channels-last view of the tokens;
    their weights stay channels-last through loading and saving, so no copy is made."""
    from lib.checkpoint import build_from_checkpoint
    from lib.saving import save_checkpoint
    from models.backbones import token_grid_convs

    def check(model):
        convs = token_grid_convs(model.spatial_encoder)
        assert len(convs) == 16 + 13  # b2: one dwconv per block (3+4+6+3), sr in the first 3 stages
        for conv in convs:  # channels innermost (for a depthwise weight only the strides tell NCHW from NHWC)
            assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.stride(1) == 1

    check(faithful_model)
    model, _ = build_from_checkpoint(save_checkpoint(tmp_path / "m.pth", faithful_model))
    check(model)
    seen = []
    conv = token_grid_convs(model.spatial_encoder)[0]
    conv.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 64, 64))
    assert seen == [True]
