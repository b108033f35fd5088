"""BatchNorm folding for inference: the same maps, fewer modules, training refused."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lib.configs import CONFIGS
from lib.fold_batchnorm import conv_bn_pairs, fold_batchnorm
from lib.FSANet import build_fsanet
from utils.inference.processing import map_difference, postprocess


def _model(config="fsanet_small"):
    torch.manual_seed(0)
    model = build_fsanet(CONFIGS[config])
    for module in model.modules():  # statistics far from the identity, as a trained model has
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.3, 3.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


def test_folded_model_gives_the_same_maps_and_logits():
    model = _model()
    folded = copy.deepcopy(model)
    count = fold_batchnorm(folded)
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert 0 < count and left == batchnorms - count
    x = torch.randn(2, 3, 96, 128)
    with torch.inference_mode():
        expected, got = model(x), folded(x)
    for a, b in zip(expected, got):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    for i in range(2):
        diff = map_difference(postprocess(got[0][i], (96, 128)), postprocess(expected[0][i], (96, 128)))
        assert diff.max_grey <= 1


def test_modules_called_twice_keep_their_batchnorm():
    model = _model()
    pairs = dict(conv_bn_pairs(model))
    assert not any(name.startswith(("feature_fusion", "head")) for name in pairs.values())  # shared across levels
    assert any(name.startswith("frequency_branch") for name in pairs.values())  # the ResNet's conv-BN pairs


def test_the_paper_model_folds_its_encoder_and_decoder_pairs():
    model = build_fsanet().eval()
    assert len(conv_bn_pairs(model, size=64)) == 115


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="model.eval"):
        fold_batchnorm(_model().train())


def test_the_predictor_folds_with_fold_bn_and_keeps_the_maps(tmp_path):
    import numpy as np
    from PIL import Image

    from lib.saving import save_checkpoint
    from utils.inference.config import PredictConfig
    from utils.inference.predict import load_predictor

    model = _model()
    path = tmp_path / "small.pth"
    save_checkpoint(path, model)
    plain, _ = load_predictor(PredictConfig(pth_path=str(path), testsize=64, device="cpu"))
    folded, _ = load_predictor(PredictConfig(pth_path=str(path), testsize=64, device="cpu", fold_bn=True))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) < sum(
        isinstance(m, nn.BatchNorm2d) for m in plain.modules()
    )
    image = torch.from_numpy(np.array(Image.new("RGB", (64, 64), (90, 120, 200)))).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        a, b = plain(image)[0][0], folded(image)[0][0]
    assert map_difference(postprocess(b, (64, 64)), postprocess(a, (64, 64))).max_grey <= 1


def test_compile_wraps_the_model_and_pytorch_options_are_refused_for_onnx(tmp_path):
    from lib.saving import save_checkpoint
    from utils.inference.config import PredictConfig
    from utils.inference.predict import load_predictor

    path = tmp_path / "small.pth"
    save_checkpoint(path, _model())
    compiled, _ = load_predictor(PredictConfig(pth_path=str(path), testsize=64, device="cpu", compile=True))
    assert type(compiled).__name__ == "OptimizedModule" and type(compiled._orig_mod).__name__ == "FSANet"
    for option in ({"fold_bn": True}, {"compile": True}):
        with pytest.raises(ValueError, match="apply to PyTorch"):
            load_predictor(PredictConfig(onnx=str(tmp_path / "model.onnx"), **option))
