"""train.py on CPU with generated data: what a step changes, overfitting, exact
resume, a kill during a save, DistributedDataParallel, weights and errors."""

from __future__ import annotations

import copy
import logging
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from conftest import ROOT, train_args
from torch.utils.data import DataLoader

from lib.checkpoint import load_fsanet_weights, read_checkpoint
from lib.configs import get_config
from lib.FSANet import FSANet, build_fsanet
from train import main as train_main
from utils.common.devices import unwrap
from utils.data.dataset import TrainDataset
from utils.data.pairing import training_pairs
from utils.training.adaxw import AdaXW
from utils.training.losses import deep_supervision_loss
from utils.training.recipe import StepConfig, train_one_epoch
from utils.training.run import run_training
from utils.training.start import prepare_model

TINY = get_config("fsanet_small")


def _batch(data, size=64):
    dataset = TrainDataset(training_pairs(data)[:2], size)
    return next(iter(DataLoader(dataset, batch_size=2)))


def test_one_step_updates_every_parameter_but_the_radius(synthetic_train):
    torch.manual_seed(0)
    # The paper's configuration, but with a radius that leaves part of a 64×64 spectrum: radius 100
    # removes all of it (every frequency is within 100 of the centre), the frequency map is then 0
    # and the frequency encoder gets no gradient, in the authors' model as here.
    model = FSANet(radius=8.0)
    model.frequency_branch.high_pass.radius.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = AdaXW(model.parameters(), lr=1e-3, weight_decay=0.0)  # no decay: only gradients move weights
    cfg = StepConfig(torch.device("cpu"), [64], 0)
    train_one_epoch(
        model, [_batch(synthetic_train)], optimizer, torch.amp.GradScaler("cpu", enabled=False), cfg, progress=False
    )
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == ["frequency_branch.high_pass.radius"]


def test_overfitting_one_batch_halves_the_loss(synthetic_train):
    torch.manual_seed(0)
    model = build_fsanet(**TINY)
    optimizer = AdaXW(model.parameters(), lr=1e-3)
    cfg = StepConfig(torch.device("cpu"), [64], 0)
    batch = _batch(synthetic_train)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    losses = [train_one_epoch(model, [batch], optimizer, scaler, cfg, progress=False)["loss"] for _ in range(30)]
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses


@pytest.mark.parametrize("amp,channels_last", [("bf16", False), ("none", True)])
def test_amp_and_channels_last_steps_run(synthetic_train, amp, channels_last):
    torch.manual_seed(0)
    model = build_fsanet(**TINY)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = AdaXW(model.parameters())
    cfg = StepConfig(
        torch.device("cpu"), [64], 0, amp_dtype=torch.bfloat16 if amp == "bf16" else None, channels_last=channels_last
    )
    batch = _batch(synthetic_train)
    before = copy.deepcopy(model)
    with torch.autocast("cpu", dtype=cfg.amp_dtype or torch.float32, enabled=amp == "bf16"):
        outputs = before(batch[0].contiguous(memory_format=torch.channels_last) if channels_last else batch[0])
    expected, _ = deep_supervision_loss(outputs[:4], batch[1])
    stats = train_one_epoch(model, [batch], optimizer, torch.amp.GradScaler("cpu", enabled=False), cfg, progress=False)
    assert stats["loss"] == pytest.approx(expected.item(), rel=1e-5)  # the step's loss, on the pre-step weights
    moved = [n for (n, p), q in zip(model.named_parameters(), before.parameters()) if not torch.equal(p, q)]
    assert len(moved) > 0.9 * len(list(model.parameters()))  # and the step updated the weights


