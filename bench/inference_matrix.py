"""Inference milliseconds per image for each precision, layout and compilation, at batch 1 and 8.

    python -m bench.inference_matrix --size 1024 --device cuda --batches 1 8 --compile

One process, one model (random weights, or --weights), eval mode under inference_mode:
fp32 eager, bf16 autocast, channels_last (fp32 and bf16), and with --compile
torch.compile of bf16 + channels_last. Each cell is the median of --runs timed calls
after --warmup untimed ones (synchronised on GPU), divided by the batch. Used by
bench/gpu_check.sh; on CPU it runs the same plumbing (use bench/cpu_rate.py for CPU figures).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

from bench.model import time_it
from lib.checkpoint import build_from_checkpoint
from lib.configs import get_config
from lib.FSANet import build_fsanet
from utils.common.amp import autocast


def variants(model: torch.nn.Module, compile_too: bool) -> Dict[str, Dict]:
    """name → (module to call, autocast dtype or None, channels_last input)."""
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)  # its own weights in NHWC
    out = {
        "fp32": (model, None, False),
        "bf16": (model, torch.bfloat16, False),
        "fp32 channels_last": (nhwc, None, True),
        "bf16 channels_last": (nhwc, torch.bfloat16, True),
    }
    if compile_too:
        out["bf16 channels_last compile"] = (torch.compile(nhwc), torch.bfloat16, True)
    return out


def call(forward: Callable, x: torch.Tensor, dtype: Optional[torch.dtype]) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode(), autocast(x.device.type, dtype):
            forward(x)

    return run


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--config", default="fsanet", help="named architecture without --weights")
    p.add_argument("--weights", default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", default="bench/results/inference_matrix.json")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_from_checkpoint(args.weights)[0] if args.weights else build_fsanet(get_config(args.config))
    model.to(device).eval()
    table: Dict[str, Dict[str, float]] = {}
    for name, (forward, dtype, channels_last) in variants(model, args.compile).items():
        for batch in args.batches:
            x = torch.randn(batch, 3, args.size, args.size, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            timed = time_it(call(forward, x, dtype), device, args.warmup, args.runs)
            table.setdefault(name, {})[str(batch)] = timed["median_s"] * 1e3 / batch
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"inference ms per {args.size}² image on {device_name} (median of {args.runs} after {args.warmup} warm-up)")
    print(f"{'configuration':30s}" + "".join(f"{'batch ' + str(b):>12s}" for b in args.batches))
    for name, row in table.items():
        print(f"{name:30s}" + "".join(f"{row[str(b)]:12.1f}" for b in args.batches))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": vars(args), "device": device_name, "ms_per_image": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
