"""Memory of one training step of the recipe, on any machine (fake tensors: no GPU, nothing allocated).

    python -m bench.memory --size 928 --batch 8 --amp bf16 --grad_checkpoint encoder --json out.json
    python -m bench.memory --recipe_table          # docs/training.md's table (the recipe's largest step)

Reports parameters, gradients, AdaXW state, activations saved for backward and
their sum, in bytes (utils/training/memory.py says what each counts). --device cuda (the
default) fakes a CUDA device so that autocast uses CUDA's op lists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from lib.FSANet import CHECKPOINT_PARTS, build_fsanet, checkpoint_parts
from utils.common.amp import AMP_DTYPES
from utils.training.memory import estimate_training_memory

GIB = 2**30
KEYS = ("parameters_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes", "total_bytes")
#: 24 GB GPU less the CUDA context, allocator fragmentation and backward's transient buffers.
FITS_24GB = 22 * 10**9

#: (label, size, batch, amp, checkpoint parts): the recipe's largest step (batch 8 at 928 = 1.25 × 736),
#: then batch 4 per GPU as two-GPU DataParallel / DDP splits it.
RECIPE_ROWS = [
    ("batch 8, fp32", 928, 8, "none", ()),
    ("batch 8, bf16", 928, 8, "bf16", ()),
    ("batch 8, bf16 + encoder checkpointing", 928, 8, "bf16", ("encoder",)),
    ("batch 8, bf16 + checkpointing of every part", 928, 8, "bf16", CHECKPOINT_PARTS),
    ("batch 4 per GPU (2 GPUs), fp32", 928, 4, "none", ()),
    ("batch 4 per GPU (2 GPUs), bf16", 928, 4, "bf16", ()),
    ("batch 4 per GPU (2 GPUs), bf16 + encoder checkpointing", 928, 4, "bf16", ("encoder",)),
]


def _gib(value: int) -> str:
    return f"{value / GIB:.2f}"


def recipe_table(device: str) -> List[Dict]:
    rows = []
    for label, size, batch, amp, parts in RECIPE_ROWS:
        estimate = estimate_training_memory(build_fsanet, size, batch, amp, parts, device).as_dict()
        rows.append({"label": label, **estimate, "fits_one_24gb_gpu": estimate["total_bytes"] < FITS_24GB})
    return rows


def format_rows(rows: List[Dict]) -> str:
    lines = [
        "| step (928×928) | parameters | gradients | AdaXW state | activations | **total** | fits one 24 GB GPU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        values = " | ".join(_gib(row[k]) for k in KEYS[:-1])
        fits = "yes" if row["fits_one_24gb_gpu"] else "no"
        lines.append(f"| {row['label']} | {values} | **{_gib(row['total_bytes'])}** | {fits} |")
    return "\n".join(lines) + "\n\n(GiB; total under 22 GB leaves room for the CUDA context and the allocator)"


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=928, help="training side (the recipe's largest: 928)")
    p.add_argument("--batch", type=int, default=8, help="images per GPU")
    p.add_argument("--amp", choices=sorted(AMP_DTYPES), default="none")
    p.add_argument(
        "--grad_checkpoint",
        nargs="*",
        default=None,
        metavar="PART",
        help=f"parts to checkpoint as train.py's flag: {' '.join(CHECKPOINT_PARTS)} or all (no PART: the encoders)",
    )
    p.add_argument("--device", default="cuda", help="the (fake) device: cuda (default) or cpu")
    p.add_argument("--recipe_table", action="store_true", help="docs/training.md's table of the recipe's steps")
    p.add_argument("--json", default=None, help="write the numbers here")
    args = p.parse_args(argv)
    if args.recipe_table:
        rows = recipe_table(args.device)
        print(format_rows(rows))
        result = {"rows": rows}
    else:
        parts = checkpoint_parts(args.grad_checkpoint) if args.grad_checkpoint is not None else ()
        result = estimate_training_memory(build_fsanet, args.size, args.batch, args.amp, parts, args.device).as_dict()
        for key in KEYS:
            print(f"{key:18s} {result[key]:>15,d} B  {result[key] / GIB:7.2f} GiB")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
