"""ONNX export (utils/deploy/export.py) with the frequency branch, run by onnxruntime, and
``test.py --onnx`` (utils/inference/onnx_model.py). Needs the export extra; skipped without it.

Each test exports once (30–40 s on one core), so the checks on one file share a test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lib.configs import get_config
from lib.FSANet import build_fsanet

onnx = pytest.importorskip("onnx", reason="the export extra is not installed: pip install -e .[export]")
pytest.importorskip("onnxscript", reason="the export extra is not installed: pip install -e .[export]")
pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install -e .[export]")

from utils.common.extras import MissingExtraError, require_extra  # noqa: E402
from utils.deploy.export import export_onnx, verify_onnx  # noqa: E402
from utils.inference.onnx_model import OnnxError, OnnxFSANet  # noqa: E402


def _op_types(path):
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def test_paper_model_on_fixture_weights_exports_with_its_fft(faithful_model, tmp_path):
    """The authors' architecture with the recipe weights (radius 24) at a fixed 128×128.

    On these weights SFF's gate is chaotic (tests/test_equivalence.py): P1 moves by more
    than 1% of its std under a 1e-6 input change. So, as there, the outputs before SFF
    (P4, the frequency map) must agree everywhere and P1 on all but a few pixels."""
    path = export_onnx(faithful_model, tmp_path / "fsanet.onnx", size=(128, 128), all_outputs=True)
    assert "DFT" in _op_types(path)  # the high-pass is in the graph, not folded into a constant
    runner = OnnxFSANet(path)
    assert runner.fixed_size() == (128, 128) and runner.config == faithful_model.config

    torch.manual_seed(1)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        eager = faithful_model(x)
    exported = runner(x)
    assert len(exported) == 5
    for name, ours, theirs in zip(("P1", "P2", "P3", "P4", "frequency"), eager, exported):
        assert theirs.shape == ours.shape == (1, 1, 128, 128)
        ratio = (theirs - ours).abs() / ours.std()
        if name in ("P4", "frequency"):
            assert ratio.max() < 1e-4, name
        else:
            assert ratio.median() < 1e-4 and (ratio < 1e-4).float().mean() > 0.5, name
    (agreement,) = verify_onnx(path, faithful_model, [(128, 128)])
    assert agreement.ok and agreement.beyond_one < 0.01 * 128 * 128, agreement

    with pytest.raises(ValueError, match="exported for 128×128 inputs; run with --testsize 128"):
        runner.check_input(256, 1)
    with pytest.raises(ValueError, match="batches of 1"):
        runner.check_input(128, 2)


def test_fresh_model_dynamic_export_and_test_py_onnx(tmp_path):
    """A freshly initialised small FSANet, exported with free batch, H and W; test.py --onnx
    then writes the maps test.py --pth_path writes (within 1 grey level)."""
    from lib.saving import save_checkpoint
    from test import main as test_main

    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small")).eval()
    path = export_onnx(model, tmp_path / "small.onnx", size=(64, 64), dynamic=True)
    runner = OnnxFSANet(path)
    assert runner.fixed_size() is None and runner.fixed_batch() is None
    for shape in [(2, 3, 64, 64), (1, 3, 96, 160)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            eager = model(x)[0]
        assert torch.allclose(runner(x)[0], eager, rtol=1e-3, atol=1e-3 * float(eager.abs().max())), shape
    agreements = verify_onnx(path, model, [(64, 64), (96, 128)])
    assert all(a.max_difference <= 1 for a in agreements), agreements

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a.png", (90, 70)), ("b.jpg", (64, 100))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    pth = save_checkpoint(tmp_path / "small.pth", model)
    common = ["--input", str(photos), "--testsize", "64", "--workers", "0", "--no_progress", "--device", "cpu"]
    assert test_main(["--pth_path", str(pth), "--save_path", str(tmp_path / "torch"), *common]) == 0
    assert test_main(["--onnx", str(path), "--save_path", str(tmp_path / "onnx"), *common, "--batch_size", "2"]) == 0
    for stem in ("a", "b"):
        torch_map = np.array(Image.open(tmp_path / "torch" / f"{stem}.png"), dtype=np.int16)
        onnx_map = np.array(Image.open(tmp_path / "onnx" / f"{stem}.png"), dtype=np.int16)
        assert (
            torch_map.shape
            == onnx_map.shape
            == np.array(Image.open(photos / f"{stem}.{'png' if stem == 'a' else 'jpg'}")).shape[:2]
        )
        assert np.abs(torch_map - onnx_map).max() <= 1
        assert torch_map.std() > 0  # a real map, not a constant one

    # --amp belongs to PyTorch: refused with --onnx, before anything is written
    assert test_main(["--onnx", str(path), "--save_path", str(tmp_path / "amp"), *common, "--amp", "bf16"]) == 2
    assert not (tmp_path / "amp").exists() or not any((tmp_path / "amp").iterdir())


def test_a_missing_extra_is_named_with_its_install_command():
    with pytest.raises(MissingExtraError, match=r"no_such_module_xyz not installed.*pip install -e \.\[export\]"):
        require_extra("export", "ONNX export", "no_such_module_xyz")


def test_a_file_that_is_not_onnx_gets_one_error(tmp_path):
    bad = tmp_path / "fsanet.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(OnnxError, match="fsanet.onnx: onnxruntime cannot load it"):
        OnnxFSANet(bad)


def test_export_cli_writes_a_verified_file_and_refuses_bad_sizes(tmp_path, caplog):
    import logging

    from utils.deploy.export import main as export_main

    caplog.set_level(logging.INFO, logger="fsanet")
    out = tmp_path / "small.onnx"
    assert export_main(["--random_init", "fsanet_small", "--out", str(out), "--size", "64", "96"]) == 0
    assert OnnxFSANet(out).fixed_size() == (64, 96)
    assert "64×96: max" in caplog.text  # verified at the non-square export size
    bad = tmp_path / "bad.onnx"
    assert export_main(["--random_init", "fsanet_small", "--out", str(bad), "--size", "60", "64"]) == 2
    assert export_main(["--random_init", "fsanet_small", "--out", str(bad), "--verify_sizes", "128"]) == 2
    assert "a fixed-size export runs at 992×992 only" in caplog.text
    assert not bad.exists()
