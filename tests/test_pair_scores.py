"""The fast scoring path equals pysodmetrics (and scikit-image) to the last bit, not approximately."""

from __future__ import annotations

import cv2
import numpy as np
import py_sod_metrics as sod
import pytest
from scipy.ndimage import convolve
from skimage import morphology

from utils.data.synthetic import make_sample
from utils.evaluation import pairs
from utils.evaluation.hce import HumanCorrectionEffort
from utils.evaluation.metrics import add_pair, new_metrics
from utils.evaluation.oracle import oracle_metrics, oracle_per_image
from utils.evaluation.pairs import MaskQuantities
from utils.evaluation.skeleton import skeletonize


def _blobs(rng, h, w, sigma=None, level=None):
    noise = rng.random((h, w)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), float(sigma or rng.uniform(0.5, 3)))
    return smooth > (level if level is not None else rng.uniform(0.3, 0.7))


def _masks(seed=0, count=60):
    """Random masks of many kinds: thin, thick, holed, touching the border, tiny, empty, full."""
    rng = np.random.default_rng(seed)
    out = [np.zeros((9, 7), bool), np.ones((6, 11), bool), np.ones((1, 1), bool), np.ones((1, 9), bool)]
    out.append(np.pad(np.ones((20, 30), bool), 3))  # a solid block
    ring = np.zeros((41, 41), np.uint8)
    cv2.circle(ring, (20, 20), 15, 1, 4)
    cv2.circle(ring, (20, 20), 5, 1, -1)  # an island inside a hole
    out.append(ring.astype(bool))
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(2, 80, 2))
        out.append(_blobs(rng, h, w) if rng.random() < 0.7 else rng.random((h, w)) < rng.random())
    out.append(make_sample(np.random.default_rng(4), 320, 240)[1] > 128)  # lines, meshes, nested shapes
    return out


def test_skeleton_equals_scikit_image_pixel_for_pixel():
    for mask in _masks():
        assert np.array_equal(skeletonize(mask), morphology.skeletonize(mask)), mask.shape


def _maps(gt_u8, rng):
    """Predictions of several kinds for one mask: noisy, model-like, constant, inverted, 0/1."""
    blurred = cv2.GaussianBlur(gt_u8.astype(np.float32), (0, 0), 1.5)
    noisy = np.clip(
        blurred * rng.uniform(0.3, 1) + rng.normal(0, rng.uniform(1, 90), gt_u8.shape) + rng.uniform(-40, 80), 0, 255
    )
    saturated = np.clip((blurred - 128) * 4 + 128, 0, 255)
    return [
        noisy.astype(np.uint8),
        saturated.astype(np.uint8),
        np.full_like(gt_u8, int(rng.integers(0, 256))),
        255 - gt_u8,
        (gt_u8 > 128).astype(np.uint8),
        gt_u8.copy(),
    ]


#: the table's metrics pysodmetrics defines (an entry added to the table has its own contract tests)
ORACLE = tuple(oracle_metrics("isnet"))


def _reference(pred, gt):
    """pysodmetrics' own objects stepped on the pair (the oracle)."""
    metrics = oracle_metrics("isnet")
    for metric in metrics.values():
        metric.step(pred, gt)
    return oracle_per_image(metrics)


def _per_image(metrics):
    """Every per-image list of the table's metric objects, as ``name.list``."""
    return {f"{key}.{name}": values for key, metric in metrics.items() for name, values in metric.per_image().items()}


def _lists(found):
    """Per-image lists from metric objects, or the lists themselves (the oracle's)."""
    return found if isinstance(next(iter(found.values())), list) else _per_image(found)


def _assert_bit_equal(ours, reference, what):
    ours, reference = _lists(ours), _lists(reference)
    assert ours.keys() == reference.keys()
    for name, values in reference.items():
        assert len(ours[name]) == len(values), (what, name)
        for a, b in zip(ours[name], values):
            a, b = np.asarray(a), np.asarray(b)
            assert a.shape == b.shape, (what, name)
            assert np.array_equal(a, b, equal_nan=True), (what, name, a, b)


