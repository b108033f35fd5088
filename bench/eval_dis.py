"""Seconds per image and metric at DIS5K's real sizes, on one core: pysodmetrics as it is
against this repository's scoring path (utils.evaluation.pairs, what eval.py runs).

    OMP_NUM_THREADS=1 python -m bench.eval_dis --count 4 --width 3000 --height 2500

Generates synthetic masks with thin lines, meshes and nested shapes (utils.data.synthetic)
and two predictions per mask: "model-like" (soft edges, saturated inside and outside, a few
false and missed parts, as a segmentation network's sigmoid gives) and "noisy" (blurred mask
plus Gaussian noise everywhere: the worst case for the weighted Fβ's sparse filter). For
each it prints the median over masks of: every metric alone with pysodmetrics; the mask
quantities built once per mask (HCE's skeleton, the weighted Fβ's distance weights, Sα's
quadrants); each metric of one more method given them; the first method (quantities + all
metrics) and each further method; and checks that every number equals pysodmetrics'.
Targets (issue 23): first method ≤ 1.5 s, each further ≤ 1.0 s per image on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from utils.common.cli import usable_cores
from utils.common.heap import keep_freed_memory
from utils.data.synthetic import make_sample
from utils.evaluation.metrics import add_pair, new_metrics, summarize
from utils.evaluation.oracle import oracle_metrics, oracle_summary
from utils.evaluation.pairs import MaskQuantities
from utils.evaluation.scoring import evaluate

KEYS = ("fm", "em", "sm", "mae", "wfm", "hce")
#: BiRefNet's boundary metrics (utils/evaluation/boundary.py), timed on their own
BOUNDARY_KEYS = ("mba", "biou")
TARGET_FIRST, TARGET_FURTHER = 1.5, 1.0


def predictions(mask: np.ndarray, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """The two kinds of prediction for one 0/255 mask."""
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)
    errors = np.zeros(mask.shape, np.uint8)
    h, w = mask.shape
    for _ in range(6):  # a few false blobs and missed pieces
        cv2.circle(errors, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(10, 60)), 255, -1)
    flipped = np.where(errors > 0, 255 - soft, soft)
    model_like = 255 / (1 + np.exp(-(flipped - 128) / 12))
    noisy = np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 3) + rng.normal(0, 20, mask.shape), 0, 255)
    return {"model-like": model_like.astype(np.uint8), "noisy": noisy.astype(np.uint8)}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_pair(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Seconds for each measurement of one (prediction, mask) pair."""
    out: Dict[str, float] = {}
    for key in KEYS:  # pysodmetrics alone, one metric at a time (HCE under the benchmark's > 128 rule)
        metric = oracle_metrics("isnet", only=(key,))[key]
        if key == "hce":
            reference = __import__("py_sod_metrics").HumanCorrectionEffortMeasure(relax=5, epsilon=2.0)
            out[f"pysod {key}"] = _timed(lambda r=reference: r.step((pred > 128).astype(float), gt > 128, normalize=False))
        else:
            out[f"pysod {key}"] = _timed(lambda m=metric: m.step(pred, gt))
    shared = MaskQuantities(gt)
    out["mask: skeleton"] = _timed(lambda: shared.skeleton)
    out["mask: wFβ weights"] = _timed(lambda: shared.wfm)
    out["mask: Sα quadrants"] = _timed(lambda: shared.quadrants)
    out["mask: mBA bands"] = _timed(lambda: shared.mba_bands)
    out["mask: BIoU boundary"] = _timed(lambda: shared.biou_boundary)
    for key in BOUNDARY_KEYS:  # BiRefNet's boundary metrics: the per-method part (the mask's part above)
        out[f"ours {key}"] = _timed(lambda k=key: add_pair(new_metrics(None, only=(k,)), pred, gt, shared))
    for key in KEYS:
        out[f"ours {key}"] = _timed(lambda k=key: add_pair(new_metrics("isnet", only=(k,)), pred, gt, shared))
    first, further = new_metrics("isnet"), new_metrics("isnet")
    out["first method"] = _timed(lambda: add_pair(first, pred, gt, MaskQuantities(gt)))
    out["further method"] = _timed(lambda: add_pair(further, pred, gt, shared))
    reference_all = oracle_metrics("isnet")
    for metric in reference_all.values():
        metric.step(pred, gt)  # pysodmetrics' own step; mBA and BIoU: their stand-alone definition
    (ours, our_curves), (theirs, their_curves) = summarize(first), oracle_summary(reference_all)
    assert ours == theirs and all(np.array_equal(our_curves[k], their_curves[k]) for k in theirs and their_curves), (
        "a number differs"
    )
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=4, help="masks (each scored with both predictions)")
    p.add_argument("--width", type=int, default=3000)
    p.add_argument("--height", type=int, default=2500)
    p.add_argument("--json", default="bench/results/eval_dis.json")
    p.add_argument("--default_malloc", action="store_true", help="without eval.py's heap setting (utils/common/heap.py)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    if not args.default_malloc:
        keep_freed_memory()  # as eval.py does
    rows: Dict[str, Dict[str, List[float]]] = {}
    fg: List[float] = []
    files = Path(tempfile.mkdtemp(prefix="fsanet-eval-dis-"))
    for i in range(args.count):
        rng = np.random.default_rng([23, i])
        _, mask = make_sample(rng, args.width, args.height)
        fg.append(float((mask > 128).mean()))
        (files / "gt" / "DIS-TE1" / "GT").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(files / "gt" / "DIS-TE1" / "GT" / f"m{i}.png"), mask)
        for kind, pred in predictions(mask, rng).items():
            (files / kind / "DIS-TE1").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(files / kind / "DIS-TE1" / f"m{i}.png"), pred)
            for name, seconds in time_pair(pred, mask).items():
                rows.setdefault(kind, {}).setdefault(name, []).append(seconds)
    # eval.py's whole path on the PNG files (decoding included), one worker: one method, then both
    end_to_end = {}
    cores = usable_cores()  # eval.py's default --workers
    for label, methods, workers in (
        ("model-like", ["model-like"], 1),
        ("both", ["model-like", "noisy"], 1),
        (f"both, {cores} workers", ["model-like", "noisy"], cores),
    ):
        start = time.perf_counter()
        evaluate({m: files / m for m in methods}, files / "gt", workers=workers, progress=False)
        end_to_end[label] = (time.perf_counter() - start) / args.count
    shutil.rmtree(files, ignore_errors=True)
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"eval at DIS size: {args.count} masks of {args.width}×{args.height} (object {min(fg):.1%}–{max(fg):.1%} "
        f"of the pixels), OMP_NUM_THREADS={threads}, OpenCV 1 thread, "
        f"{'default malloc' if args.default_malloc else 'heap kept (as eval.py)'}, load {os.getloadavg()[0]:.2f}; "
        "median seconds per image; every number checked equal to pysodmetrics'"
    )
    medians = {kind: {name: statistics.median(v) for name, v in named.items()} for kind, named in rows.items()}
    print(f"{'':22s}" + "".join(f"{kind:>12s}" for kind in medians))
    for name in next(iter(medians.values())):
        print(f"{name:22s}" + "".join(f"{medians[kind][name]:12.3f}" for kind in medians))
    print(
        f"eval.py's scoring on the PNG files, one worker: {end_to_end['model-like']:.2f} s per image for one "
        f"method, {end_to_end['both']:.2f} s for two (decoding, format checks and all metrics included); "
        f"two methods over {cores} workers (eval.py's default): {end_to_end[f'both, {cores} workers']:.2f} s per image"
    )
    for kind, m in medians.items():
        pysod = sum(m[f"pysod {k}"] for k in KEYS)
        print(
            f"{kind}: pysodmetrics {pysod:.2f} s per image and method; ours first {m['first method']:.2f} s "
            f"(target ≤ {TARGET_FIRST}), each further {m['further method']:.2f} s (target ≤ {TARGET_FURTHER}); "
            f"{pysod / m['first method']:.1f}× / {pysod / m['further method']:.1f}×"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {"machine": platform.machine(), "cpus": os.cpu_count(), "omp_threads": threads, "load": os.getloadavg()[0]}
    out.write_text(
        json.dumps(
            {
                "config": vars(args),
                "env": env,
                "object_share": fg,
                "median_s": medians,
                "per_mask_s": rows,
                "end_to_end_s_per_image": end_to_end,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
