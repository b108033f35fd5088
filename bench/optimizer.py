"""AdaXW's step on the paper's FSANet: the per-tensor form against the multi-tensor one, interleaved.

    python -m bench.optimizer --threads 1 --runs 7

Every parameter gets a random gradient once; then the two optimisers take turns, step by
step, so a busy machine slows them alike. Prints the median seconds per step of each and
their ratio, and checks the two end bit-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="fsanet", help="lib/configs.py name (fsanet: the paper's)")
    parser.add_argument("--runs", type=int, default=7, help="timed steps of each form")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="where the JSON goes (default bench/results/optimizer_DEVICE.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lib.configs import get_config
    from lib.FSANet import build_fsanet
    from utils.training.adaxw import AdaXW

    torch.manual_seed(0)
    model = build_fsanet(get_config(args.config))
    start = [p.detach().to(args.device) for p in model.parameters()]
    grads = [torch.randn_like(t) * 1e-3 for t in start]
    runs = {}
    for foreach in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        for p, g in zip(params, grads):
            p.grad = g
        runs[foreach] = (params, AdaXW(params, foreach=foreach), [])
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for _ in range(args.runs + 1):  # the first step allocates the state: not timed
        for _, opt, times in runs.values():
            sync()
            begin = time.perf_counter()
            opt.step()
            sync()
            times.append(time.perf_counter() - begin)
    same = all(torch.equal(a, b) for a, b in zip(runs[False][0], runs[True][0]))
    per_tensor = statistics.median(runs[False][2][1:])
    foreach = statistics.median(runs[True][2][1:])
    result = {
        "config": args.config,
        "tensors": len(start),
        "parameters": sum(t.numel() for t in start),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "per_tensor_s": per_tensor,
        "foreach_s": foreach,
        "speedup": per_tensor / foreach,
        "bit_identical": same,
        "load_1min": os.getloadavg()[0],
    }
    print(
        f"AdaXW step, {args.config} ({result['tensors']} tensors, {result['parameters'] / 1e6:.1f} M parameters), "
        f"{args.device}, {result['threads']} thread(s), load {result['load_1min']:.2f}\n"
        f"  per-tensor {per_tensor * 1e3:.1f} ms | foreach {foreach * 1e3:.1f} ms | ×{result['speedup']:.2f} | "
        f"bit-identical: {same}"
    )
    out = (
        Path(args.json)
        if args.json
        else Path(__file__).resolve().parent / "results" / f"optimizer_{args.device.split(':')[0]}.json"
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
