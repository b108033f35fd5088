"""FSANet on the Hugging Face Hub, tested offline: save_pretrained / from_pretrained, hub ids
for every weights flag through a hub cache built in huggingface_hub's documented layout
(``models--owner--name/snapshots/<rev>/…``, ``refs/main``), the model card, lib.convert's
folders and torch.hub. Nothing here touches the network (HF_HUB_OFFLINE)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, train_args
from PIL import Image

import app as app_cli
import test as test_cli
from lib.checkpoint import build_from_checkpoint, load_fsanet_weights
from lib.configs import get_config
from lib.convert import main as convert_main
from lib.FSANet import FSANet, build_fsanet
from lib.hub import CONFIG_NAME, WEIGHTS_NAME, model_card, resolve_weights
from lib.keymap import CheckpointError
from lib.safetensors_file import save_safetensors
from lib.saving import save_checkpoint
from tests.conftest import REVISION, cache_repo
from utils.data.synthetic import make_sample


@pytest.fixture()
def offline_cache(tmp_path, monkeypatch):
    """An empty HF cache, with the Hub unreachable by configuration."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture()
def small(tmp_path):
    """A seeded fsanet_small, its train.py-style checkpoint and its save_pretrained folder."""
    torch.manual_seed(3)
    model = build_fsanet(get_config("fsanet_small")).eval()
    pth = save_checkpoint(tmp_path / "small.pth", model, epoch=4)
    folder = tmp_path / "pretrained"
    model.save_pretrained(folder)
    return model, pth, folder


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_save_pretrained_round_trips_bit_for_bit_and_loads_strictly(small, tmp_path):
    model, _, folder = small
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", CONFIG_NAME, WEIGHTS_NAME]
    import json

    assert json.loads((folder / CONFIG_NAME).read_text()) == model.config  # the same dict as lib/configs
    loaded = FSANet.from_pretrained(folder)
    assert _same_weights(loaded, model) and not loaded.training and loaded.config == model.config
    extra = dict(model.state_dict(), **{"head.not_a_tensor_of_fsanet": torch.zeros(1)})
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    save_safetensors(tampered / WEIGHTS_NAME, extra, model.config)
    shutil.copy2(folder / CONFIG_NAME, tampered / CONFIG_NAME)
    with pytest.raises(CheckpointError, match=r"1 unexpected:\n    head.not_a_tensor_of_fsanet"):
        FSANet.from_pretrained(tampered)  # refused from the header, before any tensor is read


def test_a_hub_id_resolves_through_the_offline_cache_for_every_loader(small, offline_cache, tmp_path, synthetic_train):
    model, pth, folder = small
    cache_repo(offline_cache, "owner/fsanet-small", folder)
    assert _same_weights(FSANet.from_pretrained("owner/fsanet-small"), model)
    assert resolve_weights(f"hf:owner/fsanet-small@{REVISION}").name == WEIGHTS_NAME
    # test.py: the same maps from the .pth, the folder and the hub id
    image, _ = make_sample(np.random.default_rng(0), 96, 80)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(image).save(photos / "p.png")
    maps = {}
    for name, weights in (("pth", pth), ("folder", folder), ("hub", "hf:owner/fsanet-small")):
        out = tmp_path / f"maps_{name}"
        argv = ["--pth_path", str(weights), "--input", str(photos), "--save_path", str(out), "--testsize", "64"]
        assert test_cli.main([*argv, "--device", "cpu", "--workers", "0", "--no_progress"]) == 0
        maps[name] = (out / "p.png").read_bytes()
    assert maps["pth"] == maps["folder"] == maps["hub"]
    # train.py --pre_model and app.py --pth_path
    from utils.training.start import prepare_model

    built, start = prepare_model(train_args(tmp_path, synthetic_train, "--pre_model", "hf:owner/fsanet-small"))
    assert _same_weights(built, model) and start.epoch == 0
    segmenter = app_cli.make_segmenter(app_cli.build_parser().parse_args(["--pth_path", str(folder), "--testsize", "64"]))
    assert _same_weights(segmenter.model, model)