def test_resume_continues_exactly(tmp_path, synthetic_train):
    """2 epochs straight == 1 epoch, then --resume for the second (weights, optimiser, LR)."""
    extra = ["--epoch", "2", "--save_every", "1", "--trainsize", "64", "--rates", "0.5", "1"]  # two rates: 32 and 64 px
    straight = run_training(train_args(tmp_path / "a", synthetic_train, *extra))
    first = tmp_path / "a" / "checkpoints" / "FSANet" / "FSANet-1.pth"
    resumed = run_training(train_args(tmp_path / "b", synthetic_train, *extra, "--resume", str(first)))
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]
    final_a = read_checkpoint(tmp_path / "a" / "checkpoints" / "FSANet" / "latest.pth")
    final_b = read_checkpoint(tmp_path / "b" / "checkpoints" / "FSANet" / "latest.pth")
    assert final_a["epoch"] == final_b["epoch"] == 2
    assert final_a["scheduler"] == final_b["scheduler"]
    for i, state in final_a["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], final_b["optimizer"]["state"][i]["exp_avg_sq"])
    # numbered, latest and tensorboard files are where the issue says
    assert (tmp_path / "a" / "checkpoints" / "FSANet" / "FSANet-2.pth").exists()
    assert list((tmp_path / "a" / "logs" / "FSANet").glob("events.out.tfevents.*"))
    assert "epoch 2/2 | loss" in (tmp_path / "a" / "logs" / "FSANet" / "train.log").read_text()


KILL_DURING_SECOND_SAVE = r"""
import os, signal, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import torch, lib.checkpoint as ck
calls = []
real_save = torch.save
def dying_save(obj, handle, *a, **k):
    calls.append(1)
    if len(calls) == 2:  # epoch 2's checkpoint: write half, then die
        handle.write(b"PK" + b"x" * 1000); handle.flush(); os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, handle, *a, **k)
ck.torch.save = dying_save
from conftest import train_args
from utils.training.run import run_training
run_training(train_args({out!r}, {data!r}, "--epoch", "3", "--save_every", "1"))
"""


def test_a_kill_during_a_save_leaves_a_loadable_latest(tmp_path, synthetic_train):
    code = KILL_DURING_SECOND_SAVE.format(
        root=str(ROOT), tests=str(ROOT / "tests"), out=str(tmp_path), data=str(synthetic_train)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    latest = tmp_path / "checkpoints" / "FSANet" / "latest.pth"
    checkpoint = read_checkpoint(latest)
    assert checkpoint["epoch"] == 1
    load_fsanet_weights(build_fsanet(**TINY), latest)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, port, out, data):
    from device_checks import ForeignDefaultDevice, guard_collectives

    import utils.training.run as training

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    # as on GPUs with NCCL: a tensor made without device= in the training step is off the
    # training device, and a collective given such a tensor fails
    guard_collectives(torch.device("cpu"))
    step_epoch = training.train_one_epoch

    def checked_epoch(model, *args, **kwargs):
        start = os.path.join(out, f"start{rank}.pt")
        if not os.path.exists(start):  # the weights each rank starts its first step from
            torch.save({n: p.detach().clone() for n, p in unwrap(model).named_parameters()}, start)
        with ForeignDefaultDevice():
            return step_epoch(model, *args, **kwargs)

    training.train_one_epoch = checked_epoch
    # 2 epochs: the first has lr > 0 (the poly schedule's last epoch has lr 0, so one epoch would move nothing)
    result = run_training(train_args(out, data, "--batchsize", "4", "--epoch", "2"))
    torch.save({n: p.detach() for n, p in result.model.named_parameters()}, os.path.join(out, f"rank{rank}.pt"))


def test_ddp_two_gloo_processes_end_with_equal_weights(tmp_path, synthetic_train):
    """Two gloo processes train like one; every collective gets tensors on the training device."""
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path), str(synthetic_train)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    start0, start1 = (torch.load(tmp_path / f"start{r}.pt", weights_only=True) for r in (0, 1))
    assert [k for k in start0 if not torch.equal(start0[k], start1[k])] == []  # DDP broadcast rank 0's weights
    assert [k for k in rank0 if not torch.equal(rank0[k], rank1[k])] == []  # all-reduced gradients: same steps
    moved = [k for k in rank0 if not torch.equal(rank0[k], start0[k])]
    assert len(moved) > 0.9 * len(rank0), f"only {len(moved)} of {len(rank0)} tensors moved"
    assert read_checkpoint(tmp_path / "checkpoints" / "FSANet" / "latest.pth")["epoch"] == 2


