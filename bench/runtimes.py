"""FSANet inference on the CPU: PyTorch eager, torch.compile and onnxruntime, interleaved.

    python -m bench.runtimes --size 512 --threads 1
    python -m bench.runtimes --size 512 --weights models/FSANet-100.pth --onnx fsanet.onnx

One image per call. The three runtimes take turns run by run (``bench.model``'s
``time_interleaved``), so a busy machine slows them alike; the first call of each is
reported alone (torch.compile compiles there, onnxruntime plans its graph). onnxruntime
gets as many intra-op threads as torch. Each runtime's map (test.py's post-processing)
is compared with eager's on one synthetic image. Needs the export extra for onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from bench.model import time_interleaved
from lib.checkpoint import build_from_checkpoint
from lib.configs import get_config
from lib.FSANet import build_fsanet
from utils.data.synthetic import make_sample
from utils.inference.processing import map_difference, postprocess, preprocess

RUNTIMES = ("eager", "compile", "onnxruntime")


def build_runtimes(model: torch.nn.Module, names: Sequence[str], size: int, onnx_path: Optional[str]) -> Dict[str, Callable]:
    """``{name: forward(batch) -> P1 logits}`` for each runtime asked for."""
    forwards: Dict[str, Callable] = {}
    for name in names:
        if name == "eager":
            forwards[name] = lambda x: model(x)[0]
        elif name == "compile":
            compiled = torch.compile(model)
            forwards[name] = lambda x, compiled=compiled: compiled(x)[0]
        elif name == "onnxruntime":
            from utils.deploy.export import export_onnx
            from utils.inference.onnx_model import OnnxFSANet

            if onnx_path is None:
                onnx_path = str(Path(tempfile.mkdtemp(prefix="fsanet-bench-")) / f"fsanet_{size}.onnx")
                export_onnx(model, onnx_path, size=(size, size))
            runner = OnnxFSANet(onnx_path, threads=torch.get_num_threads())
            forwards[name] = lambda x, runner=runner: runner(x)[0]
    return forwards


def bench(args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    torch.manual_seed(0)
    model = build_from_checkpoint(args.weights)[0] if args.weights else build_fsanet(get_config(args.config))
    model.eval()
    forwards = build_runtimes(model, args.runtimes, args.size, args.onnx)
    image, _ = make_sample(np.random.default_rng(0), args.size, args.size)
    x = preprocess(Image.fromarray(image), args.size)

    def call(forward: Callable) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                forward(x)

        return run

    device = torch.device("cpu")
    rows = time_interleaved({n: call(f) for n, f in forwards.items()}, device, args.warmup, args.runs)
    with torch.inference_mode():
        maps = {n: postprocess(f(x)[0], (args.size, args.size)) for n, f in forwards.items()}
    reference = maps.get("eager")
    for name, row in rows.items():
        row["images_per_s"] = 1 / row["median_s"]
        if reference is not None:
            diff = map_difference(maps[name], reference)
            row["maps_max_grey_diff"] = float(diff.max_grey)
            row["maps_share_over_1"] = diff.share_beyond_one
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--config", default="fsanet", help="named architecture without --weights (lib/configs.py)")
    p.add_argument("--weights", default=None, help="FSANet weights to load (default: random weights)")
    p.add_argument("--onnx", default=None, help="an exported file for --size (default: export one to a temporary folder)")
    p.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="CPU threads of torch and onnxruntime (default: torch's)")
    p.add_argument("--json", default="bench/results/runtimes_cpu512.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench(args)
    env = {
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    print(f"FSANet ({args.weights or args.config}) {args.size}×{args.size}, batch 1, CPU, {env['threads']} threads")
    print(f"{'runtime':12s} {'median s':>9s} {'min s':>8s} {'first s':>8s} {'img/s':>7s} {'map Δ max':>9s}")
    for name, r in rows.items():
        print(
            f"{name:12s} {r['median_s']:9.3f} {r['min_s']:8.3f} {r['first_s']:8.1f} {r['images_per_s']:7.2f} "
            f"{r.get('maps_max_grey_diff', float('nan')):9.0f}"
        )
    if "eager" in rows:
        for name, r in rows.items():
            if name != "eager":
                print(f"{name}: {rows['eager']['median_s'] / r['median_s']:.2f}× eager's speed")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "json"}
    out.write_text(json.dumps({"config": config, "env": env, "results": rows}, indent=2) + "\n")


def _version(package: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":
    main()
