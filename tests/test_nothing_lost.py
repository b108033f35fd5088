"""Nothing lost, round two: commands never destroy or pollute what they did not write, a run
that says it trained has trained, weights are checked before they are trusted, and the
cluster's signals end in one line. Every case runs the real command or function."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import eval as eval_cli
import test as test_cli
import train as train_cli
from lib.configs import get_config
from lib.convert import main as convert_main
from lib.FSANet import build_fsanet
from lib.keymap import FORMAT_NAME
from lib.safetensors_file import save_safetensors
from lib.saving import save_checkpoint
from tests.conftest import start_train, train_argv
from utils.common.ownership import MANIFEST, OwnershipError, claim_folder
from utils.data.synthetic import write_dataset
from utils.training.run_folder import LOCK_NAME, acquire_lock

REPO = Path(__file__).resolve().parents[1]
SMALL = get_config("fsanet_small")


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def small_pth(tmp_path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    save_checkpoint(path, build_fsanet(SMALL))
    return path


@pytest.fixture
def test_sets(tmp_path) -> Path:
    root = tmp_path / "sets"
    write_dataset(root / "DIS-TE1", 2, (64, 48), "authors", seed=3)
    return root


# ----------------------------------------------------------------------------- 1. no command destroys what it did not write


def test_demo_into_a_project_folder_is_refused_and_changes_nothing(tmp_path, caplog):
    import demo

    project = tmp_path / "project"
    write_dataset(project / "data" / "TrainDataset", 2, 48, "authors", seed=0)
    (project / "results" / "FSANet").mkdir(parents=True)
    (project / "results" / "FSANet" / "mine.png").write_bytes(b"a user's map")
    before = _snapshot(project)
    with pytest.raises(OwnershipError, match=r"--out .*project: holds files demo.py did not write \(data, results\)"):
        demo.run_demo(project, quick=True)
    assert _snapshot(project) == before
    with caplog.at_level(logging.ERROR):
        assert demo.main(["--out", str(project), "--quick"]) == 2  # the command: one line, exit 2
    assert "holds files demo.py did not write" in caplog.text and _snapshot(project) == before
    from utils.data import synthetic

    assert synthetic.main(["--out", str(project / "data" / "TrainDataset"), "--count", "2"]) == 0  # its own
    assert synthetic.main(["--out", str(project / "results"), "--count", "2"]) == 2


def test_test_py_refuses_mask_folders_and_other_peoples_files_but_reruns_its_own(tmp_path, small_pth, test_sets, caplog):
    photos = tmp_path / "X"
    write_dataset(photos, 2, 40, "authors", seed=5)  # X/Imgs + X/GT
    before = _snapshot(photos)
    for save in (photos / "GT", photos / "GT" / "maps", photos):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            code = test_cli.main(["--pth_path", str(small_pth), "--input", str(photos / "Imgs"), "--save_path", str(save)])
        assert code == 2, save
        assert any(t in caplog.text for t in ("ground-truth masks", "holds the outputs of utils.data.synthetic"))
    assert _snapshot(photos) == before

    out = tmp_path / "maps"
    argv = ["--pth_path", str(small_pth), "--test_path", str(test_sets), "--save_path", str(out), "--testsize", "64"]
    assert test_cli.main(argv + ["--workers", "0", "--no_progress"]) == 0
    assert json.loads((out / MANIFEST).read_text().splitlines()[0])["command"] == "test.py"
    assert test_cli.main(argv + ["--workers", "0", "--no_progress"]) == 0  # its own maps: replaced
    user_file = out / "DIS-TE1" / "synth_00001.png"
    manifest = (out / MANIFEST).read_text()
    (out / MANIFEST).write_text(manifest.replace('"DIS-TE1/synth_00001.png"\n', ""))  # as if the user put it there
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert test_cli.main(argv + ["--workers", "0", "--no_progress"]) == 2
    assert "would overwrite DIS-TE1/synth_00001.png, which test.py did not write" in caplog.text
    assert user_file.exists()


def test_eval_and_synthetic_refuse_folders_holding_other_files(tmp_path, small_pth, test_sets, caplog):
    preds = tmp_path / "preds"
    test_cli.main(["--pth_path", str(small_pth), "--test_path", str(test_sets), "--save_path", str(preds), "--workers", "0"])
    report = tmp_path / "paper"
    report.mkdir()
    (report / "results.md").write_text("my draft table")
    with caplog.at_level(logging.ERROR):
        code = eval_cli.main(["--pred_root", str(preds), "--gt_root", str(test_sets), "--save_dir", str(report)])
    assert code == 2 and "holds files eval.py did not write (results.md)" in caplog.text
    assert (report / "results.md").read_text() == "my draft table"
    # eval.py into test.py's folder: another command's outputs
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert eval_cli.main(["--pred_root", str(preds), "--gt_root", str(test_sets), "--save_dir", str(preds)]) == 2
    assert "holds the outputs of test.py, not of eval.py" in caplog.text
    with pytest.raises(OwnershipError, match="did not write"):
        write_dataset(test_sets, 2, 32)  # a user's dataset is never mixed with generated pairs
    # a claimed folder takes its own files again
    folder = claim_folder(tmp_path / "own", "utils.data.synthetic", "--out")
    folder.record(["a.png"])
    assert claim_folder(tmp_path / "own", "utils.data.synthetic", "--out").check(["a.png"]) == ["a.png"]


def test_convert_and_export_replace_only_their_own_kind(tmp_path, small_pth, caplog):
    target = tmp_path / "weights.safetensors"
    precious = tmp_path / "other.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(precious))  # someone else's safetensors file
    before = precious.read_bytes()
    with caplog.at_level(logging.ERROR):
        assert convert_main([str(small_pth), str(precious)]) == 2
    assert "exists and is not an FSANet safetensors file" in caplog.text and precious.read_bytes() == before
    assert convert_main([str(small_pth), str(target)]) == 0
    assert convert_main([str(small_pth), str(target)]) == 0  # its own earlier output: replaced
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert convert_main([str(target), str(target)]) == 2
    assert "is the input file" in caplog.text

    pytest.importorskip("onnxruntime")
    from utils.deploy import export

    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert export.main(["--pth_path", str(small_pth), "--out", str(small_pth), "--size", "64", "64"]) == 2
    assert "is the input file" in caplog.text


def test_an_export_that_fails_verification_leaves_the_earlier_file(tmp_path, small_pth, monkeypatch, caplog):
    pytest.importorskip("onnxruntime")
    from utils.deploy import export

    out = tmp_path / "fsanet.onnx"
    assert export.main(["--pth_path", str(small_pth), "--out", str(out), "--size", "64", "64"]) == 0
    good = out.read_bytes()
    bad = export.MapAgreement((64, 64), max_difference=9, beyond_one=500, pixels=4096, self_beyond_one=0)
    monkeypatch.setattr(export, "verify_onnx", lambda *a, **k: [bad])  # the verdict, not the file handling, is faked
    with caplog.at_level(logging.ERROR):
        assert export.main(["--pth_path", str(small_pth), "--out", str(out), "--size", "64", "64"]) == 1
    assert "the earlier" in caplog.text and out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsanet.onnx", "small.pth"]  # no temporary left
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert export.main(["--pth_path", str(small_pth), "--out", str(text), "--size", "64", "64"]) == 2
    assert "exists and is not an FSANet ONNX export" in caplog.text and text.read_text() == "not a model"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape", " run"])
def test_train_save_is_one_plain_folder_name(tmp_path, synthetic_train, caplog, name):
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(train_argv(tmp_path, synthetic_train, "--train_save", name, "--overwrite")) == 2
    assert "give one plain folder name" in caplog.text
    assert not (tmp_path / "checkpoints").exists()


def test_a_rewinding_resume_is_refused_or_keeps_the_later_epochs(tmp_path, synthetic_train, caplog):
    argv = train_argv(tmp_path, synthetic_train, "--epoch", "3", "--save_every", "1", "--train_save", "run")
    assert train_cli.main(argv) == 0
    run = tmp_path / "checkpoints" / "run"
    later = {name: (run / name).read_bytes() for name in ("FSANet-2.pth", "FSANet-3.pth", "latest.pth")}
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(argv + ["--resume", str(run / "FSANet-1.pth"), "--lr", "5e-5"]) == 2
    assert "goes back in this run: FSANet-2.pth (epoch 2), FSANet-3.pth (epoch 3)" in caplog.text
    assert all((run / n).read_bytes() == b for n, b in later.items())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert train_cli.main(argv + ["--resume", str(run / "FSANet-1.pth"), "--lr", "5e-5", "--overwrite"]) == 0
    aside = [p for p in run.iterdir() if p.is_dir() and p.name.startswith("rewound_after_epoch1_")]
    assert len(aside) == 1 and "(kept)" in caplog.text
    assert {n: (aside[0] / n).read_bytes() for n in later} == later  # the first branch, intact
    assert torch.load(run / "latest.pth", weights_only=True)["epoch"] == 3  # the new branch


def test_resume_of_a_run_that_never_finished_an_epoch_says_how_to_start_again(tmp_path, synthetic_train, caplog):
    run = tmp_path / "checkpoints" / "FSANet"
    run.mkdir(parents=True)
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(train_argv(tmp_path, synthetic_train, "--resume", str(run))) == 2
    assert "never finished an epoch (no latest.pth)" in caplog.text and "--overwrite" in caplog.text


# ----------------------------------------------------------------------------- 2. a run that says it trained, trained


def test_pre_model_that_trains_nothing_is_refused_and_fine_tune_trains(tmp_path, synthetic_train, caplog):
    first = train_argv(tmp_path, synthetic_train, "--epoch", "2", "--train_save", "base")
    assert train_cli.main(first) == 0
    weights = tmp_path / "checkpoints" / "base" / "latest.pth"  # epoch counter 2
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(train_argv(tmp_path, synthetic_train, "--epoch", "2", "--pre_model", str(weights)))
    assert code == 2
    assert "its epoch counter is 2 and --epoch is 2" in caplog.text and "--fine_tune" in caplog.text
    assert not list((tmp_path / "checkpoints" / "FSANet").glob("*.pth"))
    argv = train_argv(tmp_path, synthetic_train, "--epoch", "2", "--pre_model", str(weights), "--fine_tune")
    assert train_cli.main(argv) == 0
    tuned = torch.load(tmp_path / "checkpoints" / "FSANet" / "latest.pth", weights_only=True)
    assert tuned["epoch"] == 2 and len(tuned["history"]) == 2  # two epochs trained, counted from 0


def test_rates_whose_size_rounds_to_zero_are_refused_at_parse_time(tmp_path, synthetic_train, caplog):
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(train_argv(tmp_path, synthetic_train, "--rates", "0.1", "1")) == 2
    assert "--rates 0.1: at --trainsize 64 the size rounds to 0" in caplog.text
    assert not (tmp_path / "checkpoints").exists()


# ----------------------------------------------------------------------------- 3. weights checked before trusted


def test_a_damaged_tensor_fails_on_its_crc_naming_the_file(tmp_path, small_pth, test_sets, caplog):
    data = bytearray(small_pth.read_bytes())
    data[len(data) // 2] ^= 0x5A  # finite garbage inside a tensor: torch.load accepts it
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(bytes(data))
    torch.load(damaged, weights_only=True)
    with caplog.at_level(logging.ERROR):
        code = test_cli.main(["--pth_path", str(damaged), "--test_path", str(test_sets), "--save_path", str(tmp_path / "o")])
    assert code == 2 and "damaged.pth: damaged archive (Bad CRC-32 for file" in caplog.text
    assert not list((tmp_path / "o").rglob("*.png")) if (tmp_path / "o").exists() else True


def test_weights_that_give_non_finite_maps_fail_naming_the_checkpoint(tmp_path, test_sets, caplog):
    torch.manual_seed(0)
    model = build_fsanet(SMALL)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("weight") and tensor.dim() == 4:
                tensor.mul_(1e12)  # finite, but the forward overflows to inf/NaN
    path = tmp_path / "overflow.pth"
    save_checkpoint(path, model)
    out = tmp_path / "maps"
    with caplog.at_level(logging.ERROR):
        code = test_cli.main(
            ["--pth_path", str(path), "--test_path", str(test_sets), "--save_path", str(out), "--workers", "0"]
        )
    assert code == 2 and "overflow.pth: the model gives NaN or inf for synth_00000.jpg" in caplog.text
    assert not list(out.rglob("*.png"))


def test_weight_files_are_recognised_by_their_bytes(tmp_path, small_pth, test_sets, caplog):
    model = build_fsanet(SMALL)
    disguised = tmp_path / "looks_like.pth"
    save_safetensors(disguised, model.state_dict(), model.config)
    out = tmp_path / "maps"
    argv = ["--test_path", str(test_sets), "--save_path", str(out), "--testsize", "64", "--workers", "0"]
    assert test_cli.main(["--pth_path", str(disguised), *argv]) == 0  # a safetensors file named .pth still loads
    pytest.importorskip("onnxruntime")
    with caplog.at_level(logging.ERROR):
        assert test_cli.main(["--onnx", str(small_pth), *argv]) == 2
    assert "is a PyTorch checkpoint (torch.save); --pth_path takes it" in caplog.text
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["logits"])],
        "not_fsanet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(other))
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert test_cli.main(["--pth_path", str(other), *argv]) == 2
    assert "is an ONNX model" in caplog.text and "--onnx" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert test_cli.main(["--onnx", str(other), *argv]) == 2
    assert "other.onnx: not an FSANet export" in caplog.text


def _forge(path: Path, header: dict, payload: bytes) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)


def test_safetensors_metadata_is_validated_before_any_allocation(tmp_path, caplog, monkeypatch):
    model = build_fsanet(SMALL)
    good = tmp_path / "good.safetensors"
    save_safetensors(good, model.state_dict(), model.config)
    # a 1-tensor file whose config asks for a model of many GB: refused from the header
    huge = dict(model.config, channels=[2048, 2048, 2048, 2048], decoder_channels=2048)
    meta = {"format": FORMAT_NAME, "format_version": "1", "config": json.dumps(huge), "epoch": "", "source": ""}
    forged = tmp_path / "forged.safetensors"
    _forge(forged, {"__metadata__": meta, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
    built = []
    import lib.FSANet as fsanet_module

    real_init = fsanet_module.FSANet.__init__
    monkeypatch.setattr(
        fsanet_module.FSANet,
        "__init__",
        lambda self, *a, **k: (built.append(str(torch.empty(0).device)), real_init(self, *a, **k))[1],
    )
    from lib.checkpoint import build_from_checkpoint
    from lib.keymap import CheckpointError

    with pytest.raises(CheckpointError, match="its tensors do not fit the FSANet its config describes"):
        build_from_checkpoint(forged)
    assert built == ["meta"]  # only the meta-device model was built
    for bad, text in (
        ({**model.config, "channels": "lots"}, "has channels 'lots'"),
        ({**model.config, "backbone": "vit_giant"}, "names backbone 'vit_giant'"),
        ({**model.config, "hidden": 1}, "unknown keys ['hidden']"),
        (["not", "a", "mapping"], "is a list, not a mapping"),
    ):
        meta = dict(meta, config=json.dumps(bad))
        _forge(forged, {"__metadata__": meta, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
        with pytest.raises(CheckpointError, match=text.replace("[", r"\[").replace("]", r"\]")):
            build_from_checkpoint(forged)
    # integer tensors for float parameters
    state = {
        k: (v.to(torch.int32) if k.endswith("head.weight") or v.dim() == 4 else v) for k, v in model.state_dict().items()
    }
    ints = tmp_path / "ints.safetensors"
    save_safetensors(ints, state, model.config)
    with pytest.raises(CheckpointError, match="torch.int32 for a floating-point parameter"):
        build_from_checkpoint(ints)


# ----------------------------------------------------------------------------- 4. the cluster's signals


def _wait_for(process: subprocess.Popen, path: Path, text: str, timeout: float = 240) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and text in path.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.stdout.read() if process.stdout else ''}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_sigterm_stops_a_run_in_one_line_naming_latest_and_the_resume_command(tmp_path, synthetic_train):
    argv = train_argv(tmp_path, synthetic_train, "--epoch", "200", "--save_every", "1000")
    process = start_train(argv)
    log_file = tmp_path / "logs" / "FSANet" / "train.log"
    _wait_for(process, log_file, "epoch 2/200")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    run = tmp_path / "checkpoints" / "FSANet"
    epoch = torch.load(run / "latest.pth", weights_only=True)["epoch"]
    line = f"stopped by SIGTERM. Intact: {run / 'latest.pth'} (epoch {epoch}); continue with the same options plus "
    line += f"--resume {run}"
    assert line in output and line in log_file.read_text()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_locks_without_a_pid_or_from_another_host(tmp_path, caplog):
    folder = tmp_path / "run"
    folder.mkdir()
    lock = folder / LOCK_NAME
    lock.write_text("")  # left empty by a full disk
    from utils.training.run_folder import RunFolderError

    with pytest.raises(RunFolderError, match="just taking this folder"):
        acquire_lock(folder)  # a fresh empty lock: another run may be writing it right now
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with caplog.at_level(logging.WARNING):
        assert acquire_lock(folder) == lock
    assert "taking over an unreadable lock file" in caplog.text
    lock.write_text("node-17.cluster 4242\n")
    with pytest.raises(RunFolderError, match=rf"locked by process 4242 on host node-17.cluster .* delete {lock}"):
        acquire_lock(folder)


def test_a_killed_loader_worker_ends_in_one_line(tmp_path, synthetic_train, monkeypatch, caplog):
    from utils.data import dataset as dataset_module

    def die(self, index):  # the OOM killer, as the worker sees it
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(dataset_module.TrainDataset, "__getitem__", die)
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(train_argv(tmp_path, synthetic_train, "--workers", "1"))
    assert code == 2
    assert "a data-loading worker (pid" in caplog.text and "out-of-memory killer" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_training_file_deleted_mid_run_ends_in_one_line(tmp_path, synthetic_train, caplog, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(synthetic_train, data)
    from utils.data import dataset as dataset_module

    real = dataset_module.TrainDataset.__getitem__
    victim = sorted((data / "Imgs").iterdir())[0]

    def vanish_then_read(self, index):  # the file goes away after the pre-training check
        victim.unlink(missing_ok=True)
        return real(self, index)

    monkeypatch.setattr(dataset_module.TrainDataset, "__getitem__", vanish_then_read)
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(train_argv(tmp_path, data, "--workers", "1"))
    assert code == 2 and "in a data-loading worker:" in caplog.text and victim.name in caplog.text
    assert "Original Traceback" not in caplog.text


def die_in_the_worker(items, methods, hce_rule, *options):  # what the OOM killer does to an eval worker
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_eval_worker_ends_in_one_line(tmp_path, small_pth, test_sets, monkeypatch, caplog):
    from utils.evaluation import scoring

    preds = tmp_path / "preds"
    write_dataset(test_sets / "DIS-TE2", 2, (64, 48), "authors", seed=4)
    assert test_cli.main(["--pth_path", str(small_pth), "--test_path", str(test_sets), "--save_path", str(preds)]) == 0
    monkeypatch.setattr(scoring, "_evaluate_chunk", die_in_the_worker)
    argv = ["--pred_root", str(preds), "--gt_root", str(test_sets), "--save_dir", str(tmp_path / "e"), "--workers", "2"]
    with caplog.at_level(logging.ERROR):
        assert eval_cli.main(argv + ["--no_progress"]) == 2
    assert "an evaluation worker process died" in caplog.text and "fewer --workers" in caplog.text
    assert not (tmp_path / "e" / "results.md").exists()


# ----------------------------------------------------------------------------- 5. silent surprises become one warning


def test_validation_on_training_images_and_resume_on_other_data_warn(tmp_path, synthetic_train, caplog):
    argv = train_argv(tmp_path, synthetic_train, "--epoch", "2", "--val_path", str(synthetic_train))
    with caplog.at_level(logging.WARNING):
        assert train_cli.main(argv) == 0
    assert "is --train_path itself: 4 of its 4 images are training images" in caplog.text
    other = tmp_path / "other"
    write_dataset(other, 4, (80, 72), "authors", seed=9)
    caplog.clear()
    run = tmp_path / "checkpoints" / "FSANet"
    with caplog.at_level(logging.WARNING):
        train_cli.main(train_argv(tmp_path, other, "--epoch", "3", "--resume", str(run)))
    assert "resuming on other data than the checkpoint's run: --train_path" in caplog.text


def test_exif_orientation_is_warned_about_in_training_and_in_size_mismatches(tmp_path, caplog):
    from utils.data.pairing import scan_pairs, training_pairs

    root = tmp_path / "d"
    write_dataset(root, 2, (60, 40), "authors", seed=2)
    image = root / "Imgs" / "synth_00000.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # turned 90°
    Image.open(image).save(image, exif=exif)
    with caplog.at_level(logging.WARNING):
        training_pairs(root)
    assert "1 images carry an EXIF orientation tag (synth_00000.jpg)" in caplog.text
    mask = root / "GT" / "synth_00000.png"
    Image.open(mask).transpose(Image.Transpose.ROTATE_90).save(mask)  # drawn on the turned photo
    assert "EXIF orientation turns it to the mask's size" in scan_pairs(root).size_mismatch[0]


def test_binary_and_alpha_predictions_and_the_pixel_limit_are_named(tmp_path, caplog, monkeypatch):
    gt = tmp_path / "gt" / "DIS-TE1" / "GT"
    pred = tmp_path / "pred" / "DIS-TE1"
    gt.mkdir(parents=True)
    pred.mkdir(parents=True)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 255
    Image.fromarray(mask).save(gt / "a.png")
    Image.fromarray(mask).save(gt / "b.png")
    Image.fromarray((mask // 255).astype(np.uint8)).save(pred / "a.png")  # 0/1
    Image.fromarray(np.dstack([mask, mask, mask, mask])).save(pred / "b.png")  # RGBA
    argv = ["--pred_root", str(tmp_path / "pred"), "--gt_root", str(tmp_path / "gt"), "--save_dir", str(tmp_path / "e")]
    with caplog.at_level(logging.WARNING):
        assert eval_cli.main(argv + ["--no_curves", "--no_progress"]) == 0
    assert "1 maps saved as 0/1" in caplog.text and "(e.g. " in caplog.text
    assert "1 maps with an alpha channel, read as luminance × alpha" in caplog.text

    from utils.data.folders import DatasetError, list_images
    from utils.data.pairing import scan_pairs

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    root = tmp_path / "big"
    write_dataset(root, 1, 32, "authors")
    assert "larger than Pillow's limit of 100 pixels" in scan_pairs(root).unreadable[0]
    notes = tmp_path / "photo.txt"
    notes.write_text("x")
    with pytest.raises(DatasetError, match="not an accepted image file"):
        list_images(notes)


# ----------------------------------------------------------------------------- 6. the web app can run for weeks


def test_web_app_names_prunes_and_holds_paths_not_pixels(tmp_path):
    from utils.deploy.results import StoredPrediction, prune_results, render, run_upload, unique_stems
    from utils.deploy.webapp import Segmenter, check_port, parse_file_size

    assert unique_stems(["photo.jpg", "photo.png", "img.jpg", "img.jpg", "x.jpg"]) == [
        "photo_jpg",
        "photo_png",
        "img_jpg",
        "img_jpg_2",
        "x",
    ]
    photos = tmp_path / "photos"
    for index, folder in enumerate(("a", "b")):
        (photos / folder).mkdir(parents=True)
        rng = np.random.default_rng(index)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photos / folder / "img.jpg")
    torch.manual_seed(0)
    segmenter = Segmenter(build_fsanet(SMALL).eval(), testsize=64)
    root = tmp_path / "app"
    session = run_upload(segmenter, [photos / "a" / "img.jpg", photos / "b" / "img.jpg"], 128, root)
    page = render(session, 128)
    maps = sorted(Path(p).name for p in page["downloads"] if p.endswith("_map.png"))
    assert maps == ["img_jpg_2_map.png", "img_jpg_map.png"]  # two results, not one overwritten
    first, second = (np.array(Image.open(session.folder / m)) for m in ("img_jpg_map.png", "img_jpg_2_map.png"))
    assert not np.array_equal(first, second)
    assert all(isinstance(p, StoredPrediction) for p in session.predictions)
    assert not any(isinstance(v, np.ndarray) for p in session.predictions for v in vars(p).values())
    old = time.time() - 7200
    os.utime(session.folder, (old, old))
    assert prune_results(root, 3600) == [session.folder] and not session.folder.exists()

    with pytest.raises(ValueError, match="--max_file_size 'big'"):
        parse_file_size("big")
    assert parse_file_size("1.5gb") == 1_500_000_000
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ValueError, match=rf"--port {busy.getsockname()[1]}: cannot serve there"):
            check_port("127.0.0.1", busy.getsockname()[1])


def test_app_refuses_a_busy_port_before_loading_the_model(tmp_path, monkeypatch, caplog):
    pytest.importorskip("gradio")
    import app as app_cli

    monkeypatch.setattr(app_cli, "make_segmenter", lambda args: pytest.fail("the model was loaded"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with caplog.at_level(logging.ERROR):
            assert app_cli.main(["--port", str(busy.getsockname()[1])]) == 2
    assert "cannot serve there" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert app_cli.main(["--max_file_size", "lots"]) == 2
    assert "--max_file_size 'lots'" in caplog.text


def test_a_stop_while_a_loader_starts_its_workers_waits_until_it_is_built(tmp_path):
    """A real SIGINT inside ``iter(loader)`` (DataLoader workers starting) is raised only once
    the iterator is whole, so its clean-up runs instead of printing an AttributeError traceback."""
    script = tmp_path / "stop_in_iter.py"
    script.write_text(
        "import os, signal, time\n"
        "from utils.common.signals import Stopped, start_iterating, stop_handlers\n"
        "class Starting:\n"
        "    built = False\n"
        "    def __iter__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)  # the signal lands while the iterator is being built\n"
        "        time.sleep(0.2)\n"
        "        Starting.built = True\n"
        "        return iter([1])\n"
        "with stop_handlers():\n"
        "    try:\n"
        "        start_iterating(Starting())\n"
        "        print('not stopped')\n"
        "    except Stopped:\n"
        "        print('stopped after it was built' if Starting.built else 'stopped half-built')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "stopped after it was built", out.stdout + out.stderr
