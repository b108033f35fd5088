"""Images/s of eval.py's metric computation with 1 and N workers, with and without HCE,
and the gain of sharing each mask's skeleton between several methods.

    python -m bench.eval --count 16 --width 2048 --height 1536 --workers 2 --methods 3

Generates DIS-sized masks and noisy predictions once in --data, then times
utils.evaluation.scoring.evaluate (what eval.py runs) on them. For --methods M it times
one evaluate() call over M methods (each mask read and skeletonised once) against
M separate calls (once per method, as eval.py did before), on one worker, the two
interleaved run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from utils.data.synthetic import make_sample
from utils.evaluation.scoring import evaluate

ROOT = Path(__file__).resolve().parents[1]


def make_data(root: Path, count: int, width: int, height: int) -> None:
    gt_dir, pred_dir = root / "gt" / "DIS-TE1" / "GT", root / "pred" / "DIS-TE1"
    if gt_dir.exists() and len(list(gt_dir.glob("*.png"))) == count:
        return
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng([1, i])
        _, mask = make_sample(rng, width, height)
        blurred = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 3)
        pred = np.clip(blurred + rng.normal(0, 20, mask.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(gt_dir / f"m{i:04d}.png"), mask)
        cv2.imwrite(str(pred_dir / f"m{i:04d}.png"), pred)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="bench/data/eval")
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--height", type=int, default=1536)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    p.add_argument("--methods", type=int, default=3, help="methods for the shared-skeleton comparison (1: skip it)")
    p.add_argument("--repeats", type=int, default=2, help="runs of that comparison (the minimum is reported)")
    p.add_argument("--json", default="bench/results/eval.json")
    args = p.parse_args(argv)
    root = Path(args.data)
    make_data(root, args.count, args.width, args.height)
    results = {}
    for hce in (True, False):
        for workers in sorted({1, args.workers}):
            start = time.perf_counter()
            evaluate({"m": root / "pred"}, root / "gt", workers=workers, hce_rule="isnet" if hce else None, progress=False)
            results[f"{'with' if hce else 'without'}_hce_workers{workers}"] = args.count / (time.perf_counter() - start)
    if args.methods > 1:
        methods = {f"m{i}": root / "pred" for i in range(args.methods)}
        shared, separate = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            together, _ = evaluate(methods, root / "gt", progress=False)
            shared.append(time.perf_counter() - start)
            start = time.perf_counter()
            apart = {m: evaluate({m: path}, root / "gt", progress=False)[0][m] for m, path in methods.items()}
            separate.append(time.perf_counter() - start)
            assert together == apart, "sharing the skeleton changed a number"
        results[f"methods{args.methods}_shared_skeleton_s"] = min(shared)
        results[f"methods{args.methods}_separate_s"] = min(separate)
        results[f"methods{args.methods}_speedup"] = min(separate) / min(shared)
    print(f"eval: {args.count} masks of {args.width}×{args.height}, {os.cpu_count()} CPUs")
    for key, value in results.items():
        unit = "s" if key.endswith("_s") else "×" if key.endswith("speedup") else "images/s"
        print(f"  {key:28s} {value:7.2f} {unit}")
    for hce in ("with", "without"):
        one, many = results[f"{hce}_hce_workers1"], results.get(f"{hce}_hce_workers{args.workers}")
        if many and args.workers > 1:
            results[f"{hce}_hce_speedup"] = many / one
            print(f"  {hce} HCE: {args.workers} workers = {many / one:.2f}× one worker")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"config": vars(args), "env": {"machine": platform.machine(), "cpus": os.cpu_count()}, "results": results},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
