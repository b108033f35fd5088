"""What DIS users ask for, through test.py and app.py's own code: cut-outs, video as --input,
inference at the image's aspect (PyTorch and a --dynamic ONNX file), and fine-tuning on your
own data from the first command to a scored model (docs/training.md)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import TINY_MODEL_ARGS
from PIL import Image

import eval as eval_cli
import test as test_cli
import train as train_cli
from lib.configs import get_config
from lib.FSANet import build_fsanet
from lib.saving import save_checkpoint
from utils.common.ownership import read_manifest
from utils.data.synthetic import make_sample, write_dataset
from utils.inference.processing import input_size

FAST = ["--testsize", "64", "--workers", "0", "--no_progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small")).eval()
    return model, save_checkpoint(tmp_path_factory.mktemp("w") / "small.pth", model)


def _photo(path: Path, size=(70, 90), seed=0, alpha=None) -> np.ndarray:
    image, _ = make_sample(np.random.default_rng(seed), size[1], size[0])
    if alpha is None:
        Image.fromarray(image).save(path)
    else:
        Image.fromarray(np.dstack([image, alpha]), mode="RGBA").save(path)
    return image


# ----------------------------------------------------------------------------- --cutout


def test_cutout_is_the_image_with_the_map_as_alpha(tmp_path, small):
    _, pth = small
    photos = tmp_path / "photos"
    photos.mkdir()
    rgb = _photo(photos / "a.jpg")
    alpha = np.full((70, 90), 255, np.uint8)
    alpha[:, :30] = 0
    _photo(photos / "t.png", alpha=alpha, seed=1)
    out = tmp_path / "out"
    assert test_cli.main(["--pth_path", str(pth), "--input", str(photos), "--save_path", str(out), "--cutout", *FAST]) == 0
    prob_map = np.asarray(Image.open(out / "a.png"))
    cut = Image.open(out / "a_cutout.png")
    assert cut.mode == "RGBA" and cut.size == (90, 70)
    cut = np.asarray(cut)
    assert np.array_equal(cut[..., 3], prob_map)
    assert np.abs(cut[..., :3].astype(int) - np.asarray(Image.open(photos / "a.jpg")).astype(int)).max() == 0
    assert rgb.shape == cut.shape[:2] + (3,)
    transparent = np.asarray(Image.open(out / "t_cutout.png"))
    assert (transparent[:, :30, 3] == 0).all()  # the input's transparency is kept
    assert read_manifest(out)[1] == {"a.png", "a_cutout.png", "t.png", "t_cutout.png"}


def test_a_cutout_name_that_is_another_images_map_is_refused(tmp_path, small, caplog):
    _, pth = small
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "x.jpg")
    _photo(photos / "x_cutout.jpg", seed=2)
    with caplog.at_level(logging.ERROR):
        code = test_cli.main(
            ["--pth_path", str(pth), "--input", str(photos), "--save_path", str(tmp_path / "o"), "--cutout", *FAST]
        )
    assert code == 2 and "x_cutout.png" in caplog.text


# ----------------------------------------------------------------------------- video


def _video(path: Path, count: int = 5, size=(80, 60), fps: float = 10.0) -> None:
    fourcc = {".avi": "MJPG", ".mp4": "mp4v"}[path.suffix]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(count):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.circle(frame, (10 + 10 * i, size[1] // 2), 12, (40, 200, 250), -1)
        writer.write(frame)
    writer.release()


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_gives_one_map_per_frame_in_batches(tmp_path, small, suffix):
    model, pth = small
    video = tmp_path / f"clip{suffix}"
    _video(video)
    out = tmp_path / "maps"
    argv = ["--pth_path", str(pth), "--input", str(video), "--save_path", str(out), "--batch_size", "2", "--cutout"]
    assert test_cli.main(argv + FAST) == 0
    folder = out / "clip"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"{i:06d}.png" for i in range(5)] + [f"{i:06d}_cutout.png" for i in range(5)] + ["video.json"])
    sidecar = json.loads((folder / "video.json").read_text())
    assert sidecar == {"source": video.name, "fps": 10.0, "frames": 5, "width": 80, "height": 60}
    # each frame's map is the map of that frame as an image (the same pre- and post-processing)
    from utils.inference.predict import predict_image

    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    expected = predict_image(model, Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)), 64)
    assert np.abs(np.asarray(Image.open(folder / "000000.png")).astype(int) - expected).max() <= 1
    assert {f"clip/{i:06d}.png" for i in range(5)} <= read_manifest(out)[1]


def test_an_unreadable_video_is_refused_by_name(tmp_path, small, caplog):
    _, pth = small
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"not a video at all" * 10)
    with caplog.at_level(logging.ERROR):
        code = test_cli.main(["--pth_path", str(pth), "--input", str(video), "--save_path", str(tmp_path / "o"), *FAST])
    assert code == 2 and "broken.mp4: cannot be read as a video" in caplog.text


# ----------------------------------------------------------------------------- --keep_aspect


def test_input_size_keeps_the_aspect_in_multiples_of_32():
    assert input_size(2000, 3000, 1024) == (1024, 1024)  # the authors' square by default
    assert input_size(2000, 3000, 1024, keep_aspect=True) == (672, 1024)  # 682.7 → 672
    assert input_size(3000, 2000, 1024, keep_aspect=True) == (1024, 672)
    assert input_size(100, 3000, 1024, keep_aspect=True) == (32, 1024)  # never below 32
    assert input_size(500, 500, 512, keep_aspect=True) == (512, 512)


def test_keep_aspect_runs_the_model_at_the_images_aspect(tmp_path, small, monkeypatch):
    model, pth = small
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "wide.png", size=(60, 120))
    _photo(photos / "tall.png", size=(130, 65), seed=3)
    _photo(photos / "wide2.png", size=(61, 121), seed=4)
    seen = []
    from utils.inference import predict as predict_module

    real = predict_module.predict_logits

    def spy(model, batch, *args, **kwargs):
        seen.append(tuple(batch.shape))
        return real(model, batch, *args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_logits", spy)
    out = tmp_path / "o"
    argv = ["--pth_path", str(pth), "--input", str(photos), "--save_path", str(out), "--keep_aspect", "--batch_size", "2"]
    assert test_cli.main(argv + FAST) == 0
    assert sorted(seen) == sorted([(2, 3, 32, 64), (1, 3, 64, 32)])  # the two wide ones batched together
    assert np.asarray(Image.open(out / "tall.png")).shape == (130, 65)


def test_a_dynamic_onnx_file_runs_at_the_images_aspect(tmp_path, small):
    pytest.importorskip("onnxruntime")
    from utils.deploy.export import export_onnx

    model, pth = small
    dynamic = export_onnx(model, tmp_path / "dyn.onnx", size=(64, 64), dynamic=True)
    fixed = export_onnx(model, tmp_path / "fixed.onnx", size=(64, 64))
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "wide.png", size=(60, 130))
    _photo(photos / "wide2.png", size=(62, 128), seed=5)
    common = ["--input", str(photos), "--keep_aspect", "--batch_size", "2", *FAST]
    assert test_cli.main(["--pth_path", str(pth), "--save_path", str(tmp_path / "t"), *common]) == 0
    assert test_cli.main(["--onnx", str(dynamic), "--save_path", str(tmp_path / "x"), *common]) == 0
    for stem in ("wide", "wide2"):
        a = np.asarray(Image.open(tmp_path / "t" / f"{stem}.png")).astype(int)
        b = np.asarray(Image.open(tmp_path / "x" / f"{stem}.png")).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1
    assert test_cli.main(["--onnx", str(fixed), "--save_path", str(tmp_path / "f"), *common]) == 2
    # the web app runs the same file at its own --testsize and the image's aspect
    from utils.deploy.webapp import Segmenter
    from utils.inference.onnx_model import OnnxFSANet

    for testsize in (64, 96):
        served = Segmenter(OnnxFSANet(dynamic), testsize, keep_aspect=True).predict(photos / "wide.png")
        eager = Segmenter(model, testsize, keep_aspect=True).predict(photos / "wide.png")
        assert served.map.shape == (60, 130) and np.abs(served.map.astype(int) - eager.map.astype(int)).max() <= 1


def test_the_web_app_takes_keep_aspect(tmp_path, small):
    from utils.deploy.webapp import Segmenter

    model, _ = small
    path = tmp_path / "wide.png"
    _photo(path, size=(60, 130))
    square = Segmenter(model, 64).predict(path)
    aspect = Segmenter(model, 64, keep_aspect=True).predict(path)
    assert square.map.shape == aspect.map.shape == (60, 130)
    assert not np.array_equal(square.map, aspect.map)  # another input size, another map
    from utils.inference.predict import predict_image

    assert np.array_equal(aspect.map, predict_image(model, Image.open(path).convert("RGB"), 64, keep_aspect=True))


# ----------------------------------------------------------------------------- fine-tuning, start to score


def test_fine_tuning_on_your_own_data_from_start_to_score(tmp_path, small, monkeypatch):
    """docs/training.md's fine-tuning section, command by command, with the small configuration:
    from a .pth, a save_pretrained folder and an hf: id (an offline cache built here)."""
    from huggingface_hub import constants

    from tests.conftest import cache_repo

    model, pth = small
    data = tmp_path / "my_data"
    write_dataset(data / "train", 4, (80, 64), "authors", seed=1)
    write_dataset(data / "val", 2, (80, 64), "authors", seed=2)
    write_dataset(data / "test" / "DIS-TE1", 2, (80, 64), "authors", seed=3)
    hub = tmp_path / "hub" / "fsanet"
    model.save_pretrained(hub)  # "a folder written by save_pretrained"
    cache = tmp_path / "hf_cache"
    cache_repo(cache, "owner/fsanet", hub)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for source, name in ((str(pth), "mine"), (str(hub), "mine_folder"), ("hf:owner/fsanet", "mine_hub")):
            argv = ["--train_path", "my_data/train", "--val_path", "my_data/val", "--train_save", name]
            argv += ["--pre_model", source, "--fine_tune", "--epoch", "2", *TINY_MODEL_ARGS]
            argv += ["--device", "cpu", "--workers", "0", "--no_progress", "--batchsize", "2", "--trainsize", "64"]
            assert train_cli.main(argv) == 0, source
            assert Path("checkpoints", name, "best.pth").exists()
        test_argv = ["--pth_path", "checkpoints/mine/best.pth", "--test_path", "my_data/test", "--save_path", "results/mine"]
        assert test_cli.main(test_argv + FAST) == 0
        eval_argv = ["--pred_root", "results/mine", "--gt_root", "my_data/test", "--save_dir", "results/mine_eval"]
        assert eval_cli.main(eval_argv + ["--no_progress", "--workers", "1"]) == 0
        scores = json.loads(Path("results/mine_eval/results.json").read_text())["results"]["FSANet"]["DIS-TE1"]
        assert scores["num"] == 2 and 0 <= scores["maxFm"] <= 1
    finally:
        os.chdir(cwd)
