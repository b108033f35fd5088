"""Inference and training-step time and peak memory of FSANet.

    python -m bench.model --size 512 --device cpu --impl ours authors
    python -m bench.model --size 1024 --device cuda --amp bf16 --channels_last --compile --check_maps

Median of --runs timed runs after --warmup untimed ones, synchronised on GPU; with
several --impl the inference runs alternate between them. The training step is
forward + the recipe's loss + backward + gradient clamp + AdaXW. Peak memory:
torch.cuda.max_memory_allocated on GPU, the process's peak RSS growth on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from bench.authors_style import make_authors_style
from lib.checkpoint import build_from_checkpoint
from lib.configs import get_config
from lib.FSANet import build_fsanet, checkpoint_parts
from utils.common.amp import AMP_DTYPES, autocast
from utils.data.synthetic import make_sample
from utils.inference.processing import map_difference, postprocess, preprocess
from utils.training.adaxw import AdaXW
from utils.training.recipe import StepConfig, optimizer_step

ROOT = Path(__file__).resolve().parents[1]

AMP = AMP_DTYPES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stats(times: List[float]) -> Dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times)}


def _first_call(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call (the first includes --compile's compilation)."""
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def time_it(fn: Callable[[], None], device: torch.device, warmup: int, runs: int) -> Dict[str, float]:
    """Median and min of ``runs`` timed calls after ``warmup`` untimed ones (the first of
    them timed alone), with peak memory."""
    first = _first_call(fn, device) if warmup else float("nan")
    for _ in range(warmup - 1):
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
    return {**_stats(times), "first_s": first, "peak_mb": peak, "rss_growth_mb": _rss_mb() - rss_before}


def time_interleaved(
    fns: Dict[str, Callable[[], None]], device: torch.device, warmup: int, runs: int
) -> Dict[str, Dict[str, float]]:
    """Like :func:`time_it` for several functions, alternating them run by run so that a
    busy or throttling machine slows all of them alike (no peak memory: one process)."""
    first = {name: _first_call(fn, device) if warmup else float("nan") for name, fn in fns.items()}
    for fn in fns.values():
        for _ in range(warmup - 1):
            fn()
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: {**_stats(t), "first_s": first[name]} for name, t in times.items()}


