"""Loading the paper's checkpoint: this project's loader against plain PyTorch.

    python -m bench.load                          # writes a paper-configuration checkpoint first
    python -m bench.load --pth_path models/FSANet-100.pth --rounds 5

Per round, interleaved: ``plain`` is ``torch.load(weights_only=True)`` + ``FSANet(**config)`` +
``load_state_dict``; ``project`` is ``lib.checkpoint.build_from_checkpoint`` (every check:
the CRC-32 of every archive member, layout and key mapping, config validation, the meta-device
shape check, finiteness, the strict load). Reported per loader, median over the rounds:

* CPU seconds (user + system of this process, ``--threads`` PyTorch threads);
* bytes read through ``read()`` calls (``rchar`` of ``/proc/self/io``);
* bytes read from storage (``read_bytes``), with the file's pages dropped from the page
  cache first (``posix_fadvise(DONTNEED)``), which counts the pages a memory map faults in.
  Some file systems (overlay, tmpfs) report 0 there; the table says so.

Targets (issue 32): at most 1.1× the file's bytes and 1.3× plain's CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

from lib.checkpoint import build_from_checkpoint
from lib.FSANet import FSANet, build_fsanet
from lib.weights import save_checkpoint


def _io() -> Dict[str, int]:
    with open("/proc/self/io") as handle:
        return {key: int(value) for key, value in (line.split(": ") for line in handle)}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _drop_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def plain(path: Path) -> torch.nn.Module:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = FSANet(**checkpoint["config"])
    model.load_state_dict(checkpoint["model"])
    return model


def project(path: Path) -> torch.nn.Module:
    return build_from_checkpoint(path)[0]


def measure(load: Callable[[Path], torch.nn.Module], path: Path) -> Dict[str, float]:
    _drop_pages(path)
    io, cpu, wall = _io(), _cpu(), time.perf_counter()
    model = load(path)
    wall, cpu, after = time.perf_counter() - wall, _cpu() - cpu, _io()
    del model
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "rchar": after["rchar"] - io["rchar"],
        "read_bytes": after["read_bytes"] - io["read_bytes"],
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pth_path", default=None, help="a paper-configuration checkpoint (default: one is written)")
    p.add_argument("--out", default="results/bench_load", help="where the generated checkpoint goes")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the table as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = Path(args.pth_path) if args.pth_path else Path(args.out) / "fsanet_paper_random.pth"
    if not path.is_file():
        torch.manual_seed(0)
        save_checkpoint(path, build_fsanet(None))
    size = path.stat().st_size
    loaders = {"plain": plain, "project": project}
    for load in loaders.values():  # warm-up: imports, allocator, timm's model code
        load(path)
    rows: Dict[str, list] = {name: [] for name in loaders}
    for _ in range(args.rounds):
        for name, load in loaders.items():
            rows[name].append(measure(load, path))
    table = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rows.items()}
    cpu = platform.processor() or platform.machine()
    print(f"{path} ({size / 2**20:.1f} MiB), {args.rounds} rounds, {args.threads} thread(s), {cpu}")  # noqa: T201
    print("| loader | CPU s | wall s | read() bytes / file | storage bytes / file |")  # noqa: T201
    print("|---|---|---|---|---|")  # noqa: T201
    for name, row in table.items():
        storage = f"{row['read_bytes'] / size:.2f}×" if any(r["read_bytes"] for r in rows["plain"]) else "n/a (0 reported)"
        print(f"| {name} | {row['cpu_s']:.2f} | {row['wall_s']:.2f} | {row['rchar'] / size:.2f}× | {storage} |")  # noqa: T201
    ratio = table["project"]["cpu_s"] / table["plain"]["cpu_s"]
    print(f"CPU time project / plain: {ratio:.2f}× (target ≤ 1.3×)")  # noqa: T201
    if args.json:
        Path(args.json).write_text(json.dumps({"file_bytes": size, "threads": args.threads, "table": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
