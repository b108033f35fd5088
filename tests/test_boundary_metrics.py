"""mBA and BIoU (utils/evaluation/boundary.py) against their definitions in BiRefNet's evaluator,
written out here literally (np.histogram, OpenCV's iterated erosion, Python's sum), on
hand-computed cases, random maps and DIS-like pairs, one image at a time and through eval.py."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

import eval as eval_cli
from utils.evaluation.boundary import BoundaryAccuracy, BoundaryIoU, mba_radii
from utils.evaluation.metrics import add_pair, new_metrics, summarize
from utils.evaluation.pairs import MaskQuantities

# ----------------------------------------------------------------------------- the definitions, literally


def definition_ba(pred: np.ndarray, gt: np.ndarray) -> float:
    """BiRefNet's MBAMeasure for one image: 8-bit map and mask, > 128 each."""
    pred, gt = (pred > 128).astype(np.uint8), (gt > 128).astype(np.uint8)
    h, w = gt.shape
    min_radius, max_radius, steps = 1, (w + h) / 300, 5
    accuracies = []
    for i in range(steps):
        radius = min_radius + int((max_radius - min_radius) / steps * i)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (radius * 2 + 1, radius * 2 + 1))
        region = cv2.morphologyEx(gt, cv2.MORPH_GRADIENT, kernel) > 0
        g, p = gt[region], pred[region]
        good = (g * p + (1 - g) * (1 - p)).sum()
        with np.errstate(invalid="ignore"):
            accuracies.append(good / region.sum())
    return sum(accuracies) / steps


def _boundary(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    dilation = max(1, int(round(0.02 * np.sqrt(h**2 + w**2))))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=dilation)[1 : h + 1, 1 : w + 1]
    return mask - eroded


def definition_biou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """BiRefNet's BIoUMeasure for one image: the 256-value curve."""
    gt = gt > 128
    pred = pred / 255
    if pred.max() != pred.min():
        pred = (pred - pred.min()) / (pred.max() - pred.min())
    pred = _boundary((pred * 255).astype(np.uint8))
    gt = _boundary((gt * 255).astype(np.uint8)) > 128
    bins = np.linspace(0, 256, 257)
    fg, _ = np.histogram(pred[gt], bins=bins)
    bg, _ = np.histogram(pred[~gt], bins=bins)
    tps, fps = np.cumsum(np.flip(fg), axis=0), np.cumsum(np.flip(bg), axis=0)
    return tps / (max(np.count_nonzero(gt), 1) + fps)


# ----------------------------------------------------------------------------- hand-computed cases


def test_boundary_accuracy_by_hand():
    """6×6, a 2×2 object: (6 + 6) / 300 < 1 gives radius 1 (a plus-shaped kernel) five times; the
    band is the 4 object pixels and their 8 outside 4-neighbours; one object pixel missed."""
    assert mba_radii(6, 6) == [1, 1, 1, 1, 1]
    gt = np.zeros((6, 6), np.uint8)
    gt[2:4, 2:4] = 255
    pred = gt.copy()
    pred[2, 2] = 0
    metric = BoundaryAccuracy()
    metric.step(pred, gt)
    assert metric.get_results()["mba"] == pytest.approx(11 / 12, abs=1e-15)
    assert metric.bas[0] == definition_ba(pred, gt)
    assert mba_radii(2500, 3000) == [1, 4, 7, 11, 14]


def test_boundary_iou_by_hand():
    """8×8, a 4×4 object predicted exactly: one erosion (round(0.02·√128) = 0, at least 1); both
    boundaries are the 12-pixel ring. IoU is 1 at every threshold but 0, where all 64 pixels
    count: 12 / (12 + 52)."""
    gt = np.zeros((8, 8), np.uint8)
    gt[2:6, 2:6] = 255
    metric = BoundaryIoU()
    metric.step(gt.copy(), gt)
    curve = metric.get_results()["biou"]["curve"]
    assert curve.shape == (256,)
    assert (curve[:255] == 1).all() and curve[255] == 12 / 64
    assert curve.max() == 1 and curve.mean() == pytest.approx((255 + 12 / 64) / 256, abs=1e-15)


# ----------------------------------------------------------------------------- equality with the definitions


