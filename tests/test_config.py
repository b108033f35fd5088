"""One config object per command, checked in one place: TrainConfig and PredictConfig
normalise and validate every field, refuse unknown keys, are not changed by a run, and
every flag of the scripts lands in a field (or is the script's own)."""

from __future__ import annotations

import logging
from dataclasses import fields

import pytest
from conftest import train_args

import app as app_cli
import test as test_cli
import train as train_cli
from lib.configs import get_config
from lib.FSANet import CHECKPOINT_PARTS, build_fsanet
from lib.saving import save_checkpoint
from utils.inference.config import DEFAULT_TESTSIZE, PredictConfig
from utils.training.config import TrainConfig
from utils.training.start import prepare_model

#: flags that are the script's own, not the prediction config's
TEST_ONLY = {"save_path", "test_path", "sets", "input", "no_progress", "cutout"}
APP_ONLY = {"config", "threshold", "max_pixels", "max_file_size", "host", "port", "keep_results"}


def _dests(parser) -> set:
    return {action.dest for action in parser._actions if action.dest != "help"}


def test_every_train_flag_is_a_train_config_field_and_back():
    # --config_file is no option of the run: it is where the options come from
    assert _dests(train_cli.build_parser()) == {f.name for f in fields(TrainConfig)} | {"config_file"}


def test_test_and_app_flags_are_the_prediction_config_plus_their_own():
    predict = {f.name for f in fields(PredictConfig)}
    assert _dests(test_cli.build_parser()) == predict | TEST_ONLY
    app = _dests(app_cli.build_parser())
    assert app - APP_ONLY <= predict and {"pth_path", "onnx", "testsize", "device", "amp"} <= app


def test_one_default_test_size():
    assert PredictConfig().testsize == DEFAULT_TESTSIZE == 992
    for parser in (test_cli.build_parser(), app_cli.build_parser()):
        assert parser.get_default("testsize") == DEFAULT_TESTSIZE


def test_train_config_rounds_sizes_wherever_it_is_made(caplog):
    with caplog.at_level(logging.WARNING):
        config = TrainConfig(trainsize=720, val_size=1000, val_path="somewhere")
    assert (config.trainsize, config.val_size) == (704, 992)
    assert "--trainsize 720" in caplog.text and "--val_size 1000" in caplog.text
    assert PredictConfig(testsize=1000).testsize == 992


@pytest.mark.parametrize(
    "values, message",
    [
        ({"loss": "authers"}, "--loss must be one of authors, .*got 'authers'"),
        ({"drop_path": 1.0}, r"--drop_path must be in \[0, 1\)"),
        ({"grad_checkpoint": ("encoder", "decoderr")}, "unknown checkpoint parts"),
        ({"amp": "fp8"}, "--amp"),
        ({"val_size": 0}, "--val_size"),
    ],
)
def test_train_config_refuses_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)


def test_grad_checkpoint_is_an_explicit_tuple_of_parts():
    assert TrainConfig().grad_checkpoint == ()
    assert TrainConfig(grad_checkpoint=["hcf", "encoder"]).grad_checkpoint == ("encoder", "hcf")
    assert TrainConfig(grad_checkpoint=("all",)).grad_checkpoint == CHECKPOINT_PARTS
    assert train_cli.parse_config(["--grad_checkpoint"]).grad_checkpoint == ("encoder",)  # the bare flag
    assert train_cli.parse_config([]).grad_checkpoint == ()


def test_from_dict_refuses_unknown_keys():
    values = TrainConfig().as_dict()
    assert TrainConfig.from_dict(values) == TrainConfig()
    with pytest.raises(ValueError, match=r"unknown training options \['lerning_rate'\]"):
        TrainConfig.from_dict({**values, "lerning_rate": 1e-3})


def test_prediction_config_refuses_bad_values():
    with pytest.raises(ValueError, match="not both"):
        PredictConfig(pth_path="a.pth", onnx="a.onnx")
    with pytest.raises(ValueError, match="--amp"):
        PredictConfig(amp="fp8")
    with pytest.raises(ValueError, match="--batch_size"):
        PredictConfig(batch_size=0)


def test_resume_returns_the_effective_config_and_leaves_the_given_one(tmp_path, synthetic_train):
    small = get_config("fsanet_small")
    path = save_checkpoint(tmp_path / "latest.pth", build_fsanet(small), epoch=1, args={})
    given = train_args(tmp_path, synthetic_train, "--resume", str(path), "--decoder_channels", "48")
    before = given.as_dict()
    _, start = prepare_model(given)
    assert given.as_dict() == before and given.decoder_channels == 48
    assert start.config.decoder_channels == small["decoder_channels"]  # the checkpoint's architecture
    assert start.config is not given


@pytest.mark.parametrize(
    "script, page",
    [("train", "training.md"), ("test", "prediction.md"), ("eval", "evaluation.md"), ("app", "webapp.md")],
)
def test_every_flag_is_in_its_reference_page(script, page):
    """The docs page of each command names every one of its flags (the README links the pages)."""
    import importlib

    from conftest import ROOT

    text = (ROOT / "docs" / page).read_text()
    flags = [o for a in importlib.import_module(script).build_parser()._actions for o in a.option_strings if o != "--help"]
    missing = [flag for flag in flags if flag.startswith("--") and f"`{flag}" not in text]
    assert missing == [], f"docs/{page} does not document {missing}"
