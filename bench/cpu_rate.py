"""CPU inference of FSANet against this machine's own matmul rate, in one run.

    OMP_NUM_THREADS=1 python -m bench.cpu_rate --size 1024 --threads 1 --runs 3 [--compile] [--onnx]

Times a large fp32 and bf16 matrix product (the machine's rate), then the model's
configurations interleaved run by run (so a busy machine slows all alike): fp32 eager
(the default), with BatchNorm folded (``--fold_bn``), channels_last, bf16 autocast
(with channels_last), and optionally torch.compile and onnxruntime. For each: median
seconds per image, GFLOP/s (FLOPs from ``lib.summary``, a multiply-add = 2), the share
of the matmul rate of its precision against the targets of issue 23 (fp32 ≥ 80 %,
bf16 ≥ 75 %), and its P1 map against fp32 eager (max grey levels, share of pixels
more than one grey level away) on a synthetic DIS-like image.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from lib.fold_batchnorm import fold_batchnorm
from lib.FSANet import build_fsanet
from lib.summary import build_on_meta, count_flops
from utils.data.synthetic import make_sample
from utils.inference.processing import map_difference, postprocess, preprocess

TARGETS = {"fp32": 0.80, "bf16": 0.75}

#: aten operators by what they do, for --profile (the rest is "other").
CATEGORIES = {
    "convolution": ("convolution", "conv2d"),
    "matmul (linear)": ("addmm", "aten::mm", "bmm", "matmul"),
    "attention": ("scaled_dot_product", "softmax"),
    "BatchNorm": ("batch_norm",),
    "LayerNorm": ("layer_norm",),
    "interpolation": ("upsample",),
    "FFT": ("fft",),
    "copies and concatenation": ("copy_", "aten::cat", "clone", "contiguous"),
    "pooling": ("pool",),
    "activations and element-wise": (
        "gelu",
        "relu",
        "clamp",
        "sigmoid",
        "aten::add",
        "aten::mul",
        "aten::sub",
        "aten::div",
        "abs",
        "aten::sum",
        "mean",
    ),
}


#: FlopCounterMode's operators by the categories above.
FLOP_CATEGORIES = {
    "aten.convolution": "convolution",
    "aten.addmm": "matmul (linear)",
    "aten.mm": "matmul (linear)",
    "aten.bmm": "attention",
}


def flops_by_category(size: int) -> Dict[str, float]:
    """GFLOP of one forward by category (on the meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_on_meta()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, size, size, device="meta"))
    out: Dict[str, float] = {}
    for op, flops in counter.get_flop_counts()["Global"].items():
        name = FLOP_CATEGORIES.get(str(op), "other")
        out[name] = out.get(name, 0.0) + flops / 1e9
    return out


