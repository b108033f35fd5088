"""The benchmark scripts run and write their JSON (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from conftest import ROOT

from lib.configs import get_config
from lib.FSANet import build_fsanet
from lib.saving import save_checkpoint


def _run(script, tmp_path, *args, capsys=None):
    """``python -m bench.<script> ARGS --json OUT``, in this process (the scripts' main takes argv)."""
    import importlib

    out = tmp_path / f"{script}.json"
    importlib.import_module(f"bench.{script}").main([*args, "--json", str(out)])
    return json.loads(out.read_text()), capsys.readouterr().out if capsys else ""


def test_model_bench(tmp_path, capsys):
    data, stdout = _run(
        "model",
        tmp_path,
        "--size",
        "64",
        "--runs",
        "1",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--impl",
        "ours",
        "authors",
        "--channels_last",
        "--check_maps",
        "--config",
        "fsanet_small",
        capsys=capsys,
    )
    assert data["config"]["size"] == 64 and data["config"]["impl"] == ["ours", "authors"]
    for impl in ("ours", "authors"):
        result = data["results"][impl]
        assert result["infer_min_s"] > 0
        assert result["maps_max_grey_diff"] <= 1  # NHWC changes float rounding only
    assert "faster than the authors' way" in stdout  # the comparison line is printed


def test_map_check_sees_a_changed_computation():
    import argparse

    import torch

    from bench.model import maps_against_eager
    from lib.configs import get_config
    from lib.FSANet import build_fsanet

    args = argparse.Namespace(
        size=64, weights=None, grad_checkpoint=None, channels_last=False, compile=False, amp="none", config="fsanet_small"
    )
    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small")).eval()
    assert maps_against_eager(model, args, torch.device("cpu"))["maps_max_grey_diff"] == 0
    model.register_forward_hook(lambda module, inputs, outputs: tuple(-t for t in outputs))
    assert maps_against_eager(model, args, torch.device("cpu"))["maps_max_grey_diff"] > 1


def test_loader_bench(tmp_path):
    data, _ = _run(
        "loader",
        tmp_path,
        "--data",
        str(tmp_path / "d"),
        "--count",
        "2",
        "--min_side",
        "200",
        "--max_side",
        "300",
        "--trainsize",
        "64",
        "--workers",
        "0",
    )
    assert set(data["results"]) == {"uncached", "cache_fill", "cached", "cached_over_uncached"}
    assert len(list((tmp_path / "d_cache").glob("*.npy"))) == 4


def test_eval_bench(tmp_path):
    data, _ = _run(
        "eval",
        tmp_path,
        "--data",
        str(tmp_path / "e"),
        "--count",
        "3",
        "--width",
        "64",
        "--height",
        "48",
        "--workers",
        "2",
        "--methods",
        "2",
        "--repeats",
        "1",
    )
    assert {"with_hce_workers1", "with_hce_workers2", "without_hce_speedup", "methods2_speedup"} <= set(data["results"])


def test_authors_style_model_computes_the_same_maps():
    """The speed comparison is only fair if the authors' way computes the same thing."""
    import torch

    from bench.authors_style import make_authors_style
    from lib.FSANet import FSANet

    torch.manual_seed(0)
    ours = FSANet(backbone="pvt_v2_b0", channels=(32, 64, 160, 256), decoder_channels=32, radius=8.0).eval()
    authors = FSANet(backbone="pvt_v2_b0", channels=(32, 64, 160, 256), decoder_channels=32, radius=8.0).eval()
    authors.load_state_dict(ours.state_dict())
    make_authors_style(authors)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(ours(x), authors(x)):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_gpu_check_without_a_gpu_runs_nothing_and_exits_0(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 0 and "no CUDA GPU" in proc.stdout
    assert not out.exists()


def test_gpu_checks_train_at_a_learning_rate_that_moves_the_weights(tmp_path):
    """Every training check runs an epoch with lr > 0 between the checkpoints it compares."""
    from bench.gpu_check import TRAIN_EPOCHS, weights_moved
    from utils.training.recipe import PolyDecay

    assert PolyDecay(TRAIN_EPOCHS)(1) > 0  # epoch 2 (scheduler index 1) of the checks' run
    model = build_fsanet(get_config("fsanet_small"))
    save_checkpoint(tmp_path / "FSANet-1.pth", model, epoch=1)
    save_checkpoint(tmp_path / "FSANet-2.pth", model, epoch=2)
    assert weights_moved(tmp_path, 1, 2)[0] is False  # an epoch at lr 0 is caught
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3)
    save_checkpoint(tmp_path / "FSANet-3.pth", model, epoch=3)
    ok, note = weights_moved(tmp_path, 2, 3)
    assert ok and "tensors moved in epoch 3" in note


def test_gpu_check_covers_every_gpu_path(tmp_path):
    from bench.gpu_check import checks

    table = checks(tmp_path, gpus=2, cpu=False, weights="w.pth")
    rows = {name: cmd for name, cmd, _, _ in table}
    trained = {name: moved for name, _, _, moved in table if name.startswith(("train", "torchrun", "resume"))}
    assert len(trained) == 7 and all(moved is not None for moved in trained.values())  # each asserts weights moved
    assert "train DataParallel" in rows and "torchrun --nproc_per_node 2" in rows
    assert "--nproc_per_node=2" in rows["torchrun --nproc_per_node 2"]
    for flag in (["--amp", "bf16"], ["--amp", "fp16"], ["--grad_checkpoint", "all"], ["--channels_last"]):
        assert any(" ".join(flag) in " ".join(cmd) for cmd in rows.values()), flag
    assert "--resume" in rows["resume to epoch 5"]
    maps = [cmd for name, cmd in rows.items() if name.startswith("test.py maps")]
    assert len(maps) == 2 and all("--check_maps" in c and "w.pth" in c for c in maps)
    largest = rows["largest step: bf16 + encoder checkpointing"]
    assert largest[largest.index("--size") + 1] == "928" and largest[largest.index("--train_batch") + 1] == "8"
    matrix = rows["inference ms/image: fp32, bf16, channels_last, compile"]
    assert matrix[matrix.index("--size") + 1] == "1024" and matrix[matrix.index("--batches") + 1 :][:2] == ["1", "8"]
    assert "--compile" in matrix and "w.pth" in matrix


def test_inference_matrix_times_every_variant_at_every_batch(tmp_path):
    out = tmp_path / "matrix.json"
    subprocess.run(
        [sys.executable, "-m", "bench.inference_matrix", "--size", "32", "--batches", "1", "2", "--runs", "1"]
        + ["--warmup", "1", "--device", "cpu", "--config", "fsanet_small", "--json", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    table = json.loads(out.read_text())["ms_per_image"]
    assert set(table) == {"fp32", "bf16", "fp32 channels_last", "bf16 channels_last"}
    assert all(set(cells) == {"1", "2"} and all(ms > 0 for ms in cells.values()) for cells in table.values())
