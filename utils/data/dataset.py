"""The training dataset: the authors' transforms, plus an optional resized-copy cache.

Per pair (as the authors): image → RGB → resize to trainsize × trainsize (Pillow
bilinear) → tensor → ImageNet normalisation; mask → 8-bit grey → same resize →
tensor in [0, 1] (not binarised). No other augmentation.

DIS5K images are 2–6 k pixels wide, so decoding and resizing them dominates a
CPU loader. With ``cache_dir`` the resized 8-bit arrays are stored once as
``.npy`` files; the tensors are then exactly those of the uncached path (the
resize output is 8-bit in both). A cache entry's name holds a hash of the source
file's path, size and modification time and of trainsize, so a changed file or
size is re-decoded and never read stale.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from utils.common.devices import smallest_chunk
from utils.common.distributed import DistInfo
from utils.common.errors import ConfigError
from utils.common.fileio import atomic_write
from utils.common.logs import get_logger
from utils.data.images import read_gt_mask, read_rgb
from utils.data.transforms import image_to_tensor, mask_to_tensor, resize_8bit

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: bump when the cached arrays' meaning changes: old entries are then ignored.
CACHE_VERSION = 2  # 2: 0/1 and colour masks converted (utils.data.images.read_gt_mask)


def cache_key(path: Path, size: int, kind: str) -> str:
    stat = path.stat()
    # the path as bytes: a file name that is not UTF-8 (a Latin-1 café.jpg) still has a key
    text = f"|{stat.st_size}|{stat.st_mtime_ns}|{size}|{kind}|{CACHE_VERSION}"
    return hashlib.sha1(os.fsencode(path.resolve()) + text.encode()).hexdigest()[:16]


class TrainDataset(Dataset):
    """(image, mask) tensors at ``trainsize`` for a list of (image path, mask path) pairs.

    Args:
        pairs: from :func:`utils.data.pairing.training_pairs`.
        trainsize: side of the square training input (the authors' 736).
        cache_dir: folder for resized copies (created); ``None`` decodes every time.
    """

    def __init__(self, pairs: Sequence[Tuple[Path, Path]], trainsize: int, cache_dir: Optional[PathLike] = None):
        self.pairs: List[Tuple[Path, Path]] = [(Path(i), Path(m)) for i, m in pairs]
        self.trainsize = int(trainsize)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._cache_warned = False
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.pairs)

    def _decode(self, path: Path, kind: str) -> Tuple[np.ndarray, Optional[str]]:
        """The file resized to trainsize, and (masks) the reader's conversion note."""
        if kind == "image":
            return resize_8bit(read_rgb(path), self.trainsize), None
        mask, note = read_gt_mask(path)
        return resize_8bit(Image.fromarray(mask), self.trainsize), note

    def _entry(self, path: Path, kind: str) -> Path:
        return self.cache_dir / f"{path.stem}-{kind}-{cache_key(path, self.trainsize, kind)}.npy"

    def _store(self, entry: Path, array: np.ndarray) -> None:
        try:
            atomic_write(entry, lambda handle: np.save(handle, array))
        except OSError as error:  # a full or read-only disk costs speed, not the run
            if not self._cache_warned:
                log.warning(
                    "--cache_dir %s: cannot write cache entries (%s); decoding without the cache",
                    self.cache_dir,
                    error.strerror or error,
                )
                self._cache_warned = True

    def _resized(self, path: Path, kind: str) -> np.ndarray:
        if self.cache_dir is None:
            return self._decode(path, kind)[0]
        entry = self._entry(path, kind)
        if entry.exists():
            try:
                return np.array(np.load(entry))
            except Exception:  # noqa: BLE001  any unreadable entry (0 bytes, truncated) is a cache miss
                pass
        array = self._decode(path, kind)[0]
        self._store(entry, array)
        return array

    def prepare(self, path: Path, kind: str) -> Optional[str]:
        """Decode one file as training will (raising if it cannot be), store its cache entry
        with ``cache_dir``, and return the mask's conversion note: the pre-training check
        then does the first epoch's decoding once, instead of twice."""
        array, note = self._decode(Path(path), kind)
        if self.cache_dir is not None:
            self._store(self._entry(Path(path), kind), array)
        return note

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        return image_to_tensor(self._resized(image_path, "image")), mask_to_tensor(self._resized(mask_path, "mask"))


def make_train_loader(
    dataset: Dataset,
    per_process: int,
    workers: int,
    seed: int,
    info: DistInfo,
    device: torch.device,
    replicas: int = 0,
    where: PathLike = "the training set",
) -> Tuple[DataLoader, Optional[DistributedSampler], torch.Generator]:
    """The training DataLoader (shuffled by a seeded generator, or a DistributedSampler under
    torchrun), its sampler and generator. A last batch that would put one image on a
    DataParallel GPU (``replicas``) or process is dropped, with a warning: SFF's BatchNorm
    cannot train on one image."""
    sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=seed) if info.enabled else None
    per_rank = len(sampler) if sampler is not None else len(dataset)
    remainder = per_rank % per_process
    drop_last = remainder > 0 and smallest_chunk(remainder, replicas) < 2
    if drop_last:
        log.warning(
            "%d images with batch %d leave a last batch of %d that puts 1 image on a GPU or process, "
            "which BatchNorm cannot train on: those images are skipped each epoch",
            per_rank,
            per_process,
            remainder,
        )
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        dataset,
        batch_size=per_process,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        generator=generator,
    )
    if len(dataset) < 2:
        raise ConfigError(
            f"{where}: {len(dataset)} usable pair; training needs at least 2 (every batch needs 2 "
            "images for SFF's BatchNorm): add images"
        )
    if len(loader) == 0:
        raise ConfigError(
            f"{where}: {len(dataset)} pairs give no full batch of {per_process}; add images or lower "
            "--batchsize (2 at the least)"
        )
    return loader, sampler, generator


def loader_failure(error: BaseException) -> Optional[str]:
    """One line for an error that came out of a DataLoader worker (a file deleted or damaged
    mid-run, a worker killed by the out-of-memory killer), or None for any other error.
    torch re-raises a worker's error with the worker's whole traceback in its message."""
    text = str(error)
    killed = re.search(
        r"DataLoader worker \(pid\(?s?\)? ?([\d, {}]+)\)? (?:is killed by signal: (.+?)\.|exited unexpectedly)", text
    )
    if killed:
        how = f"was killed by signal {killed.group(2)}" if killed.group(2) else "exited unexpectedly"
        return (
            f"a data-loading worker (pid {killed.group(1).strip('{} ')}) {how} — often the out-of-memory killer; "
            "lower --workers or --batchsize, or use --workers 0"
        )
    if "in DataLoader worker process" in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return f"in a data-loading worker: {lines[-1]}"
    return None
