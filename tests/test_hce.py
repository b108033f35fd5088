"""HCE as the DIS benchmark defines it (IS-Net's hce_metric_main.py), the pysod rule, the shared
skeleton, the OpenCV in the environment and the provenance eval.py records."""

from __future__ import annotations

import json
from importlib import metadata

import cv2
import numpy as np
import py_sod_metrics as sod
import pytest
from PIL import Image

import eval as eval_cli
from utils.evaluation import pairs
from utils.evaluation.hce import HumanCorrectionEffort
from utils.evaluation.scoring import evaluate


def isnet_hce(pred: np.ndarray, gt: np.ndarray) -> float:
    """IS-Net's rule written out: the raw 8-bit map > 128 and the mask > 128, no normalisation,
    then pysodmetrics' unmodified counting (relax 5, epsilon 2)."""
    reference = sod.HumanCorrectionEffortMeasure(relax=5, epsilon=2.0)
    reference.step((pred > 128).astype(np.float64), gt > 128, normalize=False)
    return reference.get_results()["hce"]


def pysod_default_hce(pred: np.ndarray, gt: np.ndarray) -> float:
    reference = sod.HumanCorrectionEffortMeasure(relax=5, epsilon=2.0)
    reference.step(pred, gt)
    return reference.get_results()["hce"]


def ours(pred: np.ndarray, gt: np.ndarray, rule: str) -> float:
    metric = HumanCorrectionEffort(rule)
    metric.step(pred, gt)
    return metric.get_results()["hce"]


def _object(h: int = 96, w: int = 128) -> np.ndarray:
    """A DIS-like mask: two blobs, a one-pixel wire and a hole."""
    gt = np.zeros((h, w), np.uint8)
    cv2.circle(gt, (40, 48), 22, 255, -1)
    cv2.circle(gt, (40, 48), 6, 0, -1)
    cv2.rectangle(gt, (80, 20), (110, 70), 255, -1)
    cv2.line(gt, (5, 90), (120, 85), 255, 1)
    return gt


def _maps(gt: np.ndarray) -> dict:
    rng = np.random.default_rng(0)
    soft = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 2.5)
    noisy = np.clip(soft + rng.normal(0, 30, gt.shape), 0, 255)
    at_128 = np.where(soft > 100, 128, np.where(soft > 20, 200, 0)).astype(np.uint8)  # object exactly at 128
    return {
        "with_128s": at_128,
        "span_30_200": (30 + noisy * 170 / 255).astype(np.uint8),
        "span_0_158": (noisy * 158 / 255).astype(np.uint8),
        "all_black": np.zeros_like(gt),
        "full_range": noisy.astype(np.uint8),
    }


@pytest.mark.parametrize("name", ["with_128s", "span_30_200", "span_0_158", "all_black", "full_range"])
def test_default_rule_is_isnets(name):
    gt = _object()
    pred = _maps(gt)[name]
    assert ours(pred, gt, "isnet") == isnet_hce(pred, gt)


@pytest.mark.parametrize("name", ["with_128s", "span_30_200", "span_0_158", "all_black", "full_range"])
def test_pysod_rule_is_pysodmetrics_default(name):
    gt = _object()
    pred = _maps(gt)[name]
    assert ours(pred, gt, "pysod") == pysod_default_hce(pred, gt)


def test_the_two_rules_differ_where_the_audit_found_them_to():
    gt = _object()
    maps = _maps(gt)
    # a map holding the object at exactly 128: IS-Net sees nothing there, min-max sees all of it
    exact = np.where(gt > 0, 128, 0).astype(np.uint8)
    assert ours(exact, gt, "isnet") > 0 and ours(exact, gt, "pysod") == 0
    assert ours(exact, gt, "isnet") == ours(np.zeros_like(gt), gt, "isnet")  # as if nothing were predicted
    # a map that never exceeds 128 is empty for IS-Net, whatever its contrast
    low = np.where(gt > 0, 120, 10).astype(np.uint8)
    assert ours(low, gt, "isnet") == ours(np.zeros_like(gt), gt, "isnet") and ours(low, gt, "pysod") == 0
    # a perfect binary map scores 0 under both rules; an all-black one the same under both
    assert ours(gt, gt, "isnet") == ours(gt, gt, "pysod") == 0
    black = maps["all_black"]
    assert ours(black, gt, "isnet") == ours(black, gt, "pysod") > 0
    assert any(ours(maps[n], gt, "isnet") != ours(maps[n], gt, "pysod") for n in ("with_128s", "span_0_158"))


