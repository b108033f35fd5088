"""Dataset discovery, decoding, the resize cache and the synthetic generator."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from utils.data.dataset import TrainDataset
from utils.data.folders import DatasetError
from utils.data.images import read_mask, read_rgb
from utils.data.pairing import scan_pairs, training_pairs
from utils.data.synthetic import make_sample, write_dataset


def _write(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def _pair_dir(root, images, masks, size=(16, 12)):
    w, h = size
    for name in images:
        _write(root / "Imgs" / name, np.full((h, w, 3), 100, np.uint8))
    for name in masks:
        _write(root / "GT" / name, np.zeros((h, w), np.uint8))
    return root


def test_pairs_by_stem_and_names_every_unpaired_file(tmp_path, caplog):
    root = _pair_dir(tmp_path / "ds", ["a.jpg", "b.jpg", "c.png"], ["a.png", "c.png", "d.png"])
    (root / "Imgs" / "notes.txt").write_text("not an image")
    (root / "GT" / ".DS_Store").write_bytes(b"\0")  # hidden files are ignored
    scan = scan_pairs(root)
    assert [(i.name, m.name) for i, m in scan.pairs] == [("a.jpg", "a.png"), ("c.png", "c.png")]
    assert scan.images_without_mask == [os.path.join("Imgs", "b.jpg")]
    assert scan.masks_without_image == [os.path.join("GT", "d.png")]
    assert scan.not_images == [os.path.join("Imgs", "notes.txt")]
    with pytest.raises(DatasetError) as error:
        training_pairs(root)
    message = str(error.value)
    for name in ("b.jpg", "d.png", "notes.txt", "--skip_unpaired"):
        assert name in message
    with caplog.at_level(logging.WARNING):
        pairs = training_pairs(root, skip_unpaired=True)
    assert len(pairs) == 2 and "b.jpg" in caplog.text


def test_size_mismatch_is_dropped_with_a_warning_naming_it(tmp_path, caplog):
    root = _pair_dir(tmp_path / "ds", ["a.jpg", "b.jpg"], ["a.png"])
    _write(root / "GT" / "b.png", np.zeros((5, 7), np.uint8))
    with caplog.at_level(logging.WARNING):
        pairs = training_pairs(root)
    assert [p[0].name for p in pairs] == ["a.jpg"]
    assert "b (image 16×12, mask 7×5)" in caplog.text


def test_unreadable_and_ambiguous_files_are_named(tmp_path):
    root = _pair_dir(tmp_path / "ds", ["a.jpg", "b.jpg", "b.png"], ["a.png", "b.png"])
    (root / "GT" / "a.png").write_bytes(b"truncated")
    scan = scan_pairs(root)
    assert scan.pairs == []
    assert any("a.png" in u for u in scan.unreadable)
    assert any("b.jpg" in d and "b.png" in d for d in scan.duplicate_stems)


@pytest.mark.parametrize("make", ["missing", "no_layout", "empty"])
def test_missing_or_empty_folder_shows_the_expected_layout(tmp_path, make):
    root = tmp_path / "ds"
    if make == "no_layout":
        (root / "images").mkdir(parents=True)
    elif make == "empty":
        (root / "im").mkdir(parents=True)
        (root / "gt").mkdir()
    with pytest.raises(DatasetError, match=r"<root>/Imgs/<name>\.jpg \+ <root>/GT/<name>\.png") as error:
        training_pairs(root)
    assert "<root>/im/" in str(error.value)


def test_both_layouts_give_the_same_pairs(tmp_path):
    write_dataset(tmp_path / "authors", 3, 40, "authors", seed=5)
    write_dataset(tmp_path / "dis5k", 3, 40, "dis5k", seed=5)
    a, d = training_pairs(tmp_path / "authors"), training_pairs(tmp_path / "dis5k")
    assert [p[1].parent.name for p in d] == ["gt"] * 3 and [p[1].parent.name for p in a] == ["GT"] * 3
    for (ai, am), (di, dm) in zip(a, d):
        assert ai.read_bytes() == di.read_bytes() and am.read_bytes() == dm.read_bytes()


def test_grey_rgba_palette_and_16bit_files_decode_correctly(tmp_path):
    grey = np.array([[0, 128], [255, 7]], np.uint8)
    rgb = np.stack([grey, 255 - grey, grey // 2], -1)
    # images
    _write(tmp_path / "grey.png", grey)
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "grey.png")), np.repeat(grey[..., None], 3, -1))
    _write(tmp_path / "rgba.png", np.dstack([rgb, np.full_like(grey, 10)]))
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "rgba.png")), rgb)  # alpha dropped, as the authors
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "grey16.png"))[..., 0], grey)
    # masks
    _write(tmp_path / "m_grey.png", grey)
    assert np.array_equal(np.asarray(read_mask(tmp_path / "m_grey.png")), grey)
    assert np.array_equal(np.asarray(read_mask(tmp_path / "grey16.png")), grey)  # Pillow's convert("L") gives 255s
    binary = np.array([[0, 1], [1, 0]], np.uint8)
    palette = Image.fromarray(binary, mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "m_pal.png")
    assert np.array_equal(np.asarray(read_mask(tmp_path / "m_pal.png")), binary * 255)
    cutout = np.dstack([np.full((2, 2, 3), 255, np.uint8), binary * 255])  # white, shape in alpha
    _write(tmp_path / "m_alpha.png", cutout)
    assert np.array_equal(np.asarray(read_mask(tmp_path / "m_alpha.png")), binary * 255)
    opaque = np.dstack([np.repeat(grey[..., None], 3, -1), np.full_like(grey, 255)])
    _write(tmp_path / "m_opaque.png", opaque)
    assert np.array_equal(np.asarray(read_mask(tmp_path / "m_opaque.png")), grey)


def test_dataset_matches_the_authors_transforms(synthetic_train):
    import torchvision.transforms as T

    pairs = training_pairs(synthetic_train)
    image, mask = TrainDataset(pairs, 64)[1]
    resize = T.Resize((64, 64))
    expected_image = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(
        T.ToTensor()(resize(Image.open(pairs[1][0]).convert("RGB")))
    )
    expected_mask = T.ToTensor()(resize(Image.open(pairs[1][1]).convert("L")))
    assert torch.equal(image, expected_image) and torch.equal(mask, expected_mask)
    assert image.shape == (3, 64, 64) and mask.shape == (1, 64, 64)
    assert 0 < mask.mean() < 1 and len(torch.unique(mask)) > 2  # resized, not binarised


def test_cache_gives_the_uncached_tensors_and_is_rebuilt_on_change(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, 2, (90, 70), seed=3)
    pairs = training_pairs(root)
    cache = tmp_path / "cache"
    plain, cached = TrainDataset(pairs, 64), TrainDataset(pairs, 64, cache)
    for i in range(2):
        for first, second in zip(plain[i], cached[i]):
            assert torch.equal(first, second)
    assert len(list(cache.glob("*.npy"))) == 4
    for first, second in zip(plain[0], cached[0]):  # now read from the cache
        assert torch.equal(first, second)
    # a changed source file is re-decoded
    before = cached[0][0]
    image = np.asarray(Image.open(pairs[0][0]))
    Image.fromarray(255 - image).save(pairs[0][0])
    os.utime(pairs[0][0], ns=(1, 1))  # mtime alone would suffice; make it differ for sure
    assert torch.equal(TrainDataset(pairs, 64, cache)[0][0], TrainDataset(pairs, 64)[0][0])
    assert not torch.equal(TrainDataset(pairs, 64, cache)[0][0], before)
    # another size gets its own entries
    assert TrainDataset(pairs, 32, cache)[1][0].shape == (3, 32, 32)
    assert len(list(cache.glob("*.npy"))) == 7


def test_synthetic_data_is_deterministic_exact_and_fine(tmp_path):
    first = make_sample(np.random.default_rng([7, 0]), 128, 96)
    again = make_sample(np.random.default_rng([7, 0]), 128, 96)
    other = make_sample(np.random.default_rng([8, 0]), 128, 96)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], other[1])
    image, mask = first
    assert image.shape == (96, 128, 3) and mask.shape == (96, 128)
    assert set(np.unique(mask)) <= {0, 255}
    # sample i does not depend on how many are written
    small, big = write_dataset(tmp_path / "s", 2, 64, seed=4), write_dataset(tmp_path / "b", 5, 64, seed=4)
    assert small[1][1].read_bytes() == big[1][1].read_bytes()
    # the masks hold thin structures: many object pixels lie next to background
    masks = [np.asarray(Image.open(m)) > 0 for _, m in big]
    boundary = sum((m & ~np.pad(m, 1)[2:, 1:-1]).sum() for m in masks)
    assert boundary > 0.1 * sum(m.sum() for m in masks)