def test_a_missing_hub_entry_offline_is_one_line_naming_the_download(offline_cache, tmp_path, caplog):
    with pytest.raises(CheckpointError, match=r"hf:owner/absent: model.safetensors is not in the Hugging Face cache"):
        resolve_weights("hf:owner/absent")
    with pytest.raises(CheckpointError, match="hf:owner/name or hf:owner/name@revision"):
        resolve_weights("hf:no-owner")
    argv = ["--pth_path", "hf:owner/absent@v2", "--input", str(tmp_path / "none"), "--save_path", str(tmp_path / "out")]
    code = test_cli.main([*argv, "--device", "cpu", "--no_progress"])  # the weights are resolved first
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "hf download owner/absent --revision v2" in errors[0] and "\n" not in errors[0]
    assert not (tmp_path / "out").exists()
    from utils.training.run import TrainingRun

    with pytest.raises(CheckpointError, match="hf:owner/absent"):  # before the run folder is claimed
        TrainingRun(train_args(tmp_path / "run", tmp_path, "--pre_model", "hf:owner/absent")).__enter__()
    assert not (tmp_path / "run").exists()


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_model_card_renders_as_a_hub_card_with_the_eval_table(small, tmp_path):
    from utils.evaluation.reports import write_reports

    model, pth, _ = small
    results = {
        "FSANet": {"DIS-TE1": {"num": 4, "maxFm": 0.912, "wFm": 0.85, "MAE": 0.031, "Sm": 0.9, "meanEm": 0.93, "HCE": 120.0}}
    }
    paths = write_reports(results, tmp_path / "eval")
    out = tmp_path / "hub_folder"
    assert convert_main([str(pth), str(out), "--results", str(paths["json"])]) == 0
    card = (out / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "fsanet" and meta["pipeline_tag"] == "image-segmentation"
    assert {"dichotomous-image-segmentation", "image-segmentation"} <= set(meta["tags"])
    assert "hce" in meta["metrics"] and "license" in meta
    assert "| FSANet | DIS-TE1 | 4 | 0.912 | 0.850 | 0.031 | 0.900 | 0.930 | 120 |" in card
    assert f"{sum(p.numel() for p in model.parameters()):,}" in card and "@article{jiang2024fsanet" in card
    plain = model_card(model.config, 1)
    assert "metrics" not in _front_matter(plain) and "## Evaluation" not in plain
    assert _same_weights(FSANet.from_pretrained(out), model)
    # a folder that holds something else is refused, nothing written
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert convert_main([str(pth), str(tmp_path / "busy")]) == 2
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]


def test_convert_writes_a_folder_from_the_authors_checkpoint(authors_checkpoint, tmp_path):
    out = tmp_path / "fsanet"
    assert convert_main([str(authors_checkpoint), str(out)]) == 0
    reference = FSANet().eval()
    load_fsanet_weights(reference, authors_checkpoint)
    assert _same_weights(FSANet.from_pretrained(out), reference)


def test_torch_hub_load_from_the_checkout(small):
    model, _, folder = small
    loaded = torch.hub.load(str(ROOT), "fsanet_small", source="local", weights=str(folder), trust_repo=True)
    assert _same_weights(loaded, model) and not loaded.training
    fresh = torch.hub.load(str(ROOT), "fsanet_small", source="local", trust_repo=True)
    assert fresh.config == model.config and not fresh.training
    built, _ = build_from_checkpoint(folder)
    assert _same_weights(built, model)


def _cache_timm(cache: Path, name: str, state_dict: dict) -> None:
    """A timm ImageNet repository (``timm/<name>``) in the cache: its model.safetensors."""
    from safetensors.torch import save_file

    folder = cache / "_build" / name
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(folder / WEIGHTS_NAME))
    cache_repo(cache, f"timm/{name}", folder)


def _argv_without_random_backbones(tmp_path, data, *extra):
    from conftest import train_argv

    return [a for a in train_argv(tmp_path, data, *extra) if a != "--random_backbones"]


def test_default_backbones_are_timms_imagenet_weights_from_the_cache(offline_cache, tmp_path, synthetic_train):
    import timm

    import train as train_cli
    from utils.training.start import prepare_model

    torch.manual_seed(5)
    pvt, resnet = timm.create_model("pvt_v2_b0"), timm.create_model("resnet18")
    _cache_timm(offline_cache, "pvt_v2_b0.in1k", pvt.state_dict())
    _cache_timm(offline_cache, "resnet18.tv_in1k", resnet.state_dict())
    torch.manual_seed(0)  # the decoder's random init, as TrainingRun seeds it
    from_hub, _ = prepare_model(train_cli.parse_config(_argv_without_random_backbones(tmp_path, synthetic_train)))
    torch.save(pvt.state_dict(), tmp_path / "pvt.pth")
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    files = ["--pvt_weights", str(tmp_path / "pvt.pth"), "--resnet_weights", str(tmp_path / "resnet18.pth")]
    torch.manual_seed(0)
    from_files, _ = prepare_model(train_cli.parse_config(_argv_without_random_backbones(tmp_path, synthetic_train, *files)))
    assert _same_weights(from_hub, from_files)  # the same tensors whether from the cache or local files
    spatial = from_hub.spatial_encoder.body.state_dict()
    assert all(torch.equal(spatial[k], v) for k, v in pvt.state_dict().items() if k in spatial)
    frequency = from_hub.frequency_branch.encoder.body.state_dict()
    assert torch.equal(frequency["layer4.1.conv2.weight"], resnet.state_dict()["layer4.1.conv2.weight"])


