"""Contract tests over the backbone table (models/registry.py): every entry builds, runs
forward and backward at 64 px with random weights in each role it allows, has the feature
widths it declares, and loads every weight-file layout it accepts. Adding an entry adds
its tests; an entry whose layout no test can write fails here."""

from __future__ import annotations

import re

import pytest
import timm
import torch
import torchvision

from lib.FSANet import FSANet
from lib.weights import load_backbone
from lib.weights.keymap import _LAYOUT_MARKERS
from models.registry import BACKBONES, ROLES, BackboneSpec, get_backbone


def _official_pvt(state: dict) -> dict:
    """timm's PVT-v2 keys -> the PVT authors' original names (the inverse of timm's filter)."""
    out = {}
    for key, value in state.items():
        key = re.sub(r"^patch_embed\.", "patch_embed1.", key)
        key = re.sub(r"^stages\.(\d+)\.downsample\.", lambda m: f"patch_embed{int(m.group(1)) + 1}.", key)
        key = re.sub(r"^stages\.(\d+)\.blocks\.(\d+)\.", lambda m: f"block{int(m.group(1)) + 1}.{m.group(2)}.", key)
        key = re.sub(r"^stages\.(\d+)\.norm\.", lambda m: f"norm{int(m.group(1)) + 1}.", key)
        out[key.replace("mlp.dwconv.", "mlp.dwconv.dwconv.")] = value
    return out


#: a writer of each weight-file layout, from the spec it is for (seeded random ImageNet-like files).
LAYOUT_FILES = {
    "pvt_v2_timm": lambda spec: timm.create_model(spec.timm_name, pretrained=False).state_dict(),
    "pvt_v2_official": lambda spec: _official_pvt(timm.create_model(spec.timm_name, pretrained=False).state_dict()),
    "res2net50_v1b": lambda spec: timm.create_model("res2net50d", pretrained=False).state_dict(),
    "resnet50_torchvision": lambda spec: torchvision.models.resnet50().state_dict(),
    "resnet18_torchvision": lambda spec: torchvision.models.resnet18().state_dict(),
    "timm": lambda spec: timm.create_model(spec.timm_name, pretrained=False).state_dict(),
}

CASES = [pytest.param(name, role, id=f"{name}-{role}") for name, spec in BACKBONES.items() for role in spec.roles]
LOADS = [
    pytest.param(name, role, layout, id=f"{name}-{role}-{layout}")
    for name, spec in BACKBONES.items()
    for role in spec.roles
    for layout in spec.layouts
]


def _model(name: str, role: str) -> FSANet:
    spatial, frequency = (name, "resnet18") if role == "spatial" else ("pvt_v2_b0", name)
    torch.manual_seed(0)
    return FSANet(spatial, frequency, channels=(16, 32, 64, 128), decoder_channels=16, radius=8.0, drop_path_rate=0.0)


def test_every_layout_of_the_table_is_known_to_the_loader_and_to_these_tests():
    known = {layout for _, layout in _LAYOUT_MARKERS} | {"timm"}
    for spec in BACKBONES.values():
        assert set(spec.layouts) <= known, (spec.name, set(spec.layouts) - known)
        assert set(spec.layouts) <= set(LAYOUT_FILES), f"add a writer of {spec.layouts} to LAYOUT_FILES"
        assert set(spec.roles) <= set(ROLES) and spec.timm_name in timm.list_models()


@pytest.mark.parametrize("name, role", CASES)
def test_every_backbone_builds_runs_and_trains_in_each_role(name, role):
    spec = get_backbone(name, role)
    model = _model(name, role).train()
    encoder = model.spatial_encoder if role == "spatial" else model.frequency_branch.encoder
    assert encoder.backbone == name and encoder.body_channels == list(spec.channels)
    out = model(torch.randn(2, 3, 64, 64))
    assert all(t.shape == (2, 1, 64, 64) and torch.isfinite(t).all() for t in out)
    sum(t.mean() for t in out[:4]).backward()
    grads = [p.grad for p in encoder.body.parameters() if p.requires_grad]
    assert grads[0] is not None and grads[0].abs().sum() > 0  # the stem learns: the features reach the loss


@pytest.mark.parametrize("name, role, layout", LOADS)
def test_every_backbone_loads_every_layout_it_accepts(name, role, layout, tmp_path):
    spec = get_backbone(name, role)
    torch.manual_seed(1)
    state = LAYOUT_FILES[layout](spec)
    path = tmp_path / f"{name}_{layout}.pth"
    torch.save(state, path)
    model = _model(name, role)
    report = load_backbone(model, path, role, torch.Generator().manual_seed(0))
    assert report.layout == layout
    encoder = model.spatial_encoder if role == "spatial" else model.frequency_branch.encoder
    body = encoder.body.state_dict()
    # a tensor past the stem came from the file (the stem is re-drawn for the frequency role)
    key = [k for k in body if k.endswith("weight") and body[k].dim() == 4][-1]
    original = {k: v for k, v in state.items() if v.shape == body[key].shape and torch.equal(v, body[key])}
    assert original, f"{key} was not loaded from the {layout} file"


def test_an_entry_that_lacks_a_part_fails_at_once():
    with pytest.raises(ValueError, match="at least one weight-file layout"):
        BackboneSpec("x", "resnet18", ("spatial",), (), None, (64, 128, 256, 512))
    with pytest.raises(ValueError, match="roles from"):
        BackboneSpec("x", "resnet18", ("decoder",), ("timm",), None, (64, 128, 256, 512))