def _dis_like(rng: np.random.Generator, h: int, w: int):
    gt = np.zeros((h, w), np.uint8)
    cv2.ellipse(gt, (w // 2, h // 2), (w // 4, h // 3), int(rng.integers(0, 180)), 0, 360, 255, -1)
    for _ in range(int(rng.integers(3, 12))):
        a, b = rng.integers(0, [w, h]), rng.integers(0, [w, h])
        cv2.line(gt, tuple(int(v) for v in a), tuple(int(v) for v in b), 255, int(rng.integers(1, 4)))
    cv2.rectangle(gt, (0, h - 5), (w // 5, h - 1), 255, -1)  # an object cut by the border
    blur = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 2.5)
    noise = rng.normal(0, 25, gt.shape)
    pred = np.clip(blur + noise, 0, 255).astype(np.uint8)
    return pred, gt


CASES = [
    ("random", lambda rng: ((rng.random((97, 131)) * 255).astype(np.uint8), (rng.random((97, 131)) > 0.6) * 255)),
    ("dis-like", lambda rng: _dis_like(rng, 240, 320)),
    ("dis-like tall", lambda rng: _dis_like(rng, 611, 377)),
    ("constant map", lambda rng: (np.full((64, 80), 200, np.uint8), _dis_like(rng, 64, 80)[1])),
    ("full mask", lambda rng: ((rng.random((50, 60)) * 255).astype(np.uint8), np.full((50, 60), 255, np.uint8))),
]


@pytest.mark.parametrize("name, make", CASES, ids=[c[0] for c in CASES])
def test_each_image_equals_the_definitions(name, make):
    rng = np.random.default_rng(len(name))
    pred, gt = make(rng)
    pred, gt = np.ascontiguousarray(pred, np.uint8), np.ascontiguousarray(gt, np.uint8)
    metrics = new_metrics(hce_rule=None, only=("mba", "biou"))
    add_pair(metrics, pred, gt, MaskQuantities(gt))  # eval.py's path: the mask's quantities shared
    expected_ba = definition_ba(pred, gt)
    assert metrics["mba"].bas[0] == expected_ba or (math.isnan(expected_ba) and math.isnan(metrics["mba"].bas[0]))
    assert np.array_equal(metrics["biou"].bious[0], definition_biou(pred, gt))
    alone = BoundaryIoU()
    alone.step(pred, gt)  # the stand-alone object gives the same
    assert np.array_equal(alone.bious[0], metrics["biou"].bious[0])


def test_an_empty_mask_gives_nan_as_defined():
    gt = np.zeros((40, 50), np.uint8)
    pred = np.full((40, 50), 7, np.uint8)
    metric = BoundaryAccuracy()
    metric.step(pred, gt)
    assert math.isnan(metric.bas[0]) and math.isnan(definition_ba(pred, gt))


def test_eval_py_reports_the_three_keys(tmp_path):
    rng = np.random.default_rng(3)
    masks, maps = tmp_path / "gt" / "DIS-TE1" / "gt", tmp_path / "pred" / "DIS-TE1"
    masks.mkdir(parents=True)
    maps.mkdir(parents=True)
    expected_ba, expected_curves = [], []
    for i in range(3):
        pred, gt = _dis_like(rng, 180 + 20 * i, 240)
        Image.fromarray(gt).save(masks / f"{i}.png")
        Image.fromarray(pred).save(maps / f"{i}.png")
        expected_ba.append(definition_ba(pred, gt))
        expected_curves.append(definition_biou(pred, gt))
    argv = ["--pred_root", str(tmp_path / "pred"), "--gt_root", str(tmp_path / "gt"), "--save_dir", str(tmp_path / "r")]
    assert eval_cli.main(argv + ["--no_progress", "--workers", "2"]) == 0
    scores = json.loads((tmp_path / "r" / "results.json").read_text())["results"]["FSANet"]["DIS-TE1"]
    curve = np.mean(np.array(expected_curves, dtype=np.float64), axis=0)
    assert scores["mBA"] == float(np.mean(np.array(expected_ba, np.float64)))
    assert scores["maxBIoU"] == float(curve.max()) and scores["meanBIoU"] == float(curve.mean())
    table = (tmp_path / "r" / "results.md").read_text()
    assert "| HCE↓ (isnet) | mBA↑ | maxBIoU↑ | meanBIoU↑ |" in table
    assert eval_cli.main(argv[:-1] + [str(tmp_path / "r2"), "--no_progress", "--no_boundary"]) == 0
    assert "mBA" not in json.loads((tmp_path / "r2" / "results.json").read_text())["results"]["FSANet"]["DIS-TE1"]


def test_summaries_carry_the_keys():
    gt = np.zeros((30, 30), np.uint8)
    gt[5:20, 5:20] = 255
    metrics = new_metrics(hce_rule=None)
    add_pair(metrics, gt.copy(), gt)
    values, curves = summarize(metrics)
    assert values["mBA"] == 1.0 and values["maxBIoU"] == 1.0 and curves["biou"].shape == (256,)


@pytest.mark.parametrize("shape", [(1, 1), (2, 300), (37, 71), (611, 377), (700, 1300)])
def test_bit_level_bands_equal_opencvs_gradients(shape):
    """mBA's bands on 64-pixel words, pixel for pixel and in count, against cv2.morphologyEx."""
    from utils.evaluation.boundary import mba_bands

    rng = np.random.default_rng(shape[0])
    gt = rng.random(shape) > 0.6
    if shape[0] > 100:  # DIS-like: large solid parts, thin lines, the border touched
        gt = _dis_like(rng, *shape)[1] > 128
    bands = mba_bands(gt)
    for radius, got, size in zip(mba_radii(*shape), bands.masks(), bands.sizes):
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        expected = cv2.morphologyEx(gt.astype(np.uint8), cv2.MORPH_GRADIENT, kernel) > 0
        assert np.array_equal(got, expected) and size == int(expected.sum()), radius