def test_random_dis_like_pairs_agree_with_both_references():
    rng = np.random.default_rng(7)
    for _ in range(12):
        h, w = (int(v) for v in rng.integers(40, 110, 2))
        gt = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            center = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.circle(gt, center, int(rng.integers(2, 18)), 255, -1)
        cv2.line(gt, (0, int(rng.integers(0, h))), (w - 1, int(rng.integers(0, h))), 255, 1)
        pred = np.clip(
            cv2.GaussianBlur(gt.astype(np.float32), (0, 0), 2) * rng.uniform(0.4, 1.0)
            + rng.normal(0, 35, gt.shape)
            + rng.uniform(0, 60),
            0,
            255,
        ).astype(np.uint8)
        assert ours(pred, gt, "isnet") == isnet_hce(pred, gt)
        assert ours(pred, gt, "pysod") == pysod_default_hce(pred, gt)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="isnet, pysod"):
        HumanCorrectionEffort("matlab")


def _write_sets(root, methods=("a", "b", "c"), count=4):
    gt = _object(64, 80)
    for i in range(count):
        mask = np.roll(gt, 3 * i, axis=1)
        (root / "gt" / "DIS-TE1" / "GT").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "gt" / "DIS-TE1" / "GT" / f"m{i}.png")
        for k, method in enumerate(methods):
            pred = np.clip(mask * (0.5 + 0.2 * k) + 20 * i, 0, 255).astype(np.uint8)
            (root / method / "DIS-TE1").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pred).save(root / method / "DIS-TE1" / f"m{i}.png")
    return root


def test_each_mask_is_skeletonised_once_for_all_methods(tmp_path, monkeypatch):
    root = _write_sets(tmp_path)
    calls = []
    original = pairs.skeletonize
    monkeypatch.setattr(pairs, "skeletonize", lambda gt: calls.append(1) or original(gt))
    methods = {m: root / m for m in ("a", "b", "c")}
    together, _ = evaluate(methods, root / "gt", progress=False)
    assert len(calls) == 4  # 4 masks, 3 methods
    apart = {m: evaluate({m: path}, root / "gt", progress=False)[0][m] for m, path in methods.items()}
    assert together == apart
    assert len(calls) == 4 + 3 * 4


def test_eval_cli_names_the_rule_and_records_provenance(tmp_path):
    root = _write_sets(tmp_path, methods=("a",))
    for rule in ("isnet", "pysod"):
        out = tmp_path / rule
        argv = [
            "--pred_root",
            str(root / "a"),
            "--gt_root",
            str(root / "gt"),
            "--save_dir",
            str(out),
            "--no_progress",
            "--no_curves",
            "--hce_rule",
            rule,
        ]
        assert eval_cli.main(argv) == 0
        data = json.loads((out / "results.json").read_text())
        expected = []
        for i in range(4):
            pred = np.asarray(Image.open(root / "a" / "DIS-TE1" / f"m{i}.png"))
            gt = np.asarray(Image.open(root / "gt" / "DIS-TE1" / "GT" / f"m{i}.png"))
            expected.append(isnet_hce(pred, gt) if rule == "isnet" else pysod_default_hce(pred, gt))
        assert data["results"]["FSANet"]["DIS-TE1"]["HCE"] == pytest.approx(np.mean(expected), rel=1e-15)
        info = data["provenance"]
        assert info["hce_rule"] == rule and "DIS-TE1..4" in info["overall"]
        assert info["versions"]["pysodmetrics"] == metadata.version("pysodmetrics")
        assert info["versions"]["opencv"] == cv2.__version__
        assert info["versions"]["scikit-image"] == metadata.version("scikit-image")
        assert info["versions"]["numpy"] == np.__version__
        md = (out / "results.md").read_text()
        assert f"| HCE↓ ({rule}) |" in md and f"OpenCV {cv2.__version__}" in md
        assert (out / "results.csv").read_text().splitlines()[1].endswith(f",{rule}")


def test_exactly_one_opencv_and_a_version_whose_hce_matches_the_published_tables():
    providers = sorted(set(metadata.packages_distributions().get("cv2", [])))
    assert len(providers) == 1, f"several distributions provide cv2: {providers}"
    assert providers[0] == "opencv-python-headless"  # the wheel pysodmetrics requires
    assert tuple(int(x) for x in cv2.__version__.split(".")[:2]) < (4, 13), cv2.__version__
