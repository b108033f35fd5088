"""Our FSANet against the authors' model on deterministic weights (tests/fixtures).

With the recipe weights, activations reach the thousands and most of SFF's
selection weights sit in a saturated sigmoid. The few pixels whose gate argument
is near zero flip on float rounding alone: the same implementation run with 1 or
2 CPU threads differs there by 1.6 std of P1 (measured). Those pixels cannot be matched
by any implementation that does not repeat every floating-point operation in the
authors' order on the authors' machine. So:

- P4 and the frequency map (which do not pass through SFF) must match everywhere:
  max|ours − authors| / std(authors) < 1e-4, the criterion of the issue;
- P1–P3 must match on the typical pixel: the median ratio < 1e-4 and at least
  half of all pixels below 1e-4. One wrong interpolation flag puts the median at
  0.1–0.6, so this still fails on every structural mistake we could make.

``test_sff_gate_is_chaotic_on_recipe_weights`` proves the premise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

OUTPUT_NAMES = ("P1", "P2", "P3", "P4", "frequency")


def _ratios(model, reference_outputs, name):
    with torch.no_grad():
        outputs = model(torch.from_numpy(reference_outputs[f"{name}_input"]))
    ratios = {}
    for out, key in zip(outputs, OUTPUT_NAMES):
        ref = reference_outputs[f"{name}_{key}"]
        assert out.shape == ref.shape
        ratios[key] = np.abs(out.numpy() - ref) / ref.std()
    return ratios


@pytest.mark.parametrize("name", ["square", "wide"])
def test_unsaturated_outputs_match_authors_everywhere(faithful_model, reference_outputs, name):
    ratios = _ratios(faithful_model, reference_outputs, name)
    for key in ("P4", "frequency"):
        assert ratios[key].max() < 1e-4, f"{name} {key}: max ratio {ratios[key].max():.2e}"


@pytest.mark.parametrize("name", ["square", "wide"])
def test_decoder_outputs_match_authors_on_typical_pixels(faithful_model, reference_outputs, name):
    ratios = _ratios(faithful_model, reference_outputs, name)
    for key in ("P1", "P2", "P3"):
        median, share = np.median(ratios[key]), (ratios[key] < 1e-4).mean()
        assert median < 1e-4, f"{name} {key}: median ratio {median:.2e}"
        assert share > 0.5, f"{name} {key}: only {share:.0%} of pixels within 1e-4"


def test_sff_gate_is_chaotic_on_recipe_weights(faithful_model, reference_outputs):
    """A 1e-6 relative change of the input moves P1 by >1% of its std, P4 by <1e-3."""
    x = torch.from_numpy(reference_outputs["square_input"])
    with torch.no_grad():
        a = faithful_model(x)
        b = faithful_model(x * (1 + 1e-6))
    change = [float((p - q).abs().max() / p.std()) for p, q in zip(a, b)]
    assert change[0] > 1e-2
    assert change[3] < 1e-3


def test_parameter_count_is_authors_minus_unused(faithful_model, authors_manifest):
    # The authors' model has 109,194,130 parameters. Dropped because their forward
    # never uses them: conv_up2..conv_up4 (3 × (64·64·9 + 64) = 110,784) and
    # sff.bn_out's weight and bias (128): 110,912 in all.
    assert sum(p.numel() for p in faithful_model.parameters()) == 109_194_130 - 110_912
    # Buffers included, the state dict is the authors' 1,133 tensors minus 11.
    assert len(faithful_model.state_dict()) == len(authors_manifest) - 11 == 1122
