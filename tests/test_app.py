"""The web app (app.py, utils/deploy/webapp.py): its logic directly, then the page in headless
Chromium (Debian's ``chromium`` driven by playwright; skipped, with the reason, where
gradio, playwright or the browser is missing)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from PIL import Image

from lib.configs import get_config
from lib.FSANet import build_fsanet
from lib.saving import save_checkpoint
from utils.data.synthetic import make_sample
from utils.deploy.webapp import Segmenter, compose, render, run_upload

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A seeded fsanet_small and its checkpoint file."""
    torch.manual_seed(0)
    model = build_fsanet(get_config("fsanet_small")).eval()
    path = save_checkpoint(tmp_path_factory.mktemp("app") / "small.pth", model)
    return model, path


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """A photo, a text file, a truncated JPEG."""
    folder = tmp_path_factory.mktemp("uploads")
    image, _ = make_sample(np.random.default_rng(5), 120, 90)
    Image.fromarray(image).save(folder / "photo.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    second, _ = make_sample(np.random.default_rng(6), 100, 80)
    Image.fromarray(second).save(folder / "second.png")
    data = (folder / "photo.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    return folder


def _test_py_map(pth: Path, photo: Path, out: Path) -> np.ndarray:
    import test as test_cli

    common = ["--testsize", "64", "--workers", "0", "--no_progress", "--device", "cpu"]
    assert test_cli.main(["--pth_path", str(pth), "--input", str(photo), "--save_path", str(out), *common]) == 0
    return np.array(Image.open(out / f"{photo.stem}.png"))


def test_compose_by_hand():
    image = np.array([[[10, 20, 30], [200, 100, 0]]], dtype=np.uint8)  # 1×2 photo
    prob_map = np.array([[90, 200]], dtype=np.uint8)
    mask, cutout, overlay = compose(image, prob_map, threshold=128)
    assert mask.tolist() == [[0, 255]]
    assert cutout.shape == (1, 2, 4) and cutout[..., 3].tolist() == [[0, 200]]  # soft alpha above the threshold
    assert (cutout[..., :3] == image).all()
    assert overlay[0, 0].tolist() == [10, 20, 30]  # untouched outside the mask
    assert overlay[0, 1].tolist() == [228, 70, 45]  # (200,100,0)·0.5 + (255,40,90)·0.5, rounded
    assert compose(image, prob_map, threshold=200)[0].tolist() == [[0, 0]]  # "map > threshold"


def test_upload_logic_writes_test_py_maps_and_names_bad_files(small_model, uploads, tmp_path):
    model, pth = small_model
    segmenter = Segmenter(model, testsize=64, max_pixels=200 * 200)
    paths = [uploads / "photo.jpg", uploads / "notes.txt", uploads / "cut.jpg"]
    session = run_upload(segmenter, paths, 128, tmp_path / "app")
    page = render(session, 128)

    assert [p.name for p in session.predictions] == ["photo.jpg"]
    expected = _test_py_map(pth, uploads / "photo.jpg", tmp_path / "test_py")
    assert np.array_equal(np.array(Image.open(page["map"])), expected)  # the same map, bit for bit
    cutout = Image.open(page["cutout"])
    assert cutout.mode == "RGBA" and cutout.size == (120, 90)
    alpha = np.array(cutout)[..., 3]
    assert np.array_equal(alpha, np.where(expected > 128, expected, 0))
    assert sorted(Path(p).name for p in page["downloads"]) == [
        "photo_cutout.png",
        "photo_map.png",
        "photo_mask.png",
        "photo_overlay.png",
    ]
    assert "1 image in" in page["status"]
    assert "notes.txt: not an image this app can read" in page["status"]
    assert "cut.jpg: damaged or truncated image" in page["status"]
    # the slider re-renders from the kept map, without the model
    again = render(session, 250)
    assert np.array(Image.open(again["mask"])).max() == (255 if expected.max() > 250 else 0)

    big = uploads / "big.png"
    Image.new("RGB", (300, 300)).save(big)
    session = run_upload(segmenter, [big], 128, tmp_path / "app")
    assert not session.predictions and "big.png: 300×300 pixels, more than this app's limit of 40,000" in session.errors[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser_reason() -> str:
    extras = {"gradio": "app", "playwright": "browser"}  # the extra that brings each
    missing = [m for m in extras if __import__("importlib.util").util.find_spec(m) is None]
    if missing:
        return "; ".join(f"{m} not installed (pip install -e .[{extras[m]}])" for m in missing)
    if CHROMIUM is None:
        return "no chromium executable (apt-get install chromium); the browser test needs Debian's Chromium"
    return ""


@pytest.mark.skipif(bool(_browser_reason()), reason=_browser_reason() or "ready")
def test_page_in_headless_chromium(small_model, uploads, tmp_path):
    """Start app.py, upload a photo in Chromium, download the map: test.py's map, bit for bit;
    a text file gets a message on the page. Screenshot: $FSANET_APP_SCREENSHOT or tmp."""
    from playwright.sync_api import sync_playwright

    _, pth = small_model
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, str(ROOT / "app.py"), "--pth_path", str(pth), "--testsize", "64", "--device", "cpu"]
    log = open(tmp_path / "app.log", "w")
    server = subprocess.Popen([*command, "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
                assert time.time() < deadline, "app.py did not start in 120 s"
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#upload input[type=file]").set_input_files([str(uploads / "photo.jpg")])
            page.wait_for_function("document.querySelector('#status').innerText.includes('image in')", timeout=60_000)
            status = page.locator("#status").inner_text()
            assert "1 image in" in status and "⚠️" not in status
            with page.expect_download() as info:
                page.locator("#downloads a[download='photo_map.png']").click()
            downloaded = tmp_path / "downloaded_map.png"
            info.value.save_as(downloaded)
            page.screenshot(path=os.environ.get("FSANET_APP_SCREENSHOT", str(tmp_path / "app.png")), full_page=True)

            expected = _test_py_map(pth, uploads / "photo.jpg", tmp_path / "test_py")
            assert np.array_equal(np.array(Image.open(downloaded)), expected)

            # transparent cut-out pixels over a checkerboard, not plain white
            background = page.locator("#cutout img").evaluate("e => getComputedStyle(e).backgroundImage")
            assert "conic-gradient" in background
            # a threshold typed into the box applies on Enter (no drag, no lost focus)
            before = page.locator("#mask img").get_attribute("src")
            box = page.locator("#threshold input[type=number]")
            box.fill("5")
            box.press("Enter")
            page.wait_for_function(
                "old => { const img = document.querySelector('#mask img'); return img && img.src !== old; }",
                arg=before,
                timeout=30_000,
            )

            # several photos: a click on another thumbnail shows that photo's results in the large panels
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#upload input[type=file]").set_input_files(
                [str(uploads / "photo.jpg"), str(uploads / "second.png")]
            )
            page.wait_for_function("document.querySelector('#status').innerText.includes('2 images in')", timeout=60_000)
            for key in ("map", "cutout", "overlay", "mask"):
                assert f"photo_{key}.png" in page.locator(f"#{key} img").get_attribute("src")
            page.locator("#gallery button.thumbnail-item").nth(1).click()
            page.wait_for_function(
                "() => { const img = document.querySelector('#map img'); return img && img.src.includes('second_map'); }",
                timeout=30_000,
            )
            for key in ("map", "cutout", "overlay", "mask"):
                assert f"second_{key}.png" in page.locator(f"#{key} img").get_attribute("src"), key
            page.locator("#gallery button.thumbnail-item").nth(0).click()
            page.wait_for_function("() => document.querySelector('#map img').src.includes('photo_map.png')", timeout=30_000)

            page.goto(url, wait_until="domcontentloaded")  # a fresh page for the second upload
            page.locator("#upload input[type=file]").set_input_files([str(uploads / "notes.txt")])
            page.wait_for_function("document.querySelector('#status').innerText.includes('notes.txt')", timeout=60_000)
            assert "notes.txt: not an image this app can read" in page.locator("#status").inner_text()
            browser.close()
        assert "Traceback" not in (tmp_path / "app.log").read_text()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_random_weights_page_says_so_and_a_missing_extra_is_named(monkeypatch):
    pytest.importorskip("gradio", reason="the app extra is not installed: pip install -e .[app]")
    import importlib.util

    from utils.deploy.webapp import RANDOM_BANNER, build_app, require_app_extra

    model = build_fsanet(get_config("fsanet_small")).eval()
    random_page = str(build_app(Segmenter(model, 64, random_weights=True)).config)
    trained_page = str(build_app(Segmenter(model, 64, random_weights=False)).config)
    assert "Random weights." in RANDOM_BANNER and RANDOM_BANNER in random_page
    assert RANDOM_BANNER not in trained_page

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"pip install -e \.\[app\]"):
        require_app_extra()


def test_a_transparent_input_stays_transparent_in_the_cut_out(small_model, tmp_path):
    """An RGBA photo: the model sees its RGB; the cut-out's alpha is the map limited by the
    photo's own alpha, so no pixel that was fully transparent in the input comes back."""
    model, _ = small_model
    image, _ = make_sample(np.random.default_rng(7), 96, 80)
    alpha = np.full(image.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # the left part fully transparent
    alpha[:, 40:50] = 100  # a half-transparent band
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([image, alpha]), mode="RGBA").save(path)
    session = run_upload(Segmenter(model, 64), [path], 0, tmp_path / "results")
    assert not session.errors
    page = render(session, 0)
    cutout = np.asarray(Image.open(page["cutout"]))
    assert cutout.shape == (80, 96, 4)
    assert np.array_equal(cutout[..., :3], image)
    assert (cutout[:, :40, 3] == 0).all()
    assert (cutout[:, 40:50, 3] <= 100).all()
    prob_map = np.asarray(Image.open(page["map"]))
    assert np.array_equal(cutout[:, 50:, 3], np.where(prob_map[:, 50:] > 0, prob_map[:, 50:], 0))
    opaque = Image.fromarray(image)  # the same photo without alpha: the same map (the model sees RGB only)
    opaque.save(tmp_path / "opaque.png")
    other = render(run_upload(Segmenter(model, 64), [tmp_path / "opaque.png"], 0, tmp_path / "results2"), 0)
    assert np.array_equal(np.asarray(Image.open(other["map"])), prob_map)
    assert (np.asarray(Image.open(other["cutout"]))[:, :40, 3] > 0).any()  # without alpha, the left part shows
