"""test.py, eval.py and the demo: maps against the post-processing formula, metric
values against direct pysodmetrics calls and hand-made cases, error messages, reports."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

import eval as eval_cli
import test as test_cli
from utils.data.synthetic import write_dataset
from utils.evaluation.matching import EvaluationError
from utils.evaluation.metrics import new_metrics, step_metrics, summarize
from utils.evaluation.scoring import evaluate

# the direct comparison uses pysodmetrics' classic Fmeasure, which warns that FmeasureV2 replaces it
pytestmark = pytest.mark.filterwarnings("ignore:This class will be removed")


def _authors_map(model, image_path, size_hw, testsize):
    """The authors' test loop, written out: transforms, P1, upsample, sigmoid, min-max, ×255."""
    transform = T.Compose(
        [T.Resize((testsize, testsize)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]
    )
    x = transform(Image.open(image_path).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        p1 = model(x)[0]
    res = torch.sigmoid(F.interpolate(p1, size=size_hw, mode="bilinear", align_corners=False))[0, 0].numpy()
    res = (res - res.min()) / (res.max() - res.min() + 1e-8)
    return np.rint(res * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def test_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets") / "TestDataset"
    write_dataset(root / "DIS-VD", 2, (100, 70), "authors", seed=11)
    write_dataset(root / "DIS-TE1", 2, (90, 120), "dis5k", seed=12)
    return root


def test_maps_follow_the_testing_recipe_in_both_layouts(tmp_path, test_sets, authors_checkpoint, faithful_model):
    argv = [
        "--pth_path",
        str(authors_checkpoint),
        "--test_path",
        str(test_sets),
        "--save_path",
        str(tmp_path),
        "--testsize",
        "64",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no_progress",
    ]
    report = test_cli.run_test(test_cli.build_parser().parse_args(argv))
    assert len(report.written) == 4 and not report.failed
    for set_name, images, masks in (("DIS-VD", "Imgs", "GT"), ("DIS-TE1", "im", "gt")):
        for image_path in sorted((test_sets / set_name / images).iterdir()):
            mask = Image.open(test_sets / set_name / masks / f"{image_path.stem}.png")
            written = np.asarray(Image.open(tmp_path / set_name / f"{image_path.stem}.png"))
            expected = _authors_map(faithful_model, image_path, (mask.height, mask.width), 64)
            assert written.shape == expected.shape == (mask.height, mask.width)
            assert np.abs(written.astype(int) - expected).max() <= 1


def test_input_folder_maps_at_each_images_size(tmp_path, test_sets, authors_checkpoint, faithful_model):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in (test_sets / "DIS-TE1" / "im").iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    Image.fromarray(np.full((40, 72, 3), 90, np.uint8)).save(folder / "small.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    (folder / "readme.txt").write_text("x")
    # batch 1: with the fixture's random weights (activations in the thousands, saturated SFF
    # gates) a different batch size moves BLAS rounding enough to flip saturated pixels;
    # batching itself is checked on a tame model below.
    argv = [
        "--pth_path",
        str(authors_checkpoint),
        "--input",
        str(folder),
        "--save_path",
        str(tmp_path / "out"),
        "--testsize",
        "64",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--batch_size",
        "1",
        "--no_progress",
    ]
    assert test_cli.main(argv) == 1  # one image failed: reported, the rest written
    report = test_cli.run_test(test_cli.build_parser().parse_args(argv))
    assert any("broken.jpg" in f for f in report.failed) and any("readme.txt" in s for s in report.skipped)
    assert Image.open(tmp_path / "out" / "small.png").size == (72, 40)
    for path in (test_sets / "DIS-TE1" / "im").iterdir():
        written = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png"))
        image = Image.open(path)
        expected = _authors_map(faithful_model, path, (image.height, image.width), 64)
        assert np.abs(written.astype(int) - expected).max() <= 1


def test_batched_and_channels_last_prediction_match_one_by_one(tmp_path, test_sets, monkeypatch):
    import lib.network
    from lib.configs import get_config
    from lib.FSANet import build_fsanet
    from lib.saving import save_checkpoint

    layouts = []  # whether each forward got an NHWC batch
    check_input = lib.network.check_input  # the forward's module
    monkeypatch.setattr(
        lib.network, "check_input", lambda x: (layouts.append(x.shape[1] > 1 and not x.is_contiguous()), check_input(x))[1]
    )

    torch.manual_seed(0)
    path = save_checkpoint(
        tmp_path / "tiny.pth",
        build_fsanet(get_config("fsanet_small")),
    )
    maps = {}
    for name, extra in (("1", ["--batch_size", "1"]), ("3", ["--batch_size", "3"]), ("nhwc", ["--channels_last"])):
        layouts.clear()
        argv = [
            "--pth_path",
            str(path),
            "--test_path",
            str(test_sets),
            "--save_path",
            str(tmp_path / name),
            "--testsize",
            "64",
            "--device",
            "cpu",
            "--workers",
            "2",
            "--no_progress",
            *extra,
        ]
        assert test_cli.main(argv) == 0
        assert layouts == [name == "nhwc"] * (4 if name != "3" else 2)
        maps[name] = {
            p.relative_to(tmp_path / name): np.asarray(Image.open(p)).astype(int)
            for p in sorted((tmp_path / name).rglob("*.png"))
        }
    assert len(maps["1"]) == 4
    for name in ("3", "nhwc"):
        assert maps[name].keys() == maps["1"].keys()
        assert max(np.abs(maps["1"][k] - maps[name][k]).max() for k in maps["1"]) <= 1


def _gt_and_preds(root, sizes=((48, 64), (40, 40), (32, 56)), seed=0):
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        gt = np.zeros((h, w), np.uint8)
        gt[h // 4 : 3 * h // 4, w // 5 : w // 2] = 255
        pred = np.clip(gt * 0.7 + rng.normal(60, 40, gt.shape), 0, 255).astype(np.uint8)
        for set_name in ("DIS-TE1", "DIS-TE2"):
            (root / "gt" / set_name / "GT").mkdir(parents=True, exist_ok=True)
            (root / "pred" / set_name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(gt).save(root / "gt" / set_name / "GT" / f"img{i}.png")
            Image.fromarray(pred if set_name == "DIS-TE1" else 255 - pred).save(root / "pred" / set_name / f"img{i}.png")
    return root


def test_eval_json_equals_direct_pysodmetrics_calls_and_reports_agree(tmp_path):
    import py_sod_metrics as sod

    root = _gt_and_preds(tmp_path)
    argv = [
        "--pred_root",
        str(root / "pred"),
        "--gt_root",
        str(root / "gt"),
        "--save_dir",
        str(tmp_path / "ev"),
        "--no_progress",
    ]
    assert eval_cli.main(argv) == 0
    data = json.loads((tmp_path / "ev" / "results.json").read_text())
    for set_name in ("DIS-TE1", "DIS-TE2"):
        fm = sod.Fmeasure()
        wfm, mae, sm, em, hce = (
            sod.WeightedFmeasure(),
            sod.MAE(),
            sod.Smeasure(),
            sod.Emeasure(),
            sod.HumanCorrectionEffortMeasure(relax=5, epsilon=2.0),
        )
        for i in range(3):
            pred = np.asarray(Image.open(root / "pred" / set_name / f"img{i}.png"))
            gt = np.asarray(Image.open(root / "gt" / set_name / "GT" / f"img{i}.png"))
            for metric in (fm, wfm, mae, sm, em):
                metric.step(pred, gt)
            hce.step((pred > 128).astype(float), gt > 128, normalize=False)  # IS-Net's rule, the default
        direct = {
            "maxFm": fm.get_results()["fm"]["curve"].max(),
            "meanFm": fm.get_results()["fm"]["curve"].mean(),
            "wFm": wfm.get_results()["wfm"],
            "MAE": mae.get_results()["mae"],
            "Sm": sm.get_results()["sm"],
            "meanEm": em.get_results()["em"]["curve"].mean(),
            "maxEm": em.get_results()["em"]["curve"].max(),
            "HCE": hce.get_results()["hce"],
            "num": 3,
        }
        scored = data["results"]["FSANet"][set_name]
        assert {k: scored[k] for k in direct} == pytest.approx(direct, rel=1e-12, abs=1e-15)
        assert {"mBA", "maxBIoU", "meanBIoU"} <= set(scored) - set(direct)  # BiRefNet's (tests/test_boundary_metrics.py)
    # Markdown, CSV and JSON say the same
    with (tmp_path / "ev" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    md = (tmp_path / "ev" / "results.md").read_text()
    for row in rows:
        values = data["results"][row["method"]][row["set"]]
        for key, value in values.items():
            assert float(row[key]) == pytest.approx(value, rel=1e-15)
        assert row["hce_rule"] == "isnet"
        assert f"| {row['method']} | {row['set']} | {values['num']} | {values['maxFm']:.3f} |" in md
    assert "| HCE↓ (isnet) |" in md and "IS-Net's hce_metric_main.py" in md and "plain mean of DIS-TE1..4" in md
    assert {p.name for p in (tmp_path / "ev").glob("*.png")} == {
        "pr_DIS-TE1.png",
        "fm_DIS-TE1.png",
        "pr_DIS-TE2.png",
        "fm_DIS-TE2.png",
    }


def test_hand_made_cases_give_the_known_values():
    gt = np.zeros((60, 80), np.uint8)
    gt[10:30, 20:50] = 255  # 600 of 4800 pixels: 1/8
    fg, n = 1 / 8, gt.size

    def scores(pred, mask=gt):
        metrics = new_metrics()
        step_metrics(metrics, pred, mask)
        return summarize(metrics)[0]

    perfect = scores(gt.copy())
    assert perfect["maxFm"] == 1.0 and perfect["wFm"] == 1.0 and perfect["MAE"] == 0.0
    assert perfect["Sm"] == pytest.approx(1.0, abs=1e-12)
    assert perfect["maxEm"] == pytest.approx(n / (n - 1))  # pysodmetrics divides by (N − 1)
    assert perfect["HCE"] == 0.0
    # the all-positive threshold is the only one that finds the object: F = 1.3·p / (0.3·p + 1), p = 1/8
    f_all = 1.3 * fg / (0.3 * fg + 1)
    empty = scores(np.zeros_like(gt))
    assert empty["MAE"] == fg and empty["wFm"] == 0.0
    assert empty["maxFm"] == pytest.approx(f_all) and empty["meanFm"] == pytest.approx(f_all / 256)
    assert empty["HCE"] > 0  # the whole object must be drawn
    inverted = scores(255 - gt)
    assert inverted["MAE"] == 1.0 and inverted["Sm"] == 0.0 and inverted["wFm"] == 0.0
    assert inverted["maxFm"] == pytest.approx(f_all) and inverted["HCE"] > 0
    nothing = scores(np.zeros_like(gt), np.zeros_like(gt))  # empty mask, empty prediction
    assert nothing["MAE"] == 0.0 and nothing["Sm"] == pytest.approx(1.0) and nothing["HCE"] == 0.0


def test_workers_give_the_same_numbers(tmp_path):
    root = _gt_and_preds(tmp_path, sizes=[(40, 40)] * 7, seed=3)
    one, _ = evaluate({"m": root / "pred"}, root / "gt", workers=1, progress=False)
    two, _ = evaluate({"m": root / "pred"}, root / "gt", workers=2, progress=False)
    assert one == two


def test_missing_missized_and_non_image_predictions(tmp_path, caplog):
    root = _gt_and_preds(tmp_path)
    (root / "pred" / "DIS-TE1" / "img1.png").unlink()
    with pytest.raises(EvaluationError, match=r"DIS-TE1: 1 missing: img1[\s\S]*--allow_missing"):
        evaluate({"m": root / "pred"}, root / "gt", progress=False)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "pred" / "DIS-TE2" / "img0.png")
    (root / "pred" / "DIS-TE2" / "notes.txt").write_text("x")
    with caplog.at_level(logging.WARNING):
        results, _ = evaluate({"m": root / "pred"}, root / "gt", allow_missing=True, progress=False)
    assert results["m"]["DIS-TE1"]["num"] == 2 and results["m"]["DIS-TE2"]["num"] == 3
    assert "img0.png is 10×10, its mask 64×48: resized (bilinear)" in caplog.text
    assert "notes.txt" in caplog.text


def test_several_methods_and_the_overall_row(tmp_path):
    root = _gt_and_preds(tmp_path)
    for set_name in ("DIS-TE3", "DIS-TE4"):
        for sub in ("gt", "pred"):
            src = root / sub / "DIS-TE1"
            dst = root / sub / set_name
            for path in src.rglob("*.png"):
                target = dst / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    results, _ = evaluate({"a": root / "pred", "b": root / "pred"}, root / "gt", progress=False)
    overall = results["a"]["Overall"]
    for key in ("maxFm", "MAE", "HCE"):
        assert overall[key] == pytest.approx(np.mean([results["a"][f"DIS-TE{i}"][key] for i in range(1, 5)]))
    assert overall["num"] == 12 and results["a"] == results["b"]


def test_demo_runs_end_to_end(tmp_path):
    import demo

    results = demo.run_demo(tmp_path, quick=True)
    assert set(results["FSANet"]) == {"DIS-VD", "DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4", "Overall"}
    for name in ("architecture.png", "demo_grid.png", "demo_pr_DIS-TE1.png", "demo_fm_DIS-TE1.png"):
        assert Image.open(tmp_path / "figures" / name).size[0] > 100
    grid = np.asarray(Image.open(tmp_path / "figures" / "demo_grid.png").convert("L"))
    assert grid[:, 2 * grid.shape[1] // 3 :].std() > 10  # the prediction column shows a map, not a blank


def test_training_set_is_left_out_unless_named(tmp_path):
    from utils.evaluation.matching import find_gt_sets
    from utils.inference.jobs import find_test_sets

    for name, sub in (("DIS-TR", "im"), ("DIS-TE2", "im"), ("DIS-VD", "Imgs"), ("MySet", "Imgs")):
        (tmp_path / name / sub).mkdir(parents=True)
        (tmp_path / name / ("gt" if sub == "im" else "GT")).mkdir()
    assert [s for s, _, _ in find_test_sets(tmp_path)] == ["DIS-VD", "DIS-TE2", "MySet"]
    assert [s for s, _ in find_gt_sets(tmp_path)] == ["DIS-VD", "DIS-TE2", "MySet"]
    assert [s for s, _, _ in find_test_sets(tmp_path, ["DIS-TR"])] == ["DIS-TR"]
    assert [s for s, _ in find_gt_sets(tmp_path, ["DIS-TR", "DIS-TE2"])] == ["DIS-TR", "DIS-TE2"]
    only_training = tmp_path / "only"
    (only_training / "DIS-TR" / "gt").mkdir(parents=True)
    with pytest.raises(EvaluationError, match="DIS-TR, left out unless named in --sets"):
        find_gt_sets(only_training)


def test_map_difference_hand_case():
    """The one map-agreement measure the export check and the benches share."""
    from utils.inference.processing import map_difference

    got = np.array([[0, 10], [255, 3]], dtype=np.uint8)
    expected = np.array([[1, 12], [250, 3]], dtype=np.uint8)
    diff = map_difference(got, expected)
    assert (diff.max_grey, diff.beyond_one, diff.pixels) == (5, 2, 4) and diff.share_beyond_one == 0.5
    assert map_difference(expected, expected).max_grey == 0  # uint8 would wrap 0 - 1 to 255 without the cast
    with pytest.raises(ValueError, match="different shapes"):
        map_difference(got, got[:1])