def profile_categories(forward: Callable, x: torch.Tensor) -> Dict[str, float]:
    """Self CPU seconds of one forward by operator category."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        forward(x)
    out: Dict[str, float] = {}
    for event in prof.key_averages():
        name = next((c for c, keys in CATEGORIES.items() if any(k in event.key for k in keys)), "other")
        out[name] = out.get(name, 0.0) + event.self_cpu_time_total / 1e6
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def matmul_rate(dtype: torch.dtype, n: int = 2048, runs: int = 5) -> float:
    """GFLOP/s of an n×n by n×n product in ``dtype`` (best of ``runs``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def configurations(model: torch.nn.Module, args: argparse.Namespace) -> Dict[str, Dict]:
    """name → {"forward": x → P1 logits, "precision": fp32|bf16, "channels_last": bool}."""
    folded = copy.deepcopy(model)
    fold_batchnorm(folded)
    folded_cl = copy.deepcopy(folded).to(memory_format=torch.channels_last)
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def bf16(m):
        def forward(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return m(x)[0].float()

        return forward

    out = {
        "fp32 eager (default)": {"forward": lambda x: model(x)[0], "precision": "fp32", "channels_last": False},
        "fp32 --fold_bn": {"forward": lambda x: folded(x)[0], "precision": "fp32", "channels_last": False},
        "fp32 --channels_last": {"forward": lambda x: model_cl(x)[0], "precision": "fp32", "channels_last": True},
        "fp32 --fold_bn --channels_last": {"forward": lambda x: folded_cl(x)[0], "precision": "fp32", "channels_last": True},
        "bf16 --amp bf16": {"forward": bf16(model), "precision": "bf16", "channels_last": False},
        "bf16 --amp bf16 --channels_last": {"forward": bf16(model_cl), "precision": "bf16", "channels_last": True},
        "bf16 --amp bf16 --fold_bn --channels_last": {
            "forward": bf16(folded_cl),
            "precision": "bf16",
            "channels_last": True,
        },
    }
    if args.compile:
        compiled = torch.compile(folded)
        out["fp32 --compile --fold_bn"] = {"forward": lambda x: compiled(x)[0], "precision": "fp32", "channels_last": False}
    if args.onnx:
        import tempfile

        from utils.deploy.export import export_onnx
        from utils.inference.onnx_model import OnnxFSANet

        path = str(Path(tempfile.mkdtemp(prefix="fsanet-bench-")) / f"fsanet_{args.size}.onnx")
        export_onnx(model, path, size=(args.size, args.size))
        runner = OnnxFSANet(path, threads=torch.get_num_threads())
        out["fp32 onnxruntime"] = {"forward": lambda x: runner(x)[0], "precision": "fp32", "channels_last": False}
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also torch.compile (first call compiles for minutes)")
    p.add_argument("--onnx", action="store_true", help="also onnxruntime (needs the [export] extra)")
    p.add_argument("--profile", action="store_true", help="also where fp32 eager's time goes, by operator category")
    p.add_argument("--json", default="bench/results/cpu_rate.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    gflop = count_flops(build_on_meta(), args.size, args.size)["total"] / 1e9
    model = build_fsanet().eval()
    image, _ = make_sample(np.random.default_rng(0), args.size, args.size)
    x = preprocess(Image.fromarray(image), args.size)
    configs = configurations(model, args)
    times: Dict[str, list] = {name: [] for name in configs}
    maps: Dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for name, c in configs.items():  # one untimed call each (compiles, allocates); its map is compared
            inp = x.contiguous(memory_format=torch.channels_last) if c["channels_last"] else x
            maps[name] = postprocess(c["forward"](inp)[0], (args.size, args.size))
        for _ in range(args.runs):
            for name, c in configs.items():
                inp = x.contiguous(memory_format=torch.channels_last) if c["channels_last"] else x
                start = time.perf_counter()
                c["forward"](inp)
                times[name].append(time.perf_counter() - start)
    reference = maps["fp32 eager (default)"]
    print(
        f"CPU inference at {args.size}², batch 1, {args.threads} thread(s), load {os.getloadavg()[0]:.2f}; "
        f"matmul rate fp32 {rates['fp32']:.0f} GFLOP/s, bf16 {rates['bf16']:.0f} GFLOP/s; model {gflop:.0f} GFLOP"
    )
    print(
        f"{'configuration':44s} {'s/image':>8s} {'GFLOP/s':>8s} {'of rate':>8s} {'target':>7s} "
        f"{'max grey':>8s} {'>1 grey':>8s}"
    )
    rows = {}
    for name, c in configs.items():
        seconds = statistics.median(times[name])
        share = gflop / seconds / rates[c["precision"]]
        diff = map_difference(maps[name], reference)
        rows[name] = {
            "median_s": seconds,
            "gflops": gflop / seconds,
            "share_of_rate": share,
            "target": TARGETS[c["precision"]],
            "max_grey": diff.max_grey,
            "share_beyond_one_grey": diff.share_beyond_one,
        }
        met = "met" if share >= TARGETS[c["precision"]] else "not met"
        print(
            f"{name:44s} {seconds:8.2f} {gflop / seconds:8.1f} {share:8.1%} {TARGETS[c['precision']]:6.0%} "
            f"{diff.max_grey:8d} {diff.share_beyond_one:8.4%}  {met}"
        )
    profile = {}
    if args.profile:
        profile = profile_categories(configs["fp32 eager (default)"]["forward"], x)
        total = sum(profile.values())
        flops = flops_by_category(args.size)
        print(f"where fp32 eager's {total:.2f} s go (self CPU time, torch.profiler; rate: of its FLOPs per second):")
        for name, seconds in profile.items():
            rate = (
                f"  {flops[name] / seconds:6.1f} GFLOP/s = {flops[name] / seconds / rates['fp32']:5.1%} of the matmul rate"
                if name in flops
                else ""
            )
            print(f"  {name:32s} {seconds:7.2f} s {seconds / total:6.1%}{rate}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "load": os.getloadavg()[0],
    }
    out.write_text(
        json.dumps(
            {"config": vars(args), "env": env, "rates_gflops": rates, "gflop": gflop, "rows": rows, "profile_s": profile},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
