"""How far each fast inference option moves test.py's maps and the DIS metrics from fp32 eager.

    OMP_NUM_THREADS=1 python -m bench.agreement --count 12 --size 256 [--weights W] [--compile] [--onnx]

Without --weights it first trains the small configuration for a few epochs on generated
data (as demo.py does; a model whose maps follow the objects, unlike random weights),
then predicts a generated DIS-like test set through test.py's own code path
(``utils.inference.predict.run_prediction``) once per option: fp32 eager (the reference),
``--fold_bn``, ``--channels_last``, ``--amp bf16`` with and without channels_last, and
optionally ``--compile`` and an onnxruntime export. For each it prints the largest grey-level
difference from the reference maps, the share of pixels more than one grey level away, and the
change of maxFβ, MAE and HCE (eval.py's numbers) against the reference's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image

REFERENCE = "fp32 eager (default)"


def options(args: argparse.Namespace) -> Dict[str, Dict]:
    """name → PredictConfig fields."""
    out = {
        REFERENCE: {},
        "--fold_bn": {"fold_bn": True},
        "--channels_last": {"channels_last": True},
        "--amp bf16": {"amp": "bf16"},
        "--amp bf16 --channels_last": {"amp": "bf16", "channels_last": True},
    }
    if args.compile:
        out["--compile"] = {"compile": True}
    if args.onnx:
        out["onnxruntime"] = {"onnx": True}
    return out


def train_small(work: Path, threads: int) -> Path:
    """A few epochs of the small configuration on generated data; returns its checkpoint."""
    from utils.data.synthetic import write_dataset
    from utils.training.config import TrainConfig
    from utils.training.run import run_training

    write_dataset(work / "train", 24, 192, "authors", seed=0)
    config = TrainConfig(
        train_path=str(work / "train"),
        train_save="agreement",
        out_root=str(work),
        device="cpu",
        epoch=4,
        batchsize=4,
        trainsize=128,
        workers=0,
        no_progress=True,
        random_backbones=True,
        config="fsanet_small",
        threads=threads,
        radius=24.0,
    )
    return run_training(config).checkpoint_dir / "latest.pth"


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=12, help="generated test images")
    p.add_argument("--size", type=int, default=256, help="test.py's --testsize (and the images' side)")
    p.add_argument("--weights", default=None, help="an FSANet checkpoint (default: train the small model briefly)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--onnx", action="store_true", help="needs the [export] extra")
    p.add_argument("--json", default="bench/results/agreement.json")
    args = p.parse_args(argv)

    from lib.checkpoint import build_from_checkpoint
    from utils.data.synthetic import write_dataset
    from utils.evaluation.scoring import evaluate
    from utils.inference.config import PredictConfig
    from utils.inference.predict import run_prediction
    from utils.inference.processing import map_difference

    work = Path(tempfile.mkdtemp(prefix="fsanet-agreement-"))
    try:
        weights = args.weights or str(train_small(work, args.threads))
        write_dataset(work / "test" / "DIS-TE1", args.count, args.size, "dis5k", seed=7)
        onnx_path = None
        if args.onnx:
            from utils.deploy.export import export_onnx

            onnx_path = export_onnx(build_from_checkpoint(weights)[0].eval(), work / "model.onnx", (args.size, args.size))
        folders = {}
        for name, fields in options(args).items():
            fields = dict(fields)
            source = {"onnx": str(onnx_path)} if fields.pop("onnx", False) else {"pth_path": weights}
            config = PredictConfig(**source, testsize=args.size, device="cpu", threads=args.threads, **fields)
            folders[name] = work / "maps" / name.replace(" ", "_").replace("-", "")
            run_prediction(config, folders[name], work / "test", progress=False)
        results, _ = evaluate(folders, work / "test", progress=False)
        reference = results[REFERENCE]["DIS-TE1"]
        print(
            f"test.py's maps against fp32 eager: {args.count} generated images at {args.size}², "
            f"{'weights ' + args.weights if args.weights else 'the small model trained for 4 epochs on generated data'}"
        )
        print(f"{'option':28s} {'max grey':>8s} {'>1 grey':>9s} {'ΔmaxFβ':>9s} {'ΔMAE':>9s} {'ΔHCE':>7s}")
        rows = {}
        for name, folder in folders.items():
            worst, beyond, total = 0, 0, 0
            for path in sorted((folder / "DIS-TE1").glob("*.png")):
                expected = np.asarray(Image.open(folders[REFERENCE] / "DIS-TE1" / path.name))
                diff = map_difference(np.asarray(Image.open(path)), expected)
                worst, beyond, total = max(worst, diff.max_grey), beyond + diff.beyond_one, total + diff.pixels
            scores = results[name]["DIS-TE1"]
            rows[name] = {
                "max_grey": worst,
                "share_beyond_one_grey": beyond / total,
                **{f"delta_{k}": scores[k] - reference[k] for k in ("maxFm", "MAE", "HCE", "wFm", "Sm")},
                "scores": scores,
            }
            print(
                f"{name:28s} {worst:8d} {beyond / total:9.4%} {rows[name]['delta_maxFm']:+9.5f} "
                f"{rows[name]['delta_MAE']:+9.5f} {rows[name]['delta_HCE']:+7.2f}"
            )
        print(f"fp32 eager: maxFβ {reference['maxFm']:.4f}, MAE {reference['MAE']:.4f}, HCE {reference['HCE']:.1f}")
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"config": vars(args), "rows": rows}, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
