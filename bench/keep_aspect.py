"""What ``--keep_aspect`` changes: the same weights and test sets predicted at the authors'
square input and at the image's aspect, scored by eval.py's code, with the time per image.

    python -m bench.keep_aspect                      # trains the demo's model first (results/demo)
    python -m bench.keep_aspect --pth_path CKPT --test_path DATA/TestDataset --testsize 128

Without ``--pth_path`` the demo is run (``demo.py``'s model and generated DIS-like sets, into
``--out``), so the table is reproducible from a clean clone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from utils.data.sets import TE_SETS
from utils.evaluation.metrics import OVERALL
from utils.evaluation.scoring import evaluate
from utils.inference.config import PredictConfig
from utils.inference.predict import run_prediction

KEYS = ("maxFm", "MAE", "HCE", "mBA", "maxBIoU")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pth_path", default=None)
    p.add_argument("--test_path", default=None)
    p.add_argument("--testsize", type=int, default=128)
    p.add_argument("--out", default="results/bench_keep_aspect")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pth, test_path = args.pth_path, args.test_path
    if pth is None:
        import demo

        demo.run_demo(Path(args.out) / "demo", quick=False, threads=args.threads)
        pth = str(Path(args.out) / "demo" / "checkpoints" / "demo" / "latest.pth")
        test_path = str(Path(args.out) / "demo" / "data" / "TestDataset")
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, keep in (("square (the authors')", False), ("--keep_aspect", True)):
            config = PredictConfig(
                pth, testsize=args.testsize, workers=0, device="cpu", threads=args.threads, keep_aspect=keep
            )
            maps = Path(folder) / ("aspect" if keep else "square")
            start = time.perf_counter()
            report = run_prediction(config, maps, test_path, sets=list(TE_SETS), progress=False)
            seconds = (time.perf_counter() - start) / max(len(report.written), 1)
            results, _ = evaluate({"m": maps}, test_path, sets=list(TE_SETS), progress=False)
            rows[label] = ({k: results["m"][OVERALL][k] for k in KEYS}, seconds, len(report.written))
    print(
        f"{Path(pth).name} on {test_path}, --testsize {args.testsize}, {args.threads} thread(s), "
        f"CPU load {os.getloadavg()[0]:.2f}; Overall of DIS-TE1..4"
    )
    print("| input | " + " | ".join(KEYS) + " | s / image (predict, whole test.py path) |")
    print("| --- |" + " --- |" * (len(KEYS) + 1))
    for label, (values, seconds, count) in rows.items():
        cells = [f"{values[k]:.0f}" if k == "HCE" else f"{values[k]:.3f}" for k in KEYS]
        print(f"| {label} | " + " | ".join(cells) + f" | {seconds:.3f} ({count} images) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