def build(impl: str, args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    """The model as ``impl`` computes it, on ``device``, with the options in ``args``."""
    torch.manual_seed(0)
    model = build_from_checkpoint(args.weights)[0] if args.weights else build_fsanet(get_config(args.config))
    if impl == "authors":
        make_authors_style(model)
    model.to(device)
    if args.grad_checkpoint is not None:
        model.set_grad_checkpointing(True, parts=checkpoint_parts(args.grad_checkpoint))
    if args.channels_last:  # otherwise the layout is left as the model builds it
        model.to(memory_format=torch.channels_last)
    return model


def _memory_format(args: argparse.Namespace) -> torch.memory_format:
    return torch.channels_last if args.channels_last else torch.contiguous_format


def inference_fn(forward: Callable, args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """One batch-``args.batch`` call of ``forward`` (an eval-mode model, compiled or not)
    under inference_mode (and autocast with --amp)."""
    x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=_memory_format(args))
    amp = AMP[args.amp]

    def infer() -> None:
        with torch.inference_mode(), autocast(device.type, amp):
            forward(x)

    return infer


def train_step_fn(model: torch.nn.Module, args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """One training step of the recipe (loss, clamp, AdaXW) on a batch of ``args.train_batch``."""
    model.train()
    # training needs ≥ 2 images (SFF's global-branch BatchNorm on a 1×1 map), hence its own batch
    x = torch.randn(args.train_batch, 3, args.size, args.size, device=device).contiguous(memory_format=_memory_format(args))
    mask = (torch.rand(args.train_batch, 1, args.size, args.size, device=device) > 0.5).float()
    forward = torch.compile(model) if args.compile else model
    optimizer = AdaXW(model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    cfg = StepConfig(device, [args.size], 0, amp_dtype=AMP[args.amp], channels_last=args.channels_last)

    def step() -> None:
        optimizer_step(forward, x, mask, optimizer, scaler, cfg)  # exactly train.py's step

    return step


def maps_against_eager(
    model: torch.nn.Module, args: argparse.Namespace, device: torch.device, forward: Optional[Callable] = None
) -> Dict[str, float]:
    """Grey levels between the P1 maps (test.py's post-processing) of ``model`` run as
    ``forward`` (default: the model itself) with the benchmarked options and of the same
    weights in fp32 eager, on one synthetic image."""
    image, _ = make_sample(np.random.default_rng(0), args.size, args.size)
    x = preprocess(Image.fromarray(image), args.size).to(device)
    reference = build("ours", argparse.Namespace(**{**vars(args), "channels_last": False}), device).eval()
    reference.load_state_dict(model.state_dict())
    model.eval()
    forward = forward if forward is not None else model
    amp = AMP[args.amp]
    with torch.inference_mode():
        expected = postprocess(reference(x)[0][0], (args.size, args.size))
        with autocast(device.type, amp):
            got = postprocess(forward(x.contiguous(memory_format=_memory_format(args)))[0][0], (args.size, args.size))
    diff = map_difference(got, expected)
    return {"maps_max_grey_diff": float(diff.max_grey), "maps_share_over_1": diff.share_beyond_one}


def bench(args: argparse.Namespace, device: torch.device) -> Dict[str, Dict[str, float]]:
    """Inference (implementations interleaved) and training-step results per implementation."""
    models = {impl: build(impl, args, device) for impl in args.impl}
    rows: Dict[str, Dict[str, float]] = {impl: {} for impl in args.impl}
    if "infer" in args.modes:
        forwards = {impl: torch.compile(model.eval()) if args.compile else model.eval() for impl, model in models.items()}
        fns = {impl: inference_fn(forward, args, device) for impl, forward in forwards.items()}
        if len(fns) == 1:
            timed = {impl: time_it(fn, device, args.warmup, args.runs) for impl, fn in fns.items()}
        else:
            timed = time_interleaved(fns, device, args.warmup, args.runs)
        for impl, r in timed.items():
            rows[impl].update({f"infer_{k}": v for k, v in r.items()})
        if args.check_maps:
            for impl, model in models.items():
                rows[impl].update(maps_against_eager(model, args, device, forwards[impl]))
    if "train" in args.modes:
        for impl, model in models.items():
            r = time_it(train_step_fn(model, args, device), device, args.warmup, args.runs)
            rows[impl].update({f"train_{k}": v for k, v in r.items()})
            rows[impl]["train_images_per_s"] = args.train_batch / r["median_s"]
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--config", default="fsanet", help="named architecture without --weights (lib/configs.py)")
    p.add_argument("--batch", type=int, default=1, help="inference batch")
    p.add_argument("--train_batch", type=int, default=2, help="training-step batch (≥ 2; the recipe's is 8)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--amp", choices=sorted(AMP), default="none")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument(
        "--grad_checkpoint",
        nargs="*",
        default=None,
        metavar="PART",
        help="parts to checkpoint as train.py's flag (no PART: the encoders)",
    )
    p.add_argument("--weights", default=None, help="FSANet checkpoint to load (default: random weights)")
    p.add_argument(
        "--check_maps", action="store_true", help="also report the grey-level difference of the P1 map from fp32 eager"
    )
    p.add_argument("--impl", nargs="+", choices=["ours", "authors"], default=["ours"])
    p.add_argument("--modes", nargs="+", choices=["infer", "train"], default=["infer", "train"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", default="bench/results/model.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = bench(args, device)
    env = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    config = {k: v for k, v in vars(args).items() if k not in ("json",)}
    print(
        f"FSANet {args.size}×{args.size}, batch {args.batch} (train {args.train_batch}), {device}, amp {args.amp}, "
        f"channels_last {args.channels_last}, compile {args.compile}, {env['threads']} threads, torch {env['torch']}"
    )
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
