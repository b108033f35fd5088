"""Prove the GPU paths on whatever GPUs are visible: one table, JSON in bench/results/.

    python -m bench.gpu_check            # or: bash bench/gpu_check.sh
    python -m bench.gpu_check --cpu_smoke  # the same plumbing on CPU at toy sizes (what the test suite runs)

Runs, each as its own process on generated data: a few training steps with
DataParallel over all GPUs; the same under ``torchrun --nproc_per_node N``; AMP
bf16 and fp16; ``--grad_checkpoint all``; ``--channels_last``; a resume; test.py's
maps with AMP against fp32 eager (bench/model.py ``--check_maps``); inference
milliseconds per 1024² image for fp32, bf16, channels_last and torch.compile at
batch 1 and 8 (bench/inference_matrix.py); AdaXW's per-tensor and multi-tensor
steps; and the recipe's largest step (batch 8 at 928, bf16, encoder
checkpointing) with its images/s and peak allocated memory next to
bench/memory.py's figure. The DataParallel and torchrun rows give their seconds. Without a GPU (and without
--cpu_smoke) it says so and exits 0 having run nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]

SMALL = ["--config", "fsanet_small"]


def _run(name: str, cmd: List[str], log_dir: Path, env: Dict[str, str]) -> Dict:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    (log_dir / f"{name}.log").write_text(" ".join(cmd) + "\n\n" + proc.stdout + proc.stderr)
    tail = (proc.stderr.strip().splitlines() or [""])[-1][:160]
    return {
        "check": name,
        "ok": proc.returncode == 0,
        "seconds": round(seconds, 1),
        "note": "" if proc.returncode == 0 else f"exit {proc.returncode}: {tail}",
    }


#: a training check runs 3 epochs: epochs 1 and 2 have lr > 0 (the poly schedule's last has lr 0),
#: so FSANet-1.pth → FSANet-2.pth is a real step whatever the path, and the check asserts it moved
TRAIN_EPOCHS = 3


def weights_moved(run_dir: Path, before: int, after: int) -> Tuple[bool, str]:
    """``(ok, note)``: did training between the two numbered checkpoints change the weights?"""
    from lib.checkpoint import read_checkpoint

    a, b = (read_checkpoint(run_dir / f"FSANet-{e}.pth")["model"] for e in (before, after))
    floats = [k for k, v in a.items() if v.is_floating_point()]
    moved = sum(not torch.equal(a[k], b[k]) for k in floats)
    return moved > len(floats) // 2, f"{moved}/{len(floats)} tensors moved in epoch {after}"


def checks(work: Path, gpus: int, cpu: bool, weights: str = None) -> List[tuple]:
    """(name, command, json produced or None, (run folder, epoch, epoch) whose weights must differ, or None)."""
    py = sys.executable
    data = work / "data"
    size, batch = ("64", "2") if cpu else ("256", str(2 * max(gpus, 1)))
    device = ["--device", "cpu"] if cpu else []
    train = [
        py,
        "train.py",
        "--train_path",
        str(data),
        "--out_root",
        str(work),
        "--epoch",
        str(TRAIN_EPOCHS),
        "--workers",
        "0",
        "--trainsize",
        size,
        "--batchsize",
        batch,
        "--no_progress",
        "--save_every",
        "1",
        "--random_backbones",
        *SMALL,
        *device,
    ]
    runs = work / "checkpoints"
    moved = (1, 2)
    rows = [
        (
            "train DataParallel" if gpus > 1 else "train one GPU" if not cpu else "train CPU",
            train + ["--train_save", "dp"],
            None,
            (runs / "dp", *moved),
        ),
        ("train bf16", train + ["--train_save", "bf16", "--amp", "bf16"], None, (runs / "bf16", *moved)),
        ("train fp16 (GradScaler)", train + ["--train_save", "fp16", "--amp", "fp16"], None, (runs / "fp16", *moved)),
        (
            "train --grad_checkpoint all",
            train + ["--train_save", "ckpt", "--grad_checkpoint", "all"],
            None,
            (runs / "ckpt", *moved),
        ),
        ("train --channels_last", train + ["--train_save", "nhwc", "--channels_last"], None, (runs / "nhwc", *moved)),
        (
            f"resume to epoch {TRAIN_EPOCHS + 2}",
            [
                *train[: train.index("--epoch")],
                "--epoch",
                str(TRAIN_EPOCHS + 2),
                *train[train.index("--epoch") + 2 :],
                "--resume",
                str(runs / "dp"),
                "--train_save",
                "dp",
            ],
            None,
            (runs / "dp", TRAIN_EPOCHS, TRAIN_EPOCHS + 1),
        ),
    ]
    nproc = 2 if cpu else gpus
    if nproc > 1:
        rows.append(
            (
                f"torchrun --nproc_per_node {nproc}",
                [
                    py,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    f"--nproc_per_node={nproc}",
                    *train[1:],
                    "--train_save",
                    "ddp",
                    "--batchsize",
                    str(2 * nproc),
                ],
                None,
                (runs / "ddp", *moved),
            )
        )
    maps_size = "64" if cpu else "1024"
    for amp in ("bf16", "fp16"):
        if cpu and amp == "fp16":
            continue
        out = work / f"maps_{amp}.json"
        rows.append(
            (
                f"test.py maps {amp} vs fp32 (grey levels)",
                [
                    py,
                    "-m",
                    "bench.model",
                    "--size",
                    maps_size,
                    "--modes",
                    "infer",
                    "--runs",
                    "1",
                    "--warmup",
                    "0",
                    "--amp",
                    amp,
                    "--check_maps",
                    "--json",
                    str(out),
                    *(["--device", "cpu"] if cpu else []),
                    *(["--weights", weights] if weights else []),
                ],
                out,
                None,
            )
        )
    matrix = work / "inference_matrix.json"
    rows.append(
        (
            "inference ms/image: fp32, bf16, channels_last, compile",
            [py, "-m", "bench.inference_matrix", "--json", str(matrix)]
            + (
                ["--size", "64", "--batches", "1", "2", "--runs", "1", "--warmup", "1", "--device", "cpu", *SMALL]
                if cpu
                else ["--size", "1024", "--batches", "1", "8", "--runs", "10", "--warmup", "3", "--compile"]
            )
            + (["--weights", weights] if weights and not cpu else []),
            matrix,
            None,
        )
    )
    adaxw = work / "adaxw_step.json"
    rows.append(
        (
            "AdaXW step: per-tensor vs foreach",
            [py, "-m", "bench.optimizer", "--runs", "3" if cpu else "10", "--json", str(adaxw)]
            + (["--config", "fsanet_small"] if cpu else ["--device", "cuda"]),
            adaxw,
            None,
        )
    )
    step_size, step_batch = ("64", "2") if cpu else ("928", "8")
    out = work / "largest_step.json"
    rows.append(
        (
            "largest step: bf16 + encoder checkpointing",
            [
                py,
                "-m",
                "bench.model",
                "--size",
                step_size,
                "--train_batch",
                step_batch,
                "--modes",
                "train",
                "--runs",
                "1",
                "--warmup",
                "1",
                "--amp",
                "bf16",
                "--grad_checkpoint",
                "--json",
                str(out),
                *(["--device", "cpu"] if cpu else []),
            ],
            out,
            None,
        )
    )
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu_smoke", action="store_true", help="run the checks on CPU at toy sizes (plumbing only)")
    p.add_argument("--json", default="bench/results/gpu_check.json")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs of every check)")
    p.add_argument("--weights", default=None, help="FSANet checkpoint for the map check (default: random weights)")
    args = p.parse_args(argv)
    gpus = torch.cuda.device_count()
    if not gpus and not args.cpu_smoke:
        print("gpu_check: no CUDA GPU is visible to PyTorch; nothing was run.")
        return 0
    from lib.FSANet import build_fsanet
    from utils.data.synthetic import write_dataset
    from utils.training.memory import estimate_training_memory

    work = Path(tempfile.mkdtemp(prefix="fsanet_gpu_check_"))
    (work / "logs_check").mkdir()
    write_dataset(work / "data", count=8, size=96 if args.cpu_smoke else 320, layout="authors", seed=0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    for name, cmd, produced, moved in checks(work, gpus, args.cpu_smoke, args.weights):
        row = _run(name.split(" ")[0] + "_" + str(len(results)), cmd, work / "logs_check", env)
        row["check"] = name
        if row["ok"] and moved is not None:
            row["ok"], row["note"] = weights_moved(*moved)
        if row["ok"] and produced is not None and "ms_per_image" in json.loads(Path(produced).read_text()):
            table = json.loads(Path(produced).read_text())["ms_per_image"]
            row["ms_per_image"] = table
            row["note"] = "; ".join(
                f"{name} " + "/".join(f"{ms:.1f}" for ms in cells.values()) + " ms (batch " + "/".join(cells) + ")"
                for name, cells in table.items()
            )
        elif row["ok"] and produced is not None and "speedup" in json.loads(Path(produced).read_text()):
            step = json.loads(Path(produced).read_text())  # bench.optimizer: AdaXW per-tensor vs multi-tensor
            row["note"] = (
                f"per-tensor {step['per_tensor_s'] * 1e3:.1f} ms, foreach {step['foreach_s'] * 1e3:.1f} ms "
                f"(×{step['speedup']:.2f}), bit-identical: {step['bit_identical']}"
            )
        elif row["ok"] and produced is not None:
            data = json.loads(Path(produced).read_text())["results"]["ours"]
            if "maps_max_grey_diff" in data:
                row["note"] = f"P1 max {data['maps_max_grey_diff']:.0f} grey levels from fp32 eager"
                row["ok"] = data["maps_max_grey_diff"] <= 1 or args.cpu_smoke  # CPU bf16 is emulated: report only
            if "train_peak_mb" in data:
                size, batch = (64, 2) if args.cpu_smoke else (928, 8)
                model = estimate_training_memory(
                    build_fsanet, size, batch, "bf16", ("encoder",), "cpu" if args.cpu_smoke else "cuda"
                )
                row["peak_allocated_bytes"] = int(data["train_peak_mb"] * 2**20)
                row["memory_model_bytes"] = model.total_bytes
                row["images_per_s"] = data.get("train_images_per_s")
                row["note"] = (
                    f"{data.get('train_images_per_s', float('nan')):.2f} images/s, "
                    f"peak {data['train_peak_mb'] / 1024:.2f} GiB (measured"
                    f"{', process RSS' if args.cpu_smoke else ''}), memory model "
                    f"{model.total_bytes / 2**30:.2f} GiB"
                )
        results.append(row)
        print(f"{'ok  ' if row['ok'] else 'FAIL'} {name:45s} {row['seconds']:7.1f} s  {row['note']}", flush=True)
    device = "CPU (smoke)" if args.cpu_smoke else ", ".join(torch.cuda.get_device_name(i) for i in range(gpus))
    print("\n| check | result | seconds | note |\n| --- | --- | --- | --- |")
    for row in results:
        print(f"| {row['check']} | {'ok' if row['ok'] else 'FAIL'} | {row['seconds']} | {row['note']} |")
    print(f"\n{device}; torch {torch.__version__}; python -m bench.gpu_check")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"device": device, "gpus": gpus, "torch": torch.__version__, "checks": results}, indent=2) + "\n"
    )
    if args.keep:
        print(f"logs: {work / 'logs_check'}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(row["ok"] for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
