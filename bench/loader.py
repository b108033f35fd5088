"""Images/s of the training loader on DIS-sized images, uncached vs --cache_dir.

    python -m bench.loader --count 12 --min_side 2048 --max_side 4096 --trainsize 736

Generates JPEG/PNG pairs of DIS5K's sizes (2–4 k px) once in --data, then reads
them through utils.data.dataset.TrainDataset in a DataLoader: uncached, the pass that
fills the cache, and cached.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from utils.data.dataset import TrainDataset
from utils.data.pairing import training_pairs
from utils.data.synthetic import write_dataset

ROOT = Path(__file__).resolve().parents[1]


def make_data(root: Path, count: int, min_side: int, max_side: int) -> None:
    if root.exists() and len(list((root / "Imgs").glob("*.jpg"))) == count:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    for i in range(count):  # one pair per size, DIS-like aspect ratios
        width = int(rng.integers(min_side, max_side + 1))
        height = int(width * rng.uniform(0.6, 0.9))
        written = write_dataset(root / "tmp", 1, (width, height), "authors", seed=i)[0]
        for src, sub in zip(written, ("Imgs", "GT")):
            (root / sub).mkdir(parents=True, exist_ok=True)
            src.rename(root / sub / f"dis_{i:04d}{src.suffix}")
    shutil.rmtree(root / "tmp")


def rate(dataset: TrainDataset, workers: int, epochs: int = 1) -> float:
    """Images/s over ``epochs`` passes, worker start-up excluded (persistent workers, one warm-up item)."""
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, persistent_workers=workers > 0)
    if workers > 0:
        next(iter(loader))  # start the workers
    start = time.perf_counter()
    for _ in range(epochs):
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="bench/data/dis_sized")
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--min_side", type=int, default=2048)
    p.add_argument("--max_side", type=int, default=4096)
    p.add_argument("--trainsize", type=int, default=736)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default="bench/results/loader.json")
    args = p.parse_args(argv)
    data = Path(args.data)
    make_data(data, args.count, args.min_side, args.max_side)
    pairs = training_pairs(data)
    cache = data.parent / f"{data.name}_cache"
    shutil.rmtree(cache, ignore_errors=True)
    results = {
        "uncached": rate(TrainDataset(pairs, args.trainsize), args.workers),
        "cache_fill": rate(TrainDataset(pairs, args.trainsize, cache), args.workers),
        "cached": rate(TrainDataset(pairs, args.trainsize, cache), args.workers, epochs=3),
    }
    results["cached_over_uncached"] = results["cached"] / results["uncached"]
    print(
        f"loader: {len(pairs)} pairs of {args.min_side}-{args.max_side} px → {args.trainsize}, "
        f"{args.workers} workers, torch {torch.__version__}"
    )
    for key, value in results.items():
        print(f"  {key:22s} {value:8.2f}{'' if key.endswith('uncached') and key != 'uncached' else ' images/s'}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"config": vars(args), "env": {"machine": platform.machine(), "torch": torch.__version__}, "results": results},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
