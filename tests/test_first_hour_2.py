"""The first hour, round two: what a newcomer does in the first hour, through the real
commands: the demo twice, eval.py on two plain folders, a stop signalled to the whole
process group, torch.hub with weights of another configuration, refusals that name flags."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, start_train, train_argv

import eval as eval_cli
import test as test_cli
from lib.configs import get_config
from lib.FSANet import build_fsanet
from utils.data.synthetic import write_dataset

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


# ----------------------------------------------------------------------------- 1. the demo runs twice


def _demo(cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "demo.py"), "--quick", "--out", "results/demo"]
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_the_demo_runs_twice_into_the_same_folder(tmp_path):
    for _ in range(2):
        run = _demo(tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path / "results" / "demo"
    assert (out / "results" / "eval" / "results.json").exists()
    assert sorted(p.name for p in out.iterdir()) == [".fsanet-outputs", "checkpoints", "data", "figures", "logs", "results"]
    # a file of the user's beside the demo's folders is not in its way, and is left alone
    (out / "notes.txt").write_text("mine")
    run = _demo(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (out / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- 3. eval.py on two plain folders


def test_eval_scores_test_py_input_output_against_a_plain_mask_folder(tmp_path, small_pth, caplog):
    pairs = tmp_path / "mine"
    write_dataset(pairs, 3, (64, 48), "authors", seed=4)  # mine/Imgs + mine/GT
    maps = tmp_path / "out_maps"
    fast = ["--testsize", "64", "--workers", "0", "--no_progress", "--device", "cpu"]
    assert (
        test_cli.main(["--pth_path", str(small_pth), "--input", str(pairs / "Imgs"), "--save_path", str(maps), *fast]) == 0
    )
    save = tmp_path / "scores"
    argv = ["--pred_root", str(maps), "--gt_root", str(pairs / "GT"), "--save_dir", str(save), "--no_progress"]
    assert eval_cli.main(argv + ["--workers", "1"]) == 0
    import json

    results = json.loads((save / "results.json").read_text())
    scores = results["results"]["FSANet"]["GT"]
    assert scores["num"] == 3
    # the same numbers as the <root>/<set> layout gives
    nested_pred, nested_gt = tmp_path / "np" / "GT", tmp_path / "ng" / "GT" / "GT"
    nested_pred.mkdir(parents=True)
    nested_gt.mkdir(parents=True)
    for path in maps.glob("*.png"):
        (nested_pred / path.name).write_bytes(path.read_bytes())
    for path in (pairs / "GT").glob("*.png"):
        (nested_gt / path.name).write_bytes(path.read_bytes())
    save2 = tmp_path / "scores2"
    argv = [
        "--pred_root",
        str(tmp_path / "np"),
        "--gt_root",
        str(tmp_path / "ng"),
        "--save_dir",
        str(save2),
        "--no_progress",
    ]
    assert eval_cli.main(argv + ["--workers", "1"]) == 0
    nested = json.loads((save2 / "results.json").read_text())
    nested_scores = nested["results"]["FSANet"]["GT"]
    assert nested_scores == scores


def test_an_empty_root_no_longer_blames_dis_tr(tmp_path, caplog):
    (tmp_path / "gt" / "something").mkdir(parents=True)
    (tmp_path / "pred").mkdir()
    with caplog.at_level(logging.ERROR):
        code = eval_cli.main(["--pred_root", str(tmp_path / "pred"), "--gt_root", str(tmp_path / "gt")])
    assert code == 2 and "no set with masks found" in caplog.text and "DIS-TR" not in caplog.text


# ----------------------------------------------------------------------------- 6. the whole process group signalled


def _children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.parametrize("order", ["mid-epoch", "workers starting"])
def test_a_stop_signalled_to_the_process_group_is_reported_as_a_stop(tmp_path, synthetic_train, order):
    """``timeout``, ``scancel`` and a terminal's Ctrl-C signal every process of the group,
    DataLoader workers included: whichever dies first, the run reports a stop (exit 130),
    the intact checkpoint and the --resume command, never an out-of-memory worker."""
    argv = train_argv(tmp_path, synthetic_train, "--epoch", "500", "--save_every", "1000", "--workers", "2")
    process = start_train(argv, new_session=True)  # its own process group, as a shell job or a SLURM step has
    log_file = tmp_path / "logs" / "FSANet" / "train.log"
    deadline = time.time() + 300
    while not (log_file.exists() and "epoch 2/500" in log_file.read_text()):
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    if order == "workers starting":  # the moment the workers start (the stop is deferred until they are up)
        while not _children(process.pid):
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.002)
    os.killpg(process.pid, signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 130, output
    run = tmp_path / "checkpoints" / "FSANet"
    assert f"Intact: {run / 'latest.pth'}" in output and f"--resume {run}" in output, output
    assert "out-of-memory" not in output and "Traceback" not in output, output


# ----------------------------------------------------------------------------- 7. torch.hub and configurations


def test_torch_hub_refuses_weights_of_another_configuration(tmp_path, small_pth):
    import hubconf

    with pytest.raises(ValueError, match=r"fsanet_small.*hubconf|torch.hub.load\(.*'fsanet_small'"):
        hubconf.fsanet(weights=str(small_pth))
    model = hubconf.fsanet_small(weights=str(small_pth))
    from lib.configs import same_architecture

    assert same_architecture(model.config, get_config("fsanet_small"))


# ----------------------------------------------------------------------------- 8. refusals name the flag


def test_train_py_with_another_configurations_checkpoint_names_the_flag(tmp_path, synthetic_train, small_pth, caplog):
    import train as train_cli

    argv = train_argv(tmp_path, synthetic_train, "--epoch", "2", "--pre_model", str(small_pth))
    argv = [a for a in argv if a not in ("--config", "fsanet_small")]  # the paper configuration
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(argv) == 2
    assert "--config fsanet_small" in caplog.text, caplog.text


# ----------------------------------------------------------------------------- 9. ONNX post-processing order


def test_the_onnx_file_says_how_to_post_process(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from utils.deploy.export import export_onnx

    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small")).eval()
    path = export_onnx(model, tmp_path / "m.onnx", size=(64, 64))
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    steps = meta["postprocess"]
    order = [steps.index(word) for word in ("resize", "sigmoid", "min-max", "255")]
    assert order == sorted(order), steps  # resize the logits first, then sigmoid, min-max, ×255


# ----------------------------------------------------------------------------- 11. a utils.py of the user's own


def test_a_users_own_utils_module_is_named_when_it_hides_the_projects(tmp_path):
    (tmp_path / "utils.py").write_text("HELPER = 1\n")
    (tmp_path / "script.py").write_text("import lib.FSANet\n")
    run = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ImportError: 'utils' is {tmp_path / 'utils.py'}, a module of your own"), run.stderr
    assert "rename your utils.py" in last
    (tmp_path / "utils.py").unlink()
    fine = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert fine.returncode == 0, fine.stderr
