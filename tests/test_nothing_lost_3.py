"""Nothing lost, round three: an output folder's record by folder-relative name whatever the
path's spelling, one writer per folder, a file decoded only as the format its name says,
SIGTERM in the web app, no non-finite checkpoint, every file-level message naming its file.
Each case runs the real command (in a process of its own for signals and concurrency) on
real files."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, train_argv
from PIL import Image, PngImagePlugin

import test as test_cli
import train as train_cli
from utils.common.ownership import LOCK, MANIFEST, OwnershipError, claim_folder, read_manifest
from utils.data.images import ACCEPTED_FORMATS, IMAGE_FORMATS, ImageReadError, read_gt_mask, read_rgb
from utils.data.synthetic import make_sample, write_dataset

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
FAST = ["--testsize", "64", "--workers", "0", "--no_progress", "--device", "cpu"]


def _photo(path: Path, seed: int = 0) -> Path:
    image, _ = make_sample(np.random.default_rng(seed), 48, 40)
    Image.fromarray(image).save(path)
    return path


def _test_py(argv, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "test.py"), *map(str, argv), *FAST],
        cwd=cwd,
        env=kwargs.pop("env", ENV),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


# ----------------------------------------------------------------------------- 1. names relative to the folder


def test_a_relative_save_path_protects_a_users_file_like_an_absolute_one(tmp_path, small_pth):
    """The default --save_path is relative: a file the user put there is refused, not overwritten;
    the same folder spelled absolutely, from another cwd or through a link takes test.py's own maps."""
    work = tmp_path / "work"
    (work / "photos").mkdir(parents=True)
    _photo(work / "photos" / "a.jpg")
    first = _test_py(["--pth_path", small_pth, "--input", "photos", "--save_path", "results/FSANet"], work)
    assert first.returncode == 0, first.stdout + first.stderr
    manifest = read_manifest(work / "results" / "FSANet")
    assert manifest == ("test.py", {"a.png"})  # folder-relative, not "results/FSANet/a.png"

    # the same folder, other spellings: its own map is replaced each time
    other_cwd = tmp_path / "elsewhere"
    other_cwd.mkdir()
    (tmp_path / "link").symlink_to(work, target_is_directory=True)
    for cwd, save in (
        (work, work / "results" / "FSANet"),  # absolute
        (other_cwd, Path("..") / "work" / "results" / "FSANet"),  # relative from another cwd
        (work, tmp_path / "link" / "results" / "FSANet"),  # through a symbolic link
        (work, "results/./FSANet/"),
    ):
        photos = (work / "photos").resolve()
        run = _test_py(["--pth_path", small_pth, "--input", photos, "--save_path", save], cwd)
        assert run.returncode == 0, (save, run.stdout + run.stderr)
    assert read_manifest(work / "results" / "FSANet") == ("test.py", {"a.png"})

    # a file the user put there under a name test.py is about to write: refused with every spelling
    _photo(work / "photos" / "b.jpg", seed=1)
    user_map = work / "results" / "FSANet" / "b.png"
    user_map.write_bytes(b"the user's own b.png")
    for cwd, save in ((work, "results/FSANet"), (work, work / "results" / "FSANet"), (other_cwd, "../work/results/FSANet")):
        run = _test_py(["--pth_path", small_pth, "--input", (work / "photos").resolve(), "--save_path", save], cwd)
        assert run.returncode == 2, (save, run.stdout + run.stderr)
        assert "would overwrite b.png, which test.py did not write" in run.stdout + run.stderr
    assert user_map.read_bytes() == b"the user's own b.png"


def test_odd_file_names_survive_the_manifest(tmp_path, small_pth):
    """A name with a newline and a name that is not UTF-8 (Latin-1 café): maps written, the
    manifest lists each once, and the next run takes its own maps again."""
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "new\nline.jpg")
    latin1 = os.fsencode(photos) + b"/caf\xe9_1.jpg"
    Image.fromarray(make_sample(np.random.default_rng(2), 48, 40)[0]).save(latin1, format="JPEG")
    out = tmp_path / "maps"
    for _ in range(2):
        run = _test_py(["--pth_path", small_pth, "--input", photos, "--save_path", out], tmp_path)
        assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(os.listdir(os.fsencode(out))) == sorted([b".fsanet-outputs", b"caf\xe9_1.png", b"new\nline.png"])
    command, names = read_manifest(out)
    assert names == {"new\nline.png", os.fsdecode(b"caf\xe9_1.png")}
    assert all(line.isascii() for line in (out / MANIFEST).read_text(errors="surrogateescape").splitlines())


