"""Bad inputs and faults a DIS user meets: each gets a named answer, and nothing is lost.

Each test reproduces the fault, checks the message (or warning) names what is wrong,
and compares the files that must survive before and after.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_args, train_argv
from PIL import Image

import eval as eval_cli
import test as test_cli
import train as train_cli
from lib.checkpoint import read_checkpoint
from lib.configs import get_config
from lib.FSANet import build_fsanet
from lib.keymap import CheckpointError
from lib.saving import save_checkpoint
from utils.common.ownership import MANIFEST
from utils.data.checks import verify_pairs
from utils.data.dataset import TrainDataset
from utils.data.folders import DatasetError
from utils.data.images import read_gt_mask
from utils.data.pairing import training_pairs
from utils.training.run import run_training
from utils.training.run_folder import LOCK_NAME

TINY = get_config("fsanet_small")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train_argv(tmp_path, data, *extra):
    return train_argv(tmp_path, data, *extra)


def _predict(checkpoint, *args):
    """test.py on CPU at 64 px with ``args`` (its exit status)."""
    fast = ["--testsize", "64", "--device", "cpu", "--workers", "0", "--no_progress"]
    return test_cli.main(["--pth_path", str(checkpoint), *fast, *args])


# ----------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize("victim", ["image", "mask", "val"])
def test_truncated_files_are_named_before_the_first_step(tmp_path, synthetic_train, caplog, victim):
    data = _copy(synthetic_train, tmp_path / "data")
    val = _copy(synthetic_train, tmp_path / "val")
    folder = {"image": data / "Imgs", "mask": data / "GT", "val": val / "GT"}[victim]
    target = sorted(folder.iterdir())[1]
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 3])  # header intact, pixels cut
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(_train_argv(tmp_path, data, "--epoch", "2", "--val_path", str(val)))
    assert code == 2
    assert "cannot be read" in caplog.text and target.name in caplog.text
    assert not list((tmp_path / "checkpoints").rglob("*.pth"))  # stopped before any training


def test_checked_files_are_remembered_and_a_changed_file_is_checked_again(tmp_path, synthetic_train):
    pairs = training_pairs(synthetic_train)
    first = verify_pairs(pairs)
    assert first.decoded == 2 * len(pairs) and not first.bad
    again = verify_pairs(pairs, first.record)
    assert again.decoded == 0 and not again.bad
    data = _copy(synthetic_train, tmp_path / "data")
    pairs = training_pairs(data)
    record = verify_pairs(pairs).record
    image = pairs[0][0]
    image.write_bytes(image.read_bytes()[:200])
    os.utime(image, ns=(1, 1))  # another mtime: the record no longer vouches for it
    later = verify_pairs(pairs, record)
    assert later.decoded == 1 and image.name in later.bad[0]


def test_unreadable_cache_entries_are_cache_misses(tmp_path, synthetic_train):
    pairs = training_pairs(synthetic_train)[:1]
    cached = TrainDataset(pairs, 64, tmp_path / "cache")
    image, mask = cached[0]
    for entry in (tmp_path / "cache").glob("*.npy"):
        entry.write_bytes(b"")  # a disk that filled up left empty entries
    again = TrainDataset(pairs, 64, tmp_path / "cache")[0]
    assert torch.equal(again[0], image) and torch.equal(again[1], mask)


def test_checking_the_files_fills_the_cache_once(tmp_path, synthetic_train):
    from utils.common.distributed import DistInfo
    from utils.data.checks import verify_training_files

    pairs = training_pairs(synthetic_train)
    cached = TrainDataset(pairs, 64, tmp_path / "cache")
    verify_training_files(pairs, [], tmp_path / "cache" / "verified.json", 2, DistInfo(), False, cached.prepare)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2 * len(pairs)  # before any epoch
    for i in range(len(pairs)):
        for a, b in zip(cached[i], TrainDataset(pairs, 64)[i]):
            assert torch.equal(a, b)


def test_a_cache_that_cannot_be_written_only_costs_speed(tmp_path, synthetic_train, monkeypatch, caplog):
    import utils.data.dataset

    pairs = training_pairs(synthetic_train)[:2]
    expected = [TrainDataset(pairs, 64)[i] for i in range(2)]

    def full_disk(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(utils.data.dataset, "atomic_write", full_disk)
    dataset = TrainDataset(pairs, 64, tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        got = [dataset[i] for i in range(2)]
    for (a, b), (c, d) in zip(got, expected):
        assert torch.equal(a, c) and torch.equal(b, d)
    assert caplog.text.count("cannot write cache entries") == 1


# ----------------------------------------------------------------------------- masks saved 0/1 or in colour


def test_zero_one_and_colour_masks_are_read_as_intended(tmp_path):
    binary = np.zeros((20, 30), np.uint8)
    binary[5:15, 10:20] = 1
    Image.fromarray(binary).save(tmp_path / "01.png")
    red = np.zeros((20, 30, 3), np.uint8)
    red[5:15, 10:20, 0] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    Image.fromarray(binary * 255).save(tmp_path / "plain.png")
    assert np.array_equal(read_gt_mask(tmp_path / "01.png")[0], binary * 255)
    assert read_gt_mask(tmp_path / "01.png")[1] == "binary01"
    assert np.array_equal(read_gt_mask(tmp_path / "red.png")[0], binary * 255)  # luminance would give 76
    assert read_gt_mask(tmp_path / "red.png")[1] == "colour"
    assert read_gt_mask(tmp_path / "plain.png")[1] is None


def test_zero_one_masks_train_and_score_as_0_255_with_one_warning(tmp_path, synthetic_train, caplog):
    data = _copy(synthetic_train, tmp_path / "data")
    for mask in (data / "GT").iterdir():
        array = np.asarray(Image.open(mask))
        Image.fromarray((array > 127).astype(np.uint8)).save(mask)
    _, target = TrainDataset(training_pairs(data)[:1], 64)[0]
    assert target.max() == 1.0  # not 1/255
    with caplog.at_level(logging.WARNING):
        run_training(train_args(tmp_path / "run", data, "--epoch", "1"))
    assert "4 0/1 masks (maximum value 1), scaled to 0/255 (e.g." in caplog.text
    # evaluation reads ground truth the same way
    gt = tmp_path / "gt" / "DIS-TE1" / "GT"
    shutil.copytree(data / "GT", gt)
    pred = tmp_path / "pred" / "DIS-TE1"
    pred.mkdir(parents=True)
    for mask in gt.iterdir():
        Image.fromarray(np.asarray(Image.open(mask)) * 255).save(pred / mask.name)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (
            eval_cli.main(
                [
                    "--pred_root",
                    str(tmp_path / "pred"),
                    "--gt_root",
                    str(tmp_path / "gt"),
                    "--save_dir",
                    str(tmp_path / "ev"),
                    "--no_progress",
                    "--no_curves",
                ]
            )
            == 0
        )
    assert "DIS-TE1 ground truth: 4 0/1 masks" in caplog.text
    import json

    scores = json.loads((tmp_path / "ev" / "results.json").read_text())["results"]["FSANet"]["DIS-TE1"]
    assert scores["maxFm"] == pytest.approx(1.0) and scores["MAE"] == 0.0


# ----------------------------------------------------------------------------- one run per folder


def test_a_new_run_never_replaces_an_old_one(tmp_path, synthetic_train, caplog):
    argv = _train_argv(tmp_path, synthetic_train, "--epoch", "2", "--save_every", "1")
    assert train_cli.main(argv) == 0
    run = tmp_path / "checkpoints" / "FSANet"
    before = _snapshot(run)
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(argv) == 2
    assert "already holds a run" in caplog.text and "--resume" in caplog.text and "--overwrite" in caplog.text
    assert _snapshot(run) == before
    assert train_cli.main(argv + ["--overwrite", "--epoch", "1"]) == 0
    assert sorted(p.name for p in run.glob("*.pth")) == ["FSANet-1.pth", "latest.pth"]  # the old FSANet-2.pth went
    assert read_checkpoint(run / "latest.pth")["epoch"] == 1  # the new run's, not the old epoch 2
    assert len(list((tmp_path / "logs" / "FSANet").glob("events.out.tfevents.*"))) == 1
    assert "FSANet" in train_cli.build_parser().format_help()  # the default name is stated in -h


def test_a_second_concurrent_run_is_refused_naming_the_first(tmp_path, synthetic_train, caplog):
    run = tmp_path / "checkpoints" / "FSANet"
    run.mkdir(parents=True)
    import socket
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / LOCK_NAME).write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        with caplog.at_level(logging.ERROR):
            assert train_cli.main(_train_argv(tmp_path, synthetic_train, "--epoch", "1")) == 2
        assert f"pid {sleeper.pid}" in caplog.text
    finally:
        sleeper.kill()
        sleeper.wait()
    # a lock whose process has ended is taken over; a stale temporary file from a killed save is removed
    (run / ".latest.pth.123.abcd1234.tmp").write_bytes(b"x" * 100)
    assert train_cli.main(_train_argv(tmp_path, synthetic_train, "--epoch", "1")) == 0
    assert not (run / LOCK_NAME).exists() and not list(run.glob(".*.tmp"))


def test_unwritable_outputs_are_found_before_any_work(tmp_path, synthetic_train, caplog, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(_train_argv(blocker, synthetic_train, "--epoch", "1")) == 2
    assert str(blocker) in caplog.text
    # eval: the metrics are not computed when the table could not be written
    import utils.evaluation.reports

    monkeypatch.setattr(
        utils.evaluation.reports, "evaluate", lambda *a, **k: pytest.fail("metrics computed before the check")
    )
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert eval_cli.main(["--pred_root", str(tmp_path), "--gt_root", str(tmp_path), "--save_dir", str(blocker)]) == 2
    assert "--save_dir" in caplog.text and "is a file" in caplog.text


# ----------------------------------------------------------------------------- test.py never destroys data


@pytest.fixture()
def small_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    save_checkpoint(path, build_fsanet(**TINY))
    return path


def test_maps_are_never_written_over_inputs_or_masks(tmp_path, synthetic_train, small_checkpoint, caplog):
    sets = tmp_path / "sets"
    _copy(synthetic_train, sets / "DIS-TE1")
    before = _snapshot(sets)
    with caplog.at_level(logging.ERROR):
        code = _predict(
            str(small_checkpoint), "--test_path", str(sets), "--save_path", str(sets / "DIS-TE1" / ".."), "--sets", "DIS-TE1"
        )
    assert code == 2  # the maps would be mixed into the user's dataset (<save_path>/DIS-TE1 is the set itself)
    assert "holds files test.py did not write (DIS-TE1)" in caplog.text
    assert sorted(p.name for p in (sets / "DIS-TE1").iterdir()) == [MANIFEST, "GT", "Imgs"]  # as copied
    for name in ("GT", "Imgs"):
        caplog.clear()
        out = tmp_path / f"escape_{name}"
        out.mkdir()
        (out / "DIS-TE1").symlink_to(sets / "DIS-TE1" / name)  # <save_path>/DIS-TE1 resolves to masks or images
        with caplog.at_level(logging.ERROR):
            assert _predict(str(small_checkpoint), "--test_path", str(sets), "--save_path", str(out)) == 2
        assert "holds the input images or the ground-truth masks" in caplog.text
    inputs = {k: v for k, v in _snapshot(sets).items() if k.parts[1] in ("GT", "Imgs")}
    assert inputs == {k: v for k, v in before.items() if k.parts[1] in ("GT", "Imgs")}


def test_input_images_sharing_a_stem_get_two_maps(tmp_path, small_checkpoint, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(photos / "photo.jpg")
    Image.fromarray(rng.integers(0, 255, (48, 32, 3), dtype=np.uint8)).save(photos / "photo.png")
    with caplog.at_level(logging.INFO):
        assert _predict(str(small_checkpoint), "--input", str(photos), "--save_path", str(tmp_path / "maps")) == 0
    maps = {p.name: Image.open(p).size for p in (tmp_path / "maps").glob("*.png")}
    assert maps == {"photo_jpg.png": (56, 40), "photo_png.png": (32, 48)}
    assert "input: 2 maps written" in caplog.text
    # writing next to the inputs is refused (photo.png would be overwritten)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert (
            test_cli.main(
                [
                    "--pth_path",
                    str(small_checkpoint),
                    "--input",
                    str(photos),
                    "--save_path",
                    str(photos),
                    "--testsize",
                    "64",
                    "--device",
                    "cpu",
                    "--workers",
                    "0",
                ]
            )
            == 2
        )
    assert "holds the input images" in caplog.text


def test_a_full_disk_during_prediction_keeps_the_maps_already_written(tmp_path, small_checkpoint, monkeypatch, caplog):
    import utils.inference.writing

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(photos / name)
    real_write = utils.inference.writing.atomic_write_bytes  # the map writer (utils/inference/writing.py)

    def filling_disk(path, data):
        if path.name == "b.png":
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path}; nothing was written")
        return real_write(path, data)

    monkeypatch.setattr(utils.inference.writing, "atomic_write_bytes", filling_disk)
    with caplog.at_level(logging.ERROR):
        assert _predict(small_checkpoint, "--input", str(photos), "--save_path", str(tmp_path / "maps")) == 2
    assert "no space left on device" in caplog.text and "Traceback" not in caplog.text
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [MANIFEST, "a.png"]
    assert Image.open(tmp_path / "maps" / "a.png").size == (32, 32)


def test_exif_rotated_photos_get_maps_in_the_viewers_orientation(tmp_path, small_checkpoint):
    photos = tmp_path / "photos"
    photos.mkdir()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 64, 3), dtype=np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(photos / "rotated.jpg", exif=exif)
    assert _predict(str(small_checkpoint), "--input", str(photos), "--save_path", str(tmp_path / "maps")) == 0
    assert Image.open(tmp_path / "maps" / "rotated.png").size == (40, 64)  # as a viewer shows it


def test_empty_input_folder_fails(tmp_path, small_checkpoint, caplog):
    (tmp_path / "empty").mkdir()
    with caplog.at_level(logging.ERROR):
        assert (
            test_cli.main(["--pth_path", str(small_checkpoint), "--input", str(tmp_path / "empty"), "--device", "cpu"]) == 2
        )
    assert "no image files found" in caplog.text


# ----------------------------------------------------------------------------- checkpoints


def test_weights_with_nan_are_refused_by_name(tmp_path):
    model = build_fsanet(**TINY)
    state = model.state_dict()
    state["head.conv_out.weight" if "head.conv_out.weight" in state else next(iter(state))].fill_(float("nan"))
    bad_key = next(k for k, v in state.items() if v.is_floating_point() and torch.isnan(v).any())
    torch.save(state, tmp_path / "nan.pth")
    from lib.checkpoint import load_fsanet_weights

    with pytest.raises(CheckpointError, match=f"NaN or inf values \\({bad_key}"):
        load_fsanet_weights(build_fsanet(**TINY), tmp_path / "nan.pth")


class Custom:
    """A class a checkpoint may carry (unpickling it would run code)."""


def test_checkpoint_paths_and_contents_get_named_answers(tmp_path, caplog):
    run = tmp_path / "checkpoints" / "FSANet"
    run.mkdir(parents=True)
    (run / "best.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="a folder, not a checkpoint file.*best.pth"):
        read_checkpoint(run)

    torch.save({"model": {}, "extra": Custom()}, tmp_path / "custom.pth")
    with pytest.raises(CheckpointError, match="class test_bad_inputs.Custom"):
        read_checkpoint(tmp_path / "custom.pth")
    torch.save(build_fsanet(**TINY).state_dict(), tmp_path / "bare_small.pth")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "photo.png")
    with caplog.at_level(logging.ERROR):
        assert (
            test_cli.main(
                [
                    "--pth_path",
                    str(tmp_path / "bare_small.pth"),
                    "--input",
                    str(tmp_path / "photo.png"),
                    "--save_path",
                    str(tmp_path / "o"),
                    "--device",
                    "cpu",
                ]
            )
            == 2
        )
    assert "A bare state dict does not say its architecture" in caplog.text


# ----------------------------------------------------------------------------- flags, signals, disk


@pytest.mark.parametrize("flag", ["--save_every", "--val_every", "--epoch", "--batchsize"])
def test_zero_counts_are_refused_when_parsing(flag, capsys):
    with pytest.raises(SystemExit):
        train_cli.build_parser().parse_args(["--train_path", "x", flag, "0"])
    assert "expected a whole number ≥ 1" in capsys.readouterr().err


def test_sizes_are_rounded_to_multiples_of_32_with_a_note(caplog):
    from utils.inference.config import PredictConfig
    from utils.training.config import TrainConfig

    with caplog.at_level(logging.WARNING):
        config = train_cli.parse_config(["--trainsize", "100", "--val_size", "200"])
    assert (
        (config.trainsize, config.val_size) == (96, 192) and "--trainsize 100" in caplog.text and "using 96" in caplog.text
    )
    assert TrainConfig(trainsize=720).trainsize == 704  # built in code: the same rule, not only the CLI's
    assert PredictConfig(testsize=1000).testsize == 992


@pytest.mark.parametrize("fault", ["ctrl_c", "diverged", "disk_full"])
def test_faults_during_training_end_in_one_line_naming_what_survived(tmp_path, synthetic_train, caplog, monkeypatch, fault):
    argv = _train_argv(tmp_path, synthetic_train, "--epoch", "3", "--save_every", "1")
    import utils.training.run as training

    real_epoch = training.train_one_epoch
    calls = []

    def faulty_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            if fault == "ctrl_c":
                raise KeyboardInterrupt
            if fault == "diverged":
                raise FloatingPointError("epoch 2/3: the loss became nan at size 64")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", faulty_epoch)
    if fault == "disk_full":  # the bare error a full disk gives, below the atomic write: its message is fileio's
        real_save = torch.save

        def full_disk(obj, handle, *args, **kwargs):
            if isinstance(obj, dict) and obj.get("epoch") == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_save(obj, handle, *args, **kwargs)

        monkeypatch.setattr(torch, "save", full_disk)
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(argv)
    latest = tmp_path / "checkpoints" / "FSANet" / "latest.pth"
    assert read_checkpoint(latest)["epoch"] == 1  # epoch 1's checkpoint survived
    assert code == (130 if fault == "ctrl_c" else 2)
    assert f"{latest} (epoch 1)" in caplog.text
    expected = {
        "ctrl_c": "--resume",
        "diverged": "the loss became nan",
        "disk_full": f"no space left on device while writing {latest}; the previous latest.pth is intact",
    }
    assert expected[fault] in caplog.text
    assert "Traceback" not in caplog.text
    assert "stopped:" in (tmp_path / "logs" / "FSANet" / "train.log").read_text()


# ----------------------------------------------------------------------------- misleading messages


def test_pairing_messages_say_what_is_wrong(tmp_path, synthetic_train):
    mismatch = _copy(synthetic_train, tmp_path / "mismatch")
    for mask in (mismatch / "GT").iterdir():
        Image.open(mask).resize((10, 10)).save(mask)
    with pytest.raises(DatasetError, match="different sizes.*the layout is fine"):
        training_pairs(mismatch)
    duplicate = _copy(synthetic_train, tmp_path / "duplicate")
    image = sorted((duplicate / "Imgs").iterdir())[0]
    Image.open(image).save(image.with_suffix(".png"))
    with pytest.raises(DatasetError) as error:
        training_pairs(duplicate)
    assert "more than one file" in str(error.value) and "masks without an image" not in str(error.value)


def test_one_pair_is_told_to_add_images(tmp_path, synthetic_train, caplog):
    one = tmp_path / "one"
    (one / "Imgs").mkdir(parents=True)
    (one / "GT").mkdir()
    image = sorted((synthetic_train / "Imgs").iterdir())[0]
    shutil.copy(image, one / "Imgs")
    shutil.copy(synthetic_train / "GT" / (image.stem + ".png"), one / "GT")
    with caplog.at_level(logging.ERROR):
        assert train_cli.main(_train_argv(tmp_path, one, "--epoch", "2")) == 2
    assert "needs at least 2" in caplog.text and "add images" in caplog.text and "lower --batchsize" not in caplog.text


def _eval_sets(root: Path) -> Path:
    gt = root / "gt" / "DIS-TE1" / "GT"
    pred = root / "pred" / "DIS-TE1"
    gt.mkdir(parents=True)
    pred.mkdir(parents=True)
    for i in range(3):
        mask = np.zeros((32, 40), np.uint8)
        mask[8:24, 10:30] = 255
        Image.fromarray(mask).save(gt / f"m{i}.png")
        Image.fromarray(mask // 2 + 60).save(pred / f"m{i}.png")
    return root


def _eval(root, *extra):
    return eval_cli.main(
        [
            "--pred_root",
            str(root / "pred"),
            "--gt_root",
            str(root / "gt"),
            "--save_dir",
            str(root / "ev"),
            "--no_progress",
            "--no_curves",
            *extra,
        ]
    )


def test_eval_refuses_ambiguous_stems_and_names_unreadable_predictions(tmp_path, caplog):
    root = _eval_sets(tmp_path)
    Image.open(root / "pred" / "DIS-TE1" / "m0.png").save(root / "pred" / "DIS-TE1" / "m0.jpg")
    with caplog.at_level(logging.ERROR):
        assert _eval(root) == 2
    assert "share a stem" in caplog.text and "m0.jpg" in caplog.text
    (root / "pred" / "DIS-TE1" / "m0.jpg").unlink()
    (root / "pred" / "DIS-TE1" / "m1.png").write_bytes(b"")  # a 0-byte map
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert _eval(root) == 2
    assert "cannot be read" in caplog.text and "m1.png" in caplog.text and "--allow_missing" in caplog.text
    assert _eval(root, "--allow_missing") == 0
    import json

    assert json.loads((root / "ev" / "results.json").read_text())["results"]["FSANet"]["DIS-TE1"]["num"] == 2


def test_eval_folder_mistakes_get_their_own_messages(tmp_path, caplog):
    root = _eval_sets(tmp_path)
    with caplog.at_level(logging.ERROR):
        assert (
            eval_cli.main(["--pred_root", str(root / "prde"), "--gt_root", str(root / "gt"), "--save_dir", str(root / "ev")])
            == 2
        )
    assert "prde: no such folder" in caplog.text
    caplog.clear()
    shutil.rmtree(root / "pred" / "DIS-TE1")
    with caplog.at_level(logging.ERROR):
        assert _eval(root) == 2
    assert "does not exist (3 masks)" in caplog.text and "m0, m1" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert _eval(root, "--allow_missing") == 2  # nothing at all to score
    assert "no prediction could be scored" in caplog.text
    for mask in (root / "gt" / "DIS-TE1" / "GT").iterdir():
        mask.unlink()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert _eval(root) == 2
    assert "no mask files" in caplog.text and "not the predictions" in caplog.text


def test_eval_warns_about_scores_that_cannot_mean_anything(tmp_path, caplog):
    root = _eval_sets(tmp_path)
    with caplog.at_level(logging.WARNING):  # the ground-truth root given as the prediction root
        assert (
            eval_cli.main(
                [
                    "--pred_root",
                    str(root / "gt"),
                    "--gt_root",
                    str(root / "gt"),
                    "--save_dir",
                    str(root / "ev"),
                    "--no_progress",
                    "--no_curves",
                ]
            )
            == 2
        )
    assert "is the ground-truth root" in caplog.text
    caplog.clear()
    os.symlink(root / "gt" / "DIS-TE1" / "GT", root / "DIS-TE1")  # <pred_root>/DIS-TE1 is the GT folder
    with caplog.at_level(logging.WARNING):  # predictions that are the masks themselves
        assert (
            eval_cli.main(
                [
                    "--pred_root",
                    str(root),
                    "--gt_root",
                    str(root / "gt"),
                    "--save_dir",
                    str(root / "ev"),
                    "--no_progress",
                    "--no_curves",
                ]
            )
            == 0
        )
    assert "read from the ground-truth folder" in caplog.text
    for mask in (root / "gt" / "DIS-TE1" / "GT").iterdir():
        Image.fromarray(np.zeros((32, 40), np.uint8)).save(mask)
    for pred in (root / "pred" / "DIS-TE1").iterdir():
        Image.fromarray(np.zeros((32, 40), np.uint8)).save(pred)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _eval(root) == 0
    assert "3 pairs with an empty mask and an empty prediction" in caplog.text


def test_resume_notes_a_finished_run_and_ignored_architecture_flags(tmp_path, synthetic_train, caplog):
    assert train_cli.main(_train_argv(tmp_path, synthetic_train, "--epoch", "1")) == 0
    run = tmp_path / "checkpoints" / "FSANet"
    before = _snapshot(run)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert (
            train_cli.main(
                _train_argv(tmp_path, synthetic_train, "--epoch", "1", "--resume", str(run), "--decoder_channels", "48")
            )
            == 0
        )
    assert "this run is finished" in caplog.text and "epochs 3 → 2" not in caplog.text
    assert "ignored: --decoder_channels 48" in caplog.text
    assert _snapshot(run) == before


def test_a_run_whose_epochs_all_have_lr_0_is_warned_about(tmp_path, synthetic_train, caplog):
    with caplog.at_level(logging.WARNING):
        run_training(train_args(tmp_path, synthetic_train, "--epoch", "1"))
    assert "every epoch of this run has learning rate 0" in caplog.text


def test_library_code_leaves_process_state_alone(tmp_path, synthetic_train):
    import matplotlib

    from utils.evaluation.reports import plot_curves

    backend = matplotlib.get_backend()
    limit = Image.MAX_IMAGE_PIXELS
    handlers = list(logging.getLogger().handlers)
    run_training(train_args(tmp_path, synthetic_train, "--epoch", "1"))
    plot_curves(
        {"m": {"DIS-TE1": {"precision": np.ones(256), "recall": np.ones(256), "fm": np.ones(256)}}}, tmp_path / "curves"
    )
    assert (tmp_path / "curves" / "pr_DIS-TE1.png").exists()
    assert matplotlib.get_backend() == backend and Image.MAX_IMAGE_PIXELS == limit and limit is not None
    assert logging.getLogger().handlers == handlers
