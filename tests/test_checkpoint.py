"""The one loader: every supported layout, strictness, bad files, atomic saving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from conftest import load_manifest
from official_weights import recipe_state_dict

from lib.backbone_weights import load_backbone_weights
from lib.checkpoint import build_from_checkpoint, load_fsanet_weights, read_checkpoint
from lib.configs import get_config
from lib.FSANet import FSANet, build_fsanet
from lib.keymap import CheckpointError, authors_to_fsanet
from lib.saving import save_checkpoint


def _fill(state_dict, seed=0):
    """Distinct random values for every float tensor (so a mix-up shows)."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in state_dict.items()}


@pytest.fixture(scope="module")
def paper_model():
    return FSANet().eval()


@pytest.fixture(scope="module")
def small_model():
    return build_fsanet(backbone="pvt_v2_b0").eval()


# ----------------------------------------------------------------------------- FSANet layouts


def test_authors_checkpoint_loads_and_reports(paper_model, authors_checkpoint, authors_recipe):
    report = load_fsanet_weights(paper_model, authors_checkpoint)
    assert report.layout == "authors"
    assert report.epoch == 99
    assert report.loaded == 1122
    assert sorted({k.split(".")[0] for k in report.skipped}) == ["conv_up2", "conv_up3", "conv_up4", "sff"]
    assert len(report.skipped) == 11
    sd = paper_model.state_dict()
    # one tensor per mapping rule lands where it should
    pairs = {
        "backbone.patch_embed2.proj.weight": "spatial_encoder.body.stages.1.downsample.proj.weight",
        "backbone.block1.0.mlp.dwconv.dwconv.weight": "spatial_encoder.body.stages.0.blocks.0.mlp.dwconv.weight",
        "backbone.norm4.weight": "spatial_encoder.body.stages.3.norm.weight",
        "resnet_f.layer3_1.5.conv2.weight": "frequency_branch.encoder.body.layer3.5.conv2.weight",
        "resnet_f.layer4_1.0.downsample.1.running_var": "frequency_branch.encoder.body.layer4.0.downsample.1.running_var",
        "frequency.radius": "frequency_branch.high_pass.radius",
        "conv_3.weight": "modality_fusion.levels.2.conv.weight",
        "se4.fc.2.weight": "modality_fusion.levels.3.se.fc.2.weight",
        "down1_8.conv3.weight": "scale_fusion.down1_8.conv3.weight",
        "upsample41_2.bn.running_mean": "scale_fusion.upsample41_2.bn.running_mean",
        "rfb3_after.branch1_3.1.conv.weight": "context_fusion.2.branch1_3.1.conv.weight",
        "sff.sea.global_att.4.weight": "feature_fusion.sea.global_att.4.weight",
        "conv_up1.bias": "head.conv_up.bias",
        "conv2_1.weight": "head.conv_out.weight",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(sd[ours], authors_recipe[theirs]), theirs


def test_bare_authors_state_dict_with_and_without_module(paper_model, authors_recipe, tmp_path):
    for prefix in ("", "module."):
        path = tmp_path / f"bare{prefix}.pth"
        torch.save({prefix + k: v for k, v in authors_recipe.items()}, path)
        assert load_fsanet_weights(paper_model, path).layout == "authors_state_dict"


def test_authors_mapping_is_pure_and_complete(authors_manifest, paper_model):
    converted, skipped = authors_to_fsanet(recipe_state_dict(authors_manifest))
    assert set(converted) == set(paper_model.state_dict())
    assert len(skipped) == 11


def test_bare_project_state_dict_with_and_without_module(small_model, tmp_path):
    weights = _fill(small_model.state_dict(), seed=1)
    for prefix in ("", "module."):
        path = tmp_path / f"ours{prefix}.pth"
        torch.save({prefix + k: v for k, v in weights.items()}, path)
        model = build_fsanet(backbone="pvt_v2_b0")
        assert load_fsanet_weights(model, path).layout == "fsanet_state_dict"
        for k, v in model.state_dict().items():
            assert torch.equal(v, weights[k]), k


def test_project_checkpoint_round_trip_rebuilds_the_architecture(small_model, tmp_path):
    small_model.load_state_dict(_fill(small_model.state_dict(), seed=2))
    optimizer = torch.optim.SGD(small_model.parameters(), lr=0.1, momentum=0.9)
    path = save_checkpoint(
        tmp_path / "ckpt" / "epoch_3.pth",
        small_model,
        epoch=3,
        optimizer=optimizer,
        args={"train_path": Path("data/x"), "lr": 1e-4},
    )
    raw = read_checkpoint(path)
    assert raw["format_version"] == 1 and raw["epoch"] == 3 and raw["args"]["train_path"] == "data/x"
    model, report = build_from_checkpoint(path)
    assert report.layout == "project" and report.epoch == 3
    assert model.config["backbone"] == "pvt_v2_b0"
    for (k, v), w in zip(model.state_dict().items(), small_model.state_dict().values()):
        assert torch.equal(v, w), k


def test_project_checkpoint_into_other_architecture_says_so(small_model, paper_model, tmp_path):
    path = save_checkpoint(tmp_path / "b0.pth", small_model)
    with pytest.raises(CheckpointError, match="pvt_v2_b0.*build the model from the checkpoint"):
        load_fsanet_weights(paper_model, path)


def test_project_checkpoint_radius_is_an_initial_value_not_architecture(tmp_path):
    trained = build_fsanet(backbone="pvt_v2_b0", radius=24.0)
    path = save_checkpoint(tmp_path / "r24.pth", trained)
    model = build_fsanet(backbone="pvt_v2_b0")  # radius 100 by default
    load_fsanet_weights(model, path)
    assert model.frequency_branch.high_pass.radius.item() == 24.0


# ----------------------------------------------------------------------------- strictness


def test_missing_unexpected_and_mismatched_keys_are_listed_together(small_model, tmp_path):
    weights = dict(small_model.state_dict())
    del weights["head.conv_up.bias"]
    weights["head.extra.weight"] = torch.zeros(1)
    weights["head.conv_out.weight"] = torch.zeros(2, 64, 3, 3)
    torch.save(weights, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        load_fsanet_weights(small_model, tmp_path / "broken.pth")
    text = str(err.value)
    assert "broken.pth" in text
    assert "1 missing" in text and "head.conv_up.bias" in text
    assert "1 unexpected" in text and "head.extra.weight" in text
    assert "1 shape mismatch" in text and "file (2, 64, 3, 3) vs model (1, 64, 3, 3)" in text


def test_authors_checkpoint_with_an_unknown_key_is_not_silently_dropped(paper_model, authors_recipe, tmp_path):
    weights = dict(authors_recipe)
    weights["conv_up5.weight"] = torch.zeros(1)  # not one of the known unused tensors
    torch.save({"model": weights, "opech": 1, "optimizer": {}, "loss": 0.0}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="unexpected:\n    conv_up5.weight"):
        load_fsanet_weights(paper_model, tmp_path / "x.pth")


# ----------------------------------------------------------------------------- ImageNet backbones


def test_official_pvt_v2_file_initialises_the_spatial_encoder(paper_model, authors_manifest, tmp_path):
    # The official pvt_v2_b2.pth: the authors' backbone keys without "backbone." plus a head.
    keys = {k[len("backbone.") :]: s for k, s in authors_manifest.items() if k.startswith("backbone.")}
    weights = recipe_state_dict(keys)
    weights.update({"head.weight": torch.zeros(1000, 512), "head.bias": torch.zeros(1000)})
    torch.save(weights, tmp_path / "pvt_v2_b2.pth")
    report = load_backbone_weights(paper_model, tmp_path / "pvt_v2_b2.pth", "spatial")
    assert report.layout == "pvt_v2_official"
    body = paper_model.spatial_encoder.body.state_dict()
    assert torch.equal(body["stages.2.blocks.5.attn.sr.weight"], weights["block3.5.attn.sr.weight"])
    assert torch.equal(body["patch_embed.norm.bias"], weights["patch_embed1.norm.bias"])


def test_timm_pvt_v2_state_dict_initialises_the_spatial_encoder(small_model, tmp_path):
    weights = _fill(timm.create_model("pvt_v2_b0", pretrained=False).state_dict(), seed=3)
    torch.save(weights, tmp_path / "timm_b0.pth")
    assert load_backbone_weights(small_model, tmp_path / "timm_b0.pth", "spatial").layout == "pvt_v2_timm"
    body = small_model.spatial_encoder.body.state_dict()
    assert torch.equal(body["stages.3.norm.weight"], weights["stages.3.norm.weight"])


def test_wrong_size_pvt_file_lists_the_mismatches(small_model, tmp_path):
    torch.save(timm.create_model("pvt_v2_b1", pretrained=False).state_dict(), tmp_path / "b1.pth")
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_backbone_weights(small_model, tmp_path / "b1.pth", "spatial")


@pytest.mark.parametrize("part", ["spatial", "frequency"])
def test_official_res2net_file_initialises_either_encoder(part, tmp_path):
    weights = recipe_state_dict(load_manifest("official_res2net50_v1b_26w_4s_keys.json"))
    torch.save(weights, tmp_path / "res2net50_v1b_26w_4s-3cf99910.pth")
    config = {"backbone": "res2net50"} if part == "spatial" else {"backbone": "pvt_v2_b0", "freq_backbone": "res2net50"}
    model = build_fsanet(**config)
    torch.manual_seed(0)
    report = load_backbone_weights(model, tmp_path / "res2net50_v1b_26w_4s-3cf99910.pth", part)
    assert report.layout == "res2net50_v1b"
    encoder = model.spatial_encoder if part == "spatial" else model.frequency_branch.encoder
    body = encoder.body.state_dict()
    assert torch.equal(body["layer2.1.convs.2.weight"], weights["layer2.1.convs.2.weight"])
    if part == "spatial":
        assert torch.equal(body["conv1.0.weight"], weights["conv1.0.weight"])
    else:  # 1-channel stem drawn from N(0, 1), as the authors do
        assert body["conv1.0.weight"].shape == (32, 1, 3, 3)
        assert report.reinitialised == ["conv1.0.weight ~ N(0, 1)"]


def test_torchvision_resnet50_initialises_the_frequency_encoder(small_model, tmp_path):
    weights = _fill(torchvision.models.resnet50().state_dict(), seed=4)
    torch.save(weights, tmp_path / "resnet50-0676ba61.pth")
    report = load_backbone_weights(
        small_model, tmp_path / "resnet50-0676ba61.pth", "frequency", generator=torch.Generator().manual_seed(0)
    )
    assert report.layout == "resnet50_torchvision"
    body = small_model.frequency_branch.encoder.body.state_dict()
    assert torch.equal(body["layer3.4.bn2.running_var"], weights["layer3.4.bn2.running_var"])
    stem = body["conv1.weight"]
    assert stem.shape == (64, 1, 7, 7)
    assert abs(stem.mean()) < 0.1 and 0.9 < stem.std() < 1.1  # N(0, 1), 3,136 draws


def test_backbone_file_for_the_wrong_encoder_is_refused(small_model, tmp_path):
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")
    with pytest.raises(CheckpointError, match="spatial encoder is pvt_v2_b0"):
        load_backbone_weights(small_model, tmp_path / "resnet50.pth", "spatial")
    with pytest.raises(CheckpointError, match="not an FSANet checkpoint.*--resnet_weights"):
        load_fsanet_weights(small_model, tmp_path / "resnet50.pth")


# ----------------------------------------------------------------------------- bad files


def test_file_that_is_not_a_checkpoint(small_model, tmp_path):
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    (tmp_path / "photo.pth").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    for name in ("notes.pth", "photo.pth"):
        with pytest.raises(CheckpointError, match=f"{name}: not a PyTorch checkpoint"):
            load_fsanet_weights(small_model, tmp_path / name)


def test_truncated_checkpoint(small_model, tmp_path):
    save_checkpoint(tmp_path / "full.pth", small_model)
    (tmp_path / "cut.pth").write_bytes((tmp_path / "full.pth").read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="cut.pth: not a PyTorch checkpoint, or a truncated one"):
        load_fsanet_weights(small_model, tmp_path / "cut.pth")


def test_checkpoint_of_another_architecture(small_model, tmp_path):
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "mobilenet.pth")
    with pytest.raises(CheckpointError, match="mobilenet.pth: a state dict of another architecture"):
        load_fsanet_weights(small_model, tmp_path / "mobilenet.pth")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run > pwned.txt",))


def test_pickle_that_carries_code_is_refused_and_not_run(small_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": _RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="evil.pth: refused to load.*posix.system"):
        load_fsanet_weights(small_model, tmp_path / "evil.pth")
    assert not (tmp_path / "pwned.txt").exists()


def test_missing_file_names_the_path(small_model, tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pth: no such file"):
        load_fsanet_weights(small_model, tmp_path / "nowhere.pth")


# ----------------------------------------------------------------------------- atomic saving


def test_interrupted_save_keeps_the_previous_file(small_model, tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "latest.pth", small_model, epoch=1)
    real_save = torch.save

    def dies_halfway(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise KeyboardInterrupt  # as if killed during the write

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, small_model, epoch=2)
    monkeypatch.setattr(torch, "save", real_save)
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temp files left


def test_build_from_checkpoint_is_ready_for_one_image_and_names_its_outputs(tmp_path):
    from lib.checkpoint import build_from_checkpoint
    from lib.FSANet import FSANetOutput, build_fsanet
    from lib.saving import save_checkpoint

    save_checkpoint(
        tmp_path / "small.pth",
        build_fsanet(get_config("fsanet_small")),
    )
    model, _ = build_from_checkpoint(tmp_path / "small.pth")
    assert not model.training  # a batch of one passes SFF's BatchNorm
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert isinstance(out, FSANetOutput) and out.p1 is out[0] and out.frequency_map is out[4]
    p1, p2, p3, p4, freq = out
    assert p1.shape == freq.shape == (1, 1, 64, 64)


def test_resume_and_pre_model_read_their_checkpoint_once(tmp_path, synthetic_train, monkeypatch):
    from conftest import train_args

    import lib.checkpoint as ck
    from utils.training.run import run_training
    from utils.training.start import prepare_model

    run_training(train_args(tmp_path, synthetic_train, "--epoch", "1"))
    latest = tmp_path / "checkpoints" / "FSANet" / "latest.pth"
    calls = []
    real_load = ck.torch.load
    monkeypatch.setattr(ck.torch, "load", lambda *a, **k: calls.append(a[0]) or real_load(*a, **k))
    for flag in ("--resume", "--pre_model"):
        calls.clear()
        prepare_model(train_args(tmp_path, synthetic_train, "--epoch", "2", flag, str(latest)))
        assert len(calls) == 1, flag