def test_a_non_utf8_training_file_has_a_cache_key(tmp_path):
    from utils.data.dataset import TrainDataset

    name = os.fsencode(tmp_path) + b"/caf\xe9_1.png"
    image, mask = make_sample(np.random.default_rng(0), 40, 40)
    Image.fromarray(image).save(name, format="PNG")
    dataset = TrainDataset([(os.fsdecode(name), os.fsdecode(name))], 32, cache_dir=tmp_path / "cache")
    x, _ = dataset[0]
    assert x.shape == (3, 32, 32)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # both entries written
    assert torch.equal(dataset[0][0], x)  # and read back


def test_old_manifests_are_still_read(tmp_path):
    (tmp_path / MANIFEST).write_text("fsanet-outputs v1 test.py\nDIS-TE1/a.png\n")
    assert read_manifest(tmp_path) == ("test.py", {"DIS-TE1/a.png"})
    with claim_folder(tmp_path, "test.py", "--save_path") as owned:
        owned.record([tmp_path / "DIS-TE1" / "b.png"])
    assert read_manifest(tmp_path) == ("test.py", {"DIS-TE1/a.png", "DIS-TE1/b.png"})


# ----------------------------------------------------------------------------- 2. one writer per folder

HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from utils.common.ownership import claim_folder
with claim_folder(sys.argv[2], sys.argv[3], "--flag"):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(folder: Path, command: str) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ROOT), str(folder), command], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("command", ["test.py", "eval.py", "utils.data.synthetic"])
def test_a_second_writer_is_refused_naming_the_first(tmp_path, small_pth, command):
    out = tmp_path / "out"
    holder = _hold(out, command)
    try:
        if command == "test.py":
            _photo(tmp_path / "a.jpg")
            argv = [sys.executable, str(ROOT / "test.py"), "--pth_path", small_pth, "--input", tmp_path / "a.jpg"]
            argv += ["--save_path", out, *FAST]
        elif command == "eval.py":
            write_dataset(tmp_path / "sets" / "DIS-TE1", 1, 32, "authors", seed=1)
            argv = [sys.executable, str(ROOT / "eval.py"), "--pred_root", tmp_path / "sets", "--gt_root", tmp_path / "sets"]
            argv += ["--save_dir", out]
        else:
            argv = [sys.executable, "-m", "utils.data.synthetic", "--out", out, "--count", "1", "--size", "32"]
        run = subprocess.run(list(map(str, argv)), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        text = run.stdout + run.stderr
        assert run.returncode != 0 and f"pid {holder.pid} on {socket.gethostname()}, since 20" in text, text
        assert "Traceback" not in text
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(out) == [LOCK]  # nothing written by the refused run; the killed holder's lock left
    with claim_folder(out, command, "--flag") as owned:  # its process has ended: taken over
        assert owned.lock == out / LOCK
    assert not (out / LOCK).exists()


def test_two_test_py_runs_at_once_one_is_refused_and_the_record_is_whole(tmp_path, small_pth):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        _photo(photos / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    argv = [sys.executable, str(ROOT / "test.py"), "--pth_path", small_pth, "--input", photos, "--save_path", out, *FAST]
    runs = [subprocess.Popen(list(map(str, argv)), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
    time.sleep(0.2)
    runs.append(subprocess.Popen(list(map(str, argv)), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [r.communicate(timeout=300)[0] for r in runs]
    codes = sorted(r.returncode for r in runs)
    assert codes in ([0, 0], [0, 2]), outputs  # the second waited for nothing: finished after, or refused
    if codes == [0, 2]:
        refused = outputs[[r.returncode for r in runs].index(2)]
        assert "another test.py run is writing here" in refused, refused
    assert read_manifest(out) == ("test.py", {f"p{i}.png" for i in range(6)})
    assert not (out / LOCK).exists()


def test_a_lock_dated_in_the_future_is_not_a_wait_for_ever(tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    lock = out / LOCK
    lock.write_text("")  # unreadable, and dated a day ahead (a clock set back, NFS skew)
    future = time.time() + 86400
    os.utime(lock, (future, future))
    with caplog.at_level(logging.WARNING), claim_folder(out, "test.py", "--save_path"):
        pass
    assert "taking over an unreadable lock file" in caplog.text
    lock.write_text(f"node-17.cluster 4242 {time.time() + 86400:.0f}\n")  # another host's, dated ahead
    with pytest.raises(OwnershipError, match=r"process 4242 on host node-17.cluster since .*in the future.* delete"):
        claim_folder(out, "test.py", "--save_path")


def test_convert_holds_a_lock_on_its_output_file(tmp_path, small_pth):
    pytest.importorskip("safetensors")
    from lib.convert import main as convert_main

    target = tmp_path / "w.safetensors"
    holder_code = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from utils.common.ownership import hold_file_lock
with hold_file_lock({str(target)!r}, "OUT", "lib.convert"):
    print("held", flush=True)
    time.sleep(120)
"""
    holder = subprocess.Popen([sys.executable, "-c", holder_code], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert convert_main([str(small_pth), str(target)]) == 2
        assert not target.exists()
    finally:
        holder.kill()
        holder.wait()
    assert convert_main([str(small_pth), str(target)]) == 0 and target.exists()


# ----------------------------------------------------------------------------- 3. decoded only as the name says

GS_STAND_IN = """#!/bin/sh
echo "$@" >> "{marker}"
exit 1
"""

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n"


def _ico(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="ICO")
    path.write_bytes(buffer.getvalue())
    return path


def _pcx(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buffer, format="PCX")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
def stand_in_gs(tmp_path):
    """A `gs` first on PATH that records being started (Ghostscript's place)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "gs-was-run"
    gs = bin_dir / "gs"
    gs.write_text(GS_STAND_IN.format(marker=marker))
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    return {**ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}, marker


def test_a_postscript_file_named_jpg_never_reaches_ghostscript(tmp_path, small_pth, stand_in_gs):
    env, marker = stand_in_gs
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "photo.jpg").write_bytes(EPS)
    _photo(photos / "good.jpg")
    out = tmp_path / "maps"
    run = _test_py(["--pth_path", small_pth, "--input", photos, "--save_path", out], tmp_path, env=env)
    text = run.stdout + run.stderr
    assert run.returncode == 1, text  # the good image is written, the other skipped by name
    assert "a PostScript file named photo.jpg" in text
    assert (out / "good.png").exists() and not (out / "photo.png").exists()
    assert not marker.exists(), marker.read_text()  # no external program was started


@pytest.mark.parametrize(
    "make, name, kind",
    [(lambda p: p.write_bytes(EPS), "photo.jpg", "PostScript"), (_ico, "icon.png", "ICO"), (_pcx, "scan.jpg", "PCX")],
)
def test_every_reader_refuses_another_format_by_name(tmp_path, make, name, kind):
    path = tmp_path / name
    make(path)
    for read in (read_rgb, read_gt_mask):
        with pytest.raises(ImageReadError, match=f"a {kind} file named {name}"):
            read(path)


def test_the_web_app_refuses_a_disguised_upload_by_name_without_ghostscript(tmp_path, small_pth, stand_in_gs):
    env, marker = stand_in_gs
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import torch
from lib.checkpoint import build_from_checkpoint
from utils.deploy.webapp import Segmenter
model, _ = build_from_checkpoint({str(small_pth)!r})
segmenter = Segmenter(model.eval(), 64)
for path, name in ((sys.argv[1], "photo.jpg"), (sys.argv[2], "notes.txt")):
    try:
        segmenter.predict(path, name)
    except ValueError as error:
        print(error)
"""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(EPS)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    run = subprocess.run([sys.executable, "-c", code, str(upload), str(text_file)], env=env, capture_output=True, text=True)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("photo.jpg: not an image this app can read (a PostScript file named photo.jpg"), run
    assert lines[1].startswith("notes.txt: not an image this app can read"), run
    assert ACCEPTED_FORMATS in lines[0] and ACCEPTED_FORMATS in lines[1]  # one list of formats in both messages
    assert not marker.exists()


def test_a_png_over_pillows_text_chunk_limit_says_so(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (PngImagePlugin.MAX_TEXT_CHUNK + 10), zip=True)
    path = tmp_path / "meta.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    with pytest.raises(ImageReadError, match="text chunks .* Pillow's safety limit"):
        read_rgb(path)


def test_the_accepted_formats_are_one_table():
    assert ACCEPTED_FORMATS == "JPEG, PNG, BMP, TIFF"
    assert set(IMAGE_FORMATS) == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


# ----------------------------------------------------------------------------- 4. SIGTERM in the web app


def test_sigterm_stops_the_web_app_like_ctrl_c(tmp_path, small_pth):
    pytest.importorskip("gradio")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**ENV, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(tmp_path)}
    command = [sys.executable, str(ROOT / "app.py"), "--pth_path", str(small_pth), "--testsize", "64", "--device", "cpu"]
    log = open(tmp_path / "app.log", "w")
    server = subprocess.Popen([*command, "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while "serving on" not in (tmp_path / "app.log").read_text():
            assert server.poll() is None and time.time() < deadline, (tmp_path / "app.log").read_text()
            time.sleep(0.3)
        results = [p for p in tmp_path.iterdir() if p.name.startswith("fsanet-app-")]
        assert len(results) == 1
        (results[0] / "session").mkdir()
        (results[0] / "session" / "photo_map.png").write_bytes(b"x" * 1000)  # as an upload leaves
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 130
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    text = (tmp_path / "app.log").read_text()
    assert "stopped by SIGTERM; the result files in" in text and "are removed" in text, text
    assert not results[0].exists()


# ----------------------------------------------------------------------------- 5. no non-finite checkpoint


def test_weights_that_overflow_are_never_saved(tmp_path, synthetic_train, monkeypatch, caplog):
    """A BatchNorm running variance at inf with a finite loss (what --lr 1e3 did): the run stops
    like a NaN loss, names the last good checkpoint, and writes nothing of that epoch."""
    from utils.training import run as run_module

    real = run_module.train_one_epoch
    calls = {"n": 0}

    def overflow_in_epoch_2(model, *args, **kwargs):
        stats = real(model, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            bn.running_var.fill_(float("inf"))
        return stats

    monkeypatch.setattr(run_module, "train_one_epoch", overflow_in_epoch_2)
    with caplog.at_level(logging.ERROR):
        code = train_cli.main(train_argv(tmp_path, synthetic_train, "--epoch", "3", "--save_every", "1"))
    assert code == 2
    run_dir = tmp_path / "checkpoints" / "FSANet"
    assert "epoch 2: the weights are no longer finite" in caplog.text
    assert f"The last good checkpoint: {run_dir / 'latest.pth'} (epoch 1)" in caplog.text
    assert not (run_dir / "FSANet-2.pth").exists()
    saved = torch.load(run_dir / "latest.pth", weights_only=True, map_location="cpu")
    assert saved["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())


def test_a_loss_far_above_the_first_epochs_is_warned(caplog):
    from utils.training.health import DIVERGED_LOSS_FACTOR, warn_if_diverging

    history = [{"epoch": 1, "loss": 2.0}]
    with caplog.at_level(logging.WARNING):
        assert not warn_if_diverging(history, 2, {"loss": 2.0 * DIVERGED_LOSS_FACTOR * 0.99})
        assert warn_if_diverging(history, 2, {"loss": 5e9})
    assert "most likely diverged" in caplog.text and "(2)" in caplog.text


# ----------------------------------------------------------------------------- 6. messages name the file


def test_an_empty_test_set_is_warned_by_name(tmp_path, small_pth, caplog):
    sets = tmp_path / "sets"
    write_dataset(sets / "DIS-TE1", 1, 32, "authors", seed=1)
    (sets / "DIS-TE2" / "Imgs").mkdir(parents=True)
    (sets / "DIS-TE2" / "GT").mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        code = test_cli.main(
            ["--pth_path", str(small_pth), "--test_path", str(sets), "--save_path", str(tmp_path / "o"), *FAST]
        )
    assert code == 0
    assert "DIS-TE2: no images to predict" in caplog.text


def test_resuming_into_the_last_epoch_says_it_runs_at_lr_0(caplog):
    from utils.training.recipe import warn_if_nothing_learned

    with caplog.at_level(logging.WARNING):
        assert warn_if_nothing_learned(3, 0.9, 2)
    assert "remaining epoch (3 of --epoch 3) runs at learning rate 0" in caplog.text
    assert "--epoch 6" in caplog.text and "--epoch 2 or more" not in caplog.text


def test_manifest_header_is_json(tmp_path):
    with claim_folder(tmp_path / "o", "test.py", "--save_path") as owned:
        owned.record(["x.png"])
    header = json.loads((tmp_path / "o" / MANIFEST).read_text().splitlines()[0])
    assert header == {"format": "fsanet-outputs", "version": 2, "command": "test.py"}
