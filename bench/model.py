"""Inference and training-step time and peak memory of FSANet.

    python bench/model.py --size 512 --device cpu --impl ours authors
    python bench/model.py --size 1024 --device cuda --amp bf16 --channels_last --compile

Median of --runs timed runs after --warmup untimed ones, synchronised on GPU. The
training step is forward + the recipe's loss + backward + gradient clamp + AdaXW.
Peak memory: torch.cuda.max_memory_allocated on GPU, the process's peak RSS growth on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.authors_style import make_authors_style  # noqa: E402
from lib.FSANet import FSANet  # noqa: E402
from utils.adaxw import AdaXW  # noqa: E402
from utils.losses import deep_supervision_loss  # noqa: E402

AMP = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_it(fn: Callable[[], None], device: torch.device, warmup: int, runs: int) -> Dict[str, float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _rss_mb()
    times: List[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _rss_mb()
    return {"median_s": statistics.median(times), "min_s": min(times), "peak_mb": peak,
            "rss_growth_mb": _rss_mb() - rss_before}


def bench(impl: str, args: argparse.Namespace, device: torch.device) -> Dict[str, float]:
    torch.manual_seed(0)
    model = FSANet(radius=100.0)
    if impl == "authors":
        make_authors_style(model)
    model.to(device)
    if args.grad_checkpoint:
        model.set_grad_checkpointing(True)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=memory_format)
    # training needs ≥ 2 images (SFF's global-branch BatchNorm on a 1×1 map), hence its own batch
    x_train = torch.randn(args.train_batch, 3, args.size, args.size, device=device).contiguous(
        memory_format=memory_format)
    mask = (torch.rand(args.train_batch, 1, args.size, args.size, device=device) > 0.5).float()
    forward = torch.compile(model) if args.compile else model
    amp = AMP[args.amp]
    result: Dict[str, float] = {}
    if "infer" in args.modes:
        model.eval()

        def infer() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                forward(x)

        result.update({f"infer_{k}": v for k, v in time_it(infer, device, args.warmup, args.runs).items()})
    if "train" in args.modes:
        model.train()
        optimizer = AdaXW(model.parameters())
        scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
        params = [p for p in model.parameters() if p.requires_grad]

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                outputs = forward(x_train)
            loss, _ = deep_supervision_loss(outputs[:4], mask)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_value_(params, 0.5)
            scaler.step(optimizer)
            scaler.update()

        result.update({f"train_{k}": v for k, v in time_it(step, device, args.warmup, args.runs).items()})
        result["train_images_per_s"] = args.train_batch / result["train_median_s"]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=1, help="inference batch")
    p.add_argument("--train_batch", type=int, default=2, help="training-step batch (≥ 2; the recipe's is 8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", choices=sorted(AMP), default="none")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--grad_checkpoint", action="store_true")
    p.add_argument("--impl", nargs="+", choices=["ours", "authors"], default=["ours"])
    p.add_argument("--modes", nargs="+", choices=["infer", "train"], default=["infer", "train"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default="bench/results/model.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = {impl: bench(impl, args, device) for impl in args.impl}
    env = {"torch": torch.__version__, "device": torch.cuda.get_device_name(device) if device.type == "cuda"
           else platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "python": platform.python_version()}
    config = {k: v for k, v in vars(args).items() if k not in ("json",)}
    print(f"FSANet {args.size}×{args.size}, batch {args.batch} (train {args.train_batch}), {device}, amp {args.amp}, "
          f"channels_last {args.channels_last}, compile {args.compile}, {env['threads']} threads, torch {env['torch']}")
    keys = sorted({k for r in rows.values() for k in r})
    print(f"{'impl':8s} " + " ".join(f"{k:>22s}" for k in keys))
    for impl, r in rows.items():
        print(f"{impl:8s} " + " ".join(f"{r.get(k, float('nan')):22.4f}" for k in keys))
    if "ours" in rows and "authors" in rows and "infer_median_s" in rows["ours"]:
        gain = rows["authors"]["infer_median_s"] / rows["ours"]["infer_median_s"] - 1
        print(f"inference: ours is {100 * gain:+.1f}% faster than the authors' way")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": config, "env": env, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
