"""safetensors weights (lib/convert.py, lib/safetensors_file.py): exact round trips, the
config in the metadata, no pickle, and the loaders that take the file."""

from __future__ import annotations

import json
import struct
import zipfile

import pytest
import torch

from lib.checkpoint import build_from_checkpoint, load_fsanet_weights
from lib.configs import get_config
from lib.convert import main as convert_main
from lib.FSANet import FSANet, build_fsanet
from lib.keymap import AUTHORS_UNUSED, CheckpointError, authors_to_fsanet
from lib.saving import save_checkpoint


def _header(path):
    """The JSON header of a safetensors file, parsed by hand (8-byte length, then JSON)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length])


def test_authors_checkpoint_round_trips_exactly(authors_checkpoint, authors_recipe, tmp_path):
    out = tmp_path / "fsanet.safetensors"
    assert convert_main([str(authors_checkpoint), str(out)]) == 0

    header = _header(out)
    meta = header.pop("__metadata__")
    assert meta["format"] == "fsanet-reproduced" and meta["epoch"] == "99"
    assert json.loads(meta["config"])["backbone"] == "pvt_v2_b2"
    # this project's key names, every used tensor of the authors' file, the unused ones left out
    expected, skipped = authors_to_fsanet(authors_recipe)
    assert set(header) == set(expected)
    assert skipped and all(k.startswith(AUTHORS_UNUSED) for k in skipped)
    # no pickle: not torch.save's zip archive, and the file is exactly an 8-byte header length, the
    # JSON header and the raw tensor bytes the header's offsets cover
    assert not zipfile.is_zipfile(out)
    raw = out.read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    assert len(raw) == 8 + header_length + max(entry["data_offsets"][1] for entry in header.values())
    assert header["head.conv_out.weight"]["dtype"] == "F32"

    from_pth = FSANet().eval()
    load_fsanet_weights(from_pth, authors_checkpoint)
    from_st, report = build_from_checkpoint(out)
    assert report.layout == "project" and report.epoch == 99
    for key, tensor in from_pth.state_dict().items():
        assert torch.equal(from_st.state_dict()[key], tensor), key
        assert torch.equal(from_st.state_dict()[key], expected[key]), key


def test_small_config_travels_in_the_metadata(tmp_path):
    torch.manual_seed(3)
    model = build_fsanet(get_config("fsanet_small"))
    pth = save_checkpoint(tmp_path / "small.pth", model, epoch=7)
    out = tmp_path / "small.safetensors"
    assert convert_main([str(pth), str(out)]) == 0
    loaded, report = build_from_checkpoint(out)
    assert loaded.config == model.config and report.epoch == 7
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model.eval()(x)[0])


def test_resume_refuses_a_weights_only_file_and_pre_model_takes_it(tmp_path, synthetic_train):
    from conftest import train_args

    from lib.safetensors_file import save_safetensors
    from utils.training.start import prepare_model

    model = build_fsanet(get_config("fsanet_small"))
    path = save_safetensors(tmp_path / "w.safetensors", model.state_dict(), model.config, epoch=4)
    with pytest.raises(CheckpointError, match="weights-only file.*--pre_model"):
        prepare_model(train_args(tmp_path, synthetic_train, "--resume", str(path)))
    built, start = prepare_model(train_args(tmp_path, synthetic_train, "--pre_model", str(path)))
    assert start.epoch == 4 and start.optimizer is None
    assert all(torch.equal(built.state_dict()[k], v) for k, v in model.state_dict().items())


def test_bad_safetensors_files_get_one_clear_error(tmp_path):
    truncated = tmp_path / "cut.safetensors"
    good = tmp_path / "good.safetensors"
    model = build_fsanet(get_config("fsanet_small"))
    from lib.safetensors_file import save_safetensors

    save_safetensors(good, model.state_dict(), model.config)
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors file"):
        build_from_checkpoint(truncated)
    assert convert_main([str(good), str(tmp_path / "x.pth")]) == 2  # the output must be .safetensors
    assert not (tmp_path / "x.pth").exists()