def test_no_backbone_weights_and_no_random_flag_refuses_before_any_work(offline_cache, tmp_path, synthetic_train, caplog):
    import logging

    import train as train_cli

    out = tmp_path / "run"
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(_argv_without_random_backbones(out, synthetic_train))
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert code == 2 and len(errors) == 1 and "\n" not in errors[0]
    for needed in ("--pvt_weights", "--resnet_weights", "--random_backbones", "hf download timm/pvt_v2_b0.in1k"):
        assert needed in errors[0], needed
    assert not out.exists()  # no run folder claimed, no file read


def test_a_pretrained_folder_serves_the_web_app_and_the_export_like_its_checkpoint(small, tmp_path):
    """The folder and the original checkpoint give byte-identical maps through app.py and through
    an ONNX export (``python -m utils.deploy.export --pth_path FOLDER``)."""
    model, pth, folder = small
    image, _ = make_sample(np.random.default_rng(1), 96, 80)
    photo = tmp_path / "photo.png"
    Image.fromarray(image).save(photo)
    maps = []
    for weights in (pth, folder):
        args = app_cli.build_parser().parse_args(["--pth_path", str(weights), "--testsize", "64", "--device", "cpu"])
        maps.append(app_cli.make_segmenter(args).predict(photo).map)
    assert np.array_equal(maps[0], maps[1]) and maps[0].std() > 0
    pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e .[export]")
    pytest.importorskip("onnxscript", reason="the export extra is not installed: pip install -e .[export]")
    from utils.deploy.export import main as export_main
    from utils.inference.onnx_model import OnnxFSANet
    from utils.inference.processing import preprocess

    batch = preprocess(Image.fromarray(image), (64, 64))
    outputs = []
    for name, weights in (("pth", pth), ("folder", folder)):
        out = tmp_path / f"{name}.onnx"
        assert export_main(["--pth_path", str(weights), "--out", str(out), "--size", "64", "64"]) == 0
        outputs.append(OnnxFSANet(out)(batch)[0].numpy())
    assert np.array_equal(outputs[0], outputs[1])


def test_the_paper_configuration_starts_from_pvt_v2_b2_and_resnet50_in_the_cache(offline_cache, tmp_path, synthetic_train):
    import timm

    import train as train_cli
    from utils.training.start import prepare_model

    torch.manual_seed(6)
    pvt, resnet = timm.create_model("pvt_v2_b2"), timm.create_model("resnet50")
    _cache_timm(offline_cache, "pvt_v2_b2.in1k", pvt.state_dict())
    _cache_timm(offline_cache, "resnet50.tv_in1k", resnet.state_dict())
    argv = _argv_without_random_backbones(tmp_path, synthetic_train, "--config", "fsanet")
    model, _ = prepare_model(train_cli.parse_config(argv))
    spatial, frequency = model.spatial_encoder.body.state_dict(), model.frequency_branch.encoder.body.state_dict()
    assert torch.equal(spatial["stages.2.blocks.5.attn.kv.weight"], pvt.state_dict()["stages.2.blocks.5.attn.kv.weight"])
    assert torch.equal(frequency["layer3.5.conv3.weight"], resnet.state_dict()["layer3.5.conv3.weight"])
    assert not torch.equal(frequency["conv1.weight"][:, :1], resnet.state_dict()["conv1.weight"][:, :1])  # stem ~ N(0, 1)


def test_a_repository_with_only_pytorch_model_bin_is_read_too(offline_cache, tmp_path):
    import timm

    torch.manual_seed(7)
    resnet = timm.create_model("resnet18")
    folder = tmp_path / "bin_only"
    folder.mkdir()
    torch.save(resnet.state_dict(), folder / "pytorch_model.bin")
    (offline_cache / "models--timm--resnet18.tv_in1k" / "snapshots" / REVISION).mkdir(parents=True)
    shutil.copy2(folder / "pytorch_model.bin", offline_cache / "models--timm--resnet18.tv_in1k" / "snapshots" / REVISION)
    (offline_cache / "models--timm--resnet18.tv_in1k" / "refs").mkdir()
    (offline_cache / "models--timm--resnet18.tv_in1k" / "refs" / "main").write_text(REVISION)
    path = resolve_weights("hf:timm/resnet18.tv_in1k")
    assert path.name == "pytorch_model.bin"
    model = build_fsanet(get_config("fsanet_small"))
    from lib.backbone_weights import load_backbone_weights

    report = load_backbone_weights(model, "hf:timm/resnet18.tv_in1k", "frequency")
    assert report.layout == "resnet18_torchvision"
    body = model.frequency_branch.encoder.body.state_dict()
    assert torch.equal(body["layer2.0.conv1.weight"], resnet.state_dict()["layer2.0.conv1.weight"])