@pytest.mark.parametrize("sparse_share", [0.0, 1.0, pairs.SPARSE_SHARE], ids=["whole-filter", "sparse-filter", "auto"])
def test_every_per_image_value_equals_pysodmetrics_exactly(monkeypatch, sparse_share):
    monkeypatch.setattr(pairs, "SPARSE_SHARE", sparse_share)
    rng = np.random.default_rng(11)
    for index, mask in enumerate(_masks(seed=1, count=25)):
        gt = mask.astype(np.uint8) * 255
        for pred in _maps(gt, rng):
            ours = new_metrics("isnet", only=ORACLE)
            add_pair(ours, pred, gt)
            with np.errstate(all="ignore"):
                reference = _reference(pred, gt)
            _assert_bit_equal(ours, reference, (index, gt.shape))


def test_normalisation_is_pysodmetrics_prepare_data_bit_for_bit():
    rng = np.random.default_rng(6)
    for pred in (
        rng.integers(0, 256, (40, 30), dtype=np.uint8),
        np.full((5, 5), 77, np.uint8),
        rng.integers(30, 90, (9, 9), dtype=np.uint8),
    ):
        expected, _ = sod.utils.prepare_data(pred, np.zeros_like(pred))
        assert np.array_equal(pairs.normalise(pred), expected)


def test_one_mask_shared_by_several_methods_changes_nothing():
    rng = np.random.default_rng(2)
    _, gt = make_sample(rng, 200, 150)
    shared = MaskQuantities(gt)
    for pred in _maps(gt, rng):
        with_shared, fresh = new_metrics("isnet", only=ORACLE), new_metrics("isnet", only=ORACLE)
        add_pair(with_shared, pred, gt, shared)
        add_pair(fresh, pred, gt)
        _assert_bit_equal(with_shared, fresh, "shared")
        _assert_bit_equal(with_shared, _reference(pred, gt), "pysodmetrics")


def test_a_dis_like_mask_with_model_like_and_noisy_maps_scores_exactly(monkeypatch):
    from bench.eval_dis import predictions

    rng = np.random.default_rng([23, 5])
    _, gt = make_sample(rng, 900, 700)  # lines, meshes, nested shapes, as the DIS-size bench
    for share in (0.0, 1.0):
        monkeypatch.setattr(pairs, "SPARSE_SHARE", share)
        for pred in predictions(gt, rng).values():
            ours = new_metrics("isnet", only=ORACLE)
            add_pair(ours, pred, gt)
            _assert_bit_equal(ours, _reference(pred, gt), share)


def test_the_filter_at_chosen_pixels_is_scipys_convolution_there():
    rng = np.random.default_rng(3)
    kernel = sod.WeightedFmeasure().matlab_style_gauss2D((7, 7), sigma=5)
    for h, w in ((1, 1), (2, 9), (13, 5), (64, 80)):
        image = rng.random((h, w)) * (rng.random((h, w)) < 0.7)
        pixels = np.flatnonzero(rng.random(h * w) < 0.5)
        whole = convolve(image, weights=kernel, mode="constant", cval=0)
        padded = np.pad(image, 3).reshape(-1)
        assert np.array_equal(pairs._filtered_at(padded, w, pixels, kernel), whole.reshape(-1)[pixels])


def test_hce_walk_on_arrays_equals_pysodmetrics_on_holes_islands_and_borders():
    rng = np.random.default_rng(4)
    for mask in _masks(seed=5, count=40):
        gt = mask.astype(np.uint8) * 255
        for pred in _maps(gt, rng)[:2]:
            ours = HumanCorrectionEffort("pysod")
            ours.step(pred, gt)
            reference = sod.HumanCorrectionEffortMeasure(relax=5, epsilon=2.0)
            reference.step(pred, gt)
            assert ours.hces == reference.hces, gt.shape


def test_pieces_grouped_by_shape_are_the_rows_np_unique_finds():
    from utils.evaluation.hce import _distinct_rows

    rng = np.random.default_rng(8)
    rows = rng.integers(-3, 4, (500, 6))[rng.integers(0, 40, 500)]  # 40 shapes, repeated
    distinct, inverse = _distinct_rows(rows)
    assert np.array_equal(distinct[inverse], rows)
    assert len(distinct) == len(np.unique(rows, axis=0))
