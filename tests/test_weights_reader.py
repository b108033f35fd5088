"""The one reader of weight files (issue 32): each check once, each file read once, the
network free of file code, one error format, the older import paths kept."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import test as test_cli
from lib.configs import get_config
from lib.FSANet import build_fsanet
from lib.weights import CheckpointError, open_weights, save_checkpoint, save_safetensors
from utils.data.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "lib" / "weights"


def _entries(run) -> Counter:
    """How often each weights module is entered from code of another module while ``run()`` runs
    (a function called; module bodies run by an import and ``__str__`` for a log line left out)."""
    counts: Counter = Counter()
    watched = {str(p): p.stem for p in WEIGHTS.glob("*.py")} | {str(ROOT / "lib" / "checkpoint.py"): "lib.checkpoint"}

    def profile(frame, event, arg):
        if event != "call":
            return
        name = watched.get(frame.f_code.co_filename)
        caller = frame.f_back.f_code.co_filename if frame.f_back is not None else ""
        function = frame.f_code.co_name
        if function.startswith("<") or function.startswith("__"):
            return
        if name is not None and caller != frame.f_code.co_filename:
            counts[name] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return counts


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pth_path_through_test_py_enters_each_weights_module_once(tmp_path, suffix):
    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small"))
    weights = tmp_path / f"small{suffix}"
    if suffix == ".pth":
        save_checkpoint(weights, model)
    else:
        save_safetensors(weights, model.state_dict(), model.config)
    write_dataset(tmp_path / "sets" / "DIS-TE1", 1, (64, 48), "authors", seed=3)
    argv = ["--pth_path", str(weights), "--test_path", str(tmp_path / "sets"), "--save_path", str(tmp_path / "o")]
    argv += ["--testsize", "64", "--workers", "0", "--device", "cpu"]
    counts = _entries(lambda: test_cli.main(argv))
    assert list((tmp_path / "o" / "DIS-TE1").glob("*.png"))  # the run did its work
    kind_module = "torch_file" if suffix == ".pth" else "safetensors_file"
    for module in ("reader", "sources", "kinds", kind_module, "keymap", "fit", "loading", "lib.checkpoint"):
        assert counts[module] == 1, (module, dict(counts))
    assert max(counts.values()) == 1, dict(counts)


def _rchar() -> int:
    with open("/proc/self/io") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("rchar"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's /proc/self/io")
def test_a_checkpoint_is_read_once_with_its_crcs_checked(small_pth, monkeypatch):
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(k.get("mmap")) or real_load(*a, **k))
    size = small_pth.stat().st_size
    before = _rchar()
    record = open_weights(small_pth)
    read = _rchar() - before
    assert loads == [True]  # one torch.load, memory-mapped: the CRC pass reads the same pages
    assert read < 0.1 * size, (read, size)  # read() calls: headers and the zip directory only
    assert record.layout == "project" and record.checked_config == record.config


def test_convert_check_passes_an_intact_file_and_names_a_damaged_member(tmp_path, small_pth, caplog):
    from lib.convert import main as convert_main

    with caplog.at_level(logging.INFO):
        assert convert_main(["--check", str(small_pth)]) == 0
    assert "intact; pytorch, project layout" in caplog.text
    data = bytearray(small_pth.read_bytes())
    data[len(data) // 2] ^= 0x5A
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert convert_main(["--check", str(damaged)]) == 2
    assert "damaged.pth: damaged archive (Bad CRC-32 for file '" in caplog.text and "/data/" in caplog.text
    assert "cannot be read" not in caplog.text  # said once, not wrapped in a second message


def test_one_error_format_for_every_loader(tmp_path):
    from lib.checkpoint import build_from_checkpoint, load_fsanet_weights
    from lib.FSANet import FSANet

    model = build_fsanet(get_config("fsanet_small"))
    state = dict(model.state_dict())
    state.pop("head.conv_out.bias")
    state["head.extra"] = torch.zeros(1)
    state["head.conv_up.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "bare.pth")
    save_checkpoint(tmp_path / "project.pth", model)
    checkpoint = torch.load(tmp_path / "project.pth", weights_only=True)
    checkpoint["model"] = state
    torch.save(checkpoint, tmp_path / "project_broken.pth")
    save_safetensors(tmp_path / "st.safetensors", state, model.config)
    (tmp_path / "folder").mkdir()
    save_safetensors(tmp_path / "folder" / "model.safetensors", state, model.config)
    calls = [
        lambda: load_fsanet_weights(build_fsanet(get_config("fsanet_small")), tmp_path / "bare.pth"),
        lambda: build_from_checkpoint(tmp_path / "project_broken.pth"),
        lambda: build_from_checkpoint(tmp_path / "st.safetensors"),
        lambda: FSANet.from_pretrained(tmp_path / "folder"),
    ]
    for call in calls:
        with pytest.raises(CheckpointError) as error:
            call()
        text = str(error.value)
        assert "its tensors do not fit" in text
        assert "  1 missing:\n    head.conv_out.bias" in text
        assert "  1 unexpected:\n    head.extra" in text
        assert "  1 shape mismatch:\n    head.conv_up.weight: file (3, 3) vs model" in text


def test_older_import_paths_name_the_same_objects():
    import lib.backbone_weights
    import lib.checkpoint
    import lib.hub
    import lib.keymap
    import lib.safetensors_file
    import lib.saving
    import lib.weight_files
    import lib.weights as weights

    assert lib.keymap.CheckpointError is lib.checkpoint.CheckpointError is weights.CheckpointError
    assert lib.saving.save_checkpoint is weights.save_checkpoint
    assert lib.backbone_weights.load_backbone_weights is weights.load_backbone
    assert lib.hub.resolve_weights is weights.resolve_weights
    assert lib.checkpoint.read_checkpoint is weights.read_checkpoint
    assert lib.safetensors_file.save_safetensors is weights.save_safetensors
    assert callable(lib.weight_files.check_archive) and callable(lib.weight_files.file_kind)
    assert lib.backbone_weights.DEFAULT_BACKBONE_WEIGHTS["pvt_v2_b2"] == "hf:timm/pvt_v2_b2.in1k"


def test_the_network_modules_import_no_weights_code():
    # (timm itself imports safetensors and huggingface_hub; the import-linter contract checks
    # that no network module imports them)
    code = (
        "import sys; import lib.network, lib.frequency, lib.head, models.backbones; "
        "print(sorted(m for m in sys.modules if m.startswith(('lib.weights', 'lib.FSANet', 'lib.checkpoint'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