def test_pre_model_takes_the_authors_checkpoint_and_epoch(tmp_path, authors_checkpoint):
    args = train_args(tmp_path, tmp_path, "--pre_model", str(authors_checkpoint), "--config", "fsanet")
    model, start = prepare_model(args)
    assert start.epoch == 99  # the authors' FSANet-100.pth holds "opech": 99
    assert model.frequency_branch.high_pass.radius.item() == 24.0  # the fixture's weights


def test_random_backbones_are_announced_and_files_are_used(tmp_path, caplog):
    import timm

    args = train_args(tmp_path, tmp_path)
    with caplog.at_level(logging.WARNING):
        prepare_model(args)
    assert "THE BACKBONES ARE RANDOM" in caplog.text and "--pvt_weights" in caplog.text
    pvt = timm.create_model("pvt_v2_b0", pretrained=False)
    torch.save(pvt.state_dict(), tmp_path / "pvt_v2_b0.pth")
    resnet = timm.create_model("resnet50", pretrained=False)
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    caplog.clear()
    args = train_args(
        tmp_path,
        tmp_path,
        "--pvt_weights",
        str(tmp_path / "pvt_v2_b0.pth"),
        "--resnet_weights",
        str(tmp_path / "resnet50.pth"),
        "--freq_backbone",
        "resnet50",
    )
    with caplog.at_level(logging.WARNING):
        model, _ = prepare_model(args)
    assert "RANDOM" not in caplog.text
    assert torch.equal(model.spatial_encoder.body.stages[1].blocks[0].mlp.fc1.weight, pvt.stages[1].blocks[0].mlp.fc1.weight)
    assert torch.equal(model.frequency_branch.encoder.body.layer2[0].conv1.weight, resnet.layer2[0].conv1.weight)


@pytest.mark.parametrize(
    "case,expected",
    [
        ("unpaired", "images without a mask"),
        ("missing", "no such folder"),
        ("empty", "no image/mask pairs"),
        ("batch_one", "at least 2 images per batch"),
    ],
)
def test_bad_data_stops_before_training_with_its_message(tmp_path, synthetic_train, caplog, case, expected):
    import shutil

    data = tmp_path / "data"
    if case == "unpaired":
        shutil.copytree(synthetic_train, data)
        next((data / "GT").glob("*.png")).unlink()
    elif case == "empty":
        (data / "Imgs").mkdir(parents=True)
        (data / "GT").mkdir()
    elif case == "batch_one":
        data = synthetic_train
    argv = ["--train_path", str(data), "--out_root", str(tmp_path), "--device", "cpu", "--epoch", "1", "--random_backbones"]
    if case == "batch_one":
        argv += ["--batchsize", "1"]
    with caplog.at_level(logging.ERROR):
        assert train_main(argv) == 2
    assert expected in caplog.text
    assert not list((tmp_path / "checkpoints").rglob("*.pth"))  # nothing trained, nothing saved
    train_log = tmp_path / "logs" / "FSANet" / "train.log"
    assert train_log.exists() and expected in train_log.read_text()  # the reason is in the run's log too


def test_validation_reports_and_keeps_the_best(tmp_path, synthetic_train):
    result = run_training(train_args(tmp_path, synthetic_train, "--epoch", "1", "--val_path", str(synthetic_train)))
    record = result.history[-1]
    assert 0.0 <= record["MAE"] <= 1.0 and 0.0 <= record["maxFm"] <= 1.0
    best = read_checkpoint(tmp_path / "checkpoints" / "FSANet" / "best.pth")
    assert best["best"]["epoch"] == 1 and best["best"]["maxFm"] == record["maxFm"]
    assert "val MAE" in (tmp_path / "logs" / "FSANet" / "train.log").read_text()
