"""The loss and metric tables (one owner each) and what is derived from them; a run
folder's readable config and ``--config_file``; bugs that keep their traceback."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import torch
from conftest import ROOT, train_argv

import train as train_cli
from utils.data.synthetic import make_sample
from utils.evaluation.metrics import (
    METRICS,
    MetricSpec,
    columns,
    metric_keys,
    new_metrics,
    register_metric,
    step_metrics,
    summarize,
)
from utils.evaluation.oracle import oracle_metrics, oracle_summary
from utils.evaluation.pair_metrics import PairMetric
from utils.evaluation.reports import format_table, write_reports
from utils.training.losses import LOSSES, LossSpec, deep_supervision_loss, register_loss

# ----------------------------------------------------------------------------- losses


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _hand_case():
    """A 1×1×2×2 case small enough to compute by hand: every 31×31 window (zero padding,
    divided by 961) covers the whole image, so avgpool(mask) = sum(mask) / 961 everywhere."""
    logits, mask = [2.0, -1.0, 0.5, -3.0], [1.0, 0.0, 1.0, 0.0]
    avg = sum(mask) / 961
    w = [1 + 5 * abs(avg - m) for m in mask]
    p = [_sigmoid(v) for v in logits]
    bce = [-(m * math.log(q) + (1 - m) * math.log(1 - q)) for q, m in zip(p, mask)]
    inter = sum(q * m * wi for q, m, wi in zip(p, mask, w))
    union = sum((q + m) * wi for q, m, wi in zip(p, mask, w))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    expected = {
        "authors": sum(bce) / 4 + wiou,  # the plain-mean BCE (the authors' reduce='none' quirk)
        "weighted": sum(wi * b for wi, b in zip(w, bce)) / sum(w) + wiou,
    }
    as_tensor = torch.tensor(logits, dtype=torch.float64).view(1, 1, 2, 2)
    return as_tensor, torch.tensor(mask, dtype=torch.float64).view(1, 1, 2, 2), expected


def test_the_built_in_losses_equal_their_hand_computed_values():
    logits, mask, expected = _hand_case()
    for name, value in expected.items():
        assert LOSSES[name].fn(logits, mask).item() == pytest.approx(value, rel=1e-12), name
        total, per_output = deep_supervision_loss([logits] * 4, mask, loss=name)
        assert total.item() == pytest.approx(value, rel=1e-12)  # the weights sum to 1


@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_keeps_the_contract(name):
    """What training needs of any entry: a finite scalar with a gradient, lower for logits that
    agree with the mask than for logits that contradict it, in float64 as in float32."""
    mask = (torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(2)) > 0.5).double()
    for dtype in (torch.float64, torch.float32):
        good = ((mask * 2 - 1) * 4).to(dtype).requires_grad_()
        loss = LOSSES[name].fn(good, mask.to(dtype))
        assert loss.dim() == 0 and torch.isfinite(loss) and loss.dtype == dtype
        loss.backward()
        assert good.grad is not None and torch.isfinite(good.grad).all() and good.grad.abs().sum() > 0
        bad = -good.detach()
        assert LOSSES[name].fn(bad, mask.to(dtype)) > loss


def test_the_loss_flag_and_the_step_follow_the_table(tmp_path):
    action = next(a for a in train_cli.build_parser()._actions if "--loss" in a.option_strings)
    assert list(action.choices) == list(LOSSES)
    from utils.training.recipe import make_step_config

    step = make_step_config(torch.device("cpu"), 64, [1.0], 0.5, "weighted")
    assert step.loss is LOSSES["weighted"].fn  # the step holds the callable
    with pytest.raises(ValueError, match="needs a name, a callable and a summary"):
        LossSpec("x", None, "")
    calls = []
    register_loss("counting", lambda lg, m: calls.append(1) or lg.mean() * 0, "a test entry")
    try:
        config = train_cli.parse_config(train_argv(tmp_path, tmp_path, "--loss", "counting"))
        assert config.loss == "counting"
        deep_supervision_loss([torch.zeros(1, 1, 4, 4)] * 4, torch.zeros(1, 1, 4, 4), loss=config.loss)
        assert len(calls) == 4  # P1..P4
    finally:
        del LOSSES["counting"]


# ----------------------------------------------------------------------------- metrics


def _pairs(count=3):
    rng = np.random.default_rng(4)
    for _ in range(count):
        _, gt = make_sample(rng, 96, 80)
        noisy = np.clip(gt.astype(float) * 0.8 + rng.normal(0, 40, gt.shape), 0, 255).astype(np.uint8)
        yield noisy, gt


@pytest.mark.parametrize("name", list(oracle_metrics("isnet")))
def test_every_built_in_metric_equals_its_oracle(name):
    spec = METRICS[name]
    ours = new_metrics("isnet", only=(name,))
    oracle = oracle_metrics("isnet", only=(name,))
    for pred, gt in _pairs():
        step_metrics(ours, pred, gt)
        with np.errstate(all="ignore"):
            oracle[name].step(pred, gt)
    values, curves = summarize(ours)
    expected, expected_curves = oracle_summary(oracle)
    assert list(values) == list(spec.keys)
    assert values == {k: expected[k] for k in spec.keys}  # exactly
    for key, curve in curves.items():
        assert np.array_equal(curve, expected_curves[key])


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_keeps_the_contract(name):
    """What eval.py needs of any entry: exactly its table keys, finite values, and chunks
    merged in order give what one pass over the same pairs gives."""
    from utils.evaluation.metrics import merge_metrics

    whole = new_metrics("isnet", only=(name,))
    chunks = [new_metrics("isnet", only=(name,)) for _ in range(3)]
    for chunk, (pred, gt) in zip(chunks, _pairs()):
        step_metrics(whole, pred, gt)
        step_metrics(chunk, pred, gt)
    values, curves = summarize(whole)
    assert list(values) == list(METRICS[name].keys) and all(np.isfinite(v) for v in values.values())
    merged, merged_curves = summarize(merge_metrics(chunks))
    assert merged == values and all(np.array_equal(merged_curves[k], c) for k, c in curves.items())


def test_reports_and_the_model_card_follow_the_table(tmp_path):
    from lib.weights.model_card import model_card

    results = {"m": {"DIS-TE1": {"num": 1, **{k: 0.5 for k in metric_keys()}}}}
    header = format_table(results).splitlines()[0]
    for key in metric_keys():
        arrow = "↑" if METRICS[next(n for n, s in METRICS.items() if key in s.keys)].better == "higher" else "↓"
        assert f" {key}{arrow}" in header
    paths = write_reports(results, tmp_path)
    written = json.loads(paths["json"].read_text())
    assert written["metrics"] == columns()
    card = model_card({"backbone": "pvt_v2_b2"}, 1, written)
    ids = [info["card"] for info in columns().values() if info["card"]]
    assert all(f"- {i}" in card for i in ids) and "| 0.500 |" in card


class _Count(PairMetric):
    lists = ("seen",)

    def __init__(self) -> None:
        self.seen = []

    def step(self, pair) -> None:
        self.seen.append(int(pair.mask.fg))

    def get_results(self):
        return {"objectPixels": float(np.mean(self.seen))}


def test_a_registered_metric_is_computed_reported_and_merged():
    with pytest.raises(ValueError, match="better 'higher' or 'lower'"):
        MetricSpec("bad", lambda o: _Count(), ("x",), "up")
    register_metric(MetricSpec("count", lambda o: _Count(), ("objectPixels",), "higher"))
    try:
        assert metric_keys()[-1] == "objectPixels"
        parts = []
        for pred, gt in _pairs(2):
            metrics = new_metrics("isnet")
            step_metrics(metrics, pred, gt)
            parts.append(metrics)
        from utils.evaluation.metrics import merge_metrics

        merged = merge_metrics(parts)
        values, _ = summarize(merged)
        assert values["objectPixels"] == np.mean([int(np.count_nonzero(gt > 128)) for _, gt in _pairs(2)])
        assert "objectPixels↑" in format_table({"m": {"s": {"num": 2, **values}}})
    finally:
        del METRICS["count"]


# ----------------------------------------------------------------------------- run config


def test_every_run_folder_holds_its_config_updated_on_resume(tmp_path, synthetic_train):
    from utils.training.run import run_training

    run_training(train_cli.parse_config(train_argv(tmp_path, synthetic_train, "--epoch", "1", "--seed", "5")))
    path = tmp_path / "checkpoints" / "FSANet" / "config.json"
    first = json.loads(path.read_text())
    assert first["train"]["seed"] == 5 and first["train"]["epoch"] == 1
    assert first["versions"]["torch"] == metadata.version("torch") and first["versions"]["python"] == sys.version.split()[0]
    assert [s["from_epoch"] for s in first["starts"]] == [0]
    argv = train_argv(tmp_path, synthetic_train, "--epoch", "2", "--seed", "5", "--resume", str(path.parent))
    run_training(train_cli.parse_config(argv))
    second = json.loads(path.read_text())
    assert second["train"]["epoch"] == 2 and [s["from_epoch"] for s in second["starts"]] == [0, 1]


def test_config_file_starts_a_run_and_the_command_line_wins(tmp_path, synthetic_train):
    recipe = tmp_path / "recipe.json"
    given = train_cli.parse_config(train_argv(tmp_path, synthetic_train, "--seed", "7", "--lr", "3e-4"))
    recipe.write_text(json.dumps({"train": {**given.as_dict(), "resume": "elsewhere"}}))
    config = train_cli.parse_config(["--config_file", str(recipe), "--lr", "1e-3"])
    assert config.seed == 7 and config.lr == 1e-3 and config.trainsize == 64  # file, flag over file, file
    assert config.resume is None  # a recipe does not carry the run-only options
    assert config.train_path == str(synthetic_train)
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert train_cli.main(["--config_file", str(tmp_path / "bad.json")]) == 2


# ----------------------------------------------------------------------------- bugs keep their traceback

BUGGY_LOSS = """
import sys
sys.path.insert(0, {tests!r})
import torch.nn.functional as F
from utils.training.losses import register_loss
from conftest import train_argv
import train

def buggy(logits, mask):  # a genuine bug: the target is cropped
    return F.binary_cross_entropy_with_logits(logits, mask[..., :-1])

register_loss("authors", buggy, "a bug", replace=True)
sys.exit(train.main(train_argv({root!r}, {data!r}, "--epoch", "1")))
"""


def test_a_bug_inside_the_loss_keeps_its_traceback(tmp_path, synthetic_train):
    code = BUGGY_LOSS.format(tests=str(ROOT / "tests"), root=str(tmp_path), data=str(synthetic_train))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode not in (0, 2), done.stderr[-2000:]
    assert "Traceback (most recent call last)" in done.stderr
    assert "Target size" in done.stderr and "in buggy" in done.stderr


def test_the_docs_tables_are_the_code_tables():
    import re

    from models.registry import markdown_table as backbones
    from utils.evaluation.metrics import markdown_table as metrics
    from utils.training.losses import markdown_table as losses

    page = (ROOT / "docs" / "extending.md").read_text()
    shown = dict(re.findall(r"<!-- table: (\w+) -->\n(.*?)\n<!-- end table -->", page, re.S))
    assert set(shown) == {"backbones", "losses", "metrics"}
    for name, table in (("backbones", backbones()), ("losses", losses()), ("metrics", metrics())):
        # every row the page shows is the code's row of that entry (a stale row fails); an entry
        # added since shows up once the table is printed again (see the page)
        assert set(shown[name].splitlines()) <= set(table.splitlines()), name
