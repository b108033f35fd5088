"""The power of the float64 trajectory test: break the recipe one way at a time and report
which figures of ``tests/test_training_trajectory.py`` fail, and by how much.

    python tests/trajectory_power.py                 # every change (about a minute each, 1 thread)
    python tests/trajectory_power.py clamp lr        # only the changes whose name holds a word

Each change is applied by patching the function the recipe calls (nothing in the library is
edited), the six float64 steps are run exactly as the test runs them, and the rows of
``compare`` are summarised: how many of the figures fail, the first that fails (value vs
bound) and, for the unchanged recipe, the figure closest to its bound.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import test_training_trajectory as trajectory_test  # run as a script from tests/: its conftest import sets the path
import torch
import torch.nn.functional as F
from conftest import load_manifest
from official_weights import recipe_state_dict

from utils.training import recipe
from utils.training.losses import LOSSES


@contextlib.contextmanager
def patched(owner: object, name: str, value: object) -> Iterator[None]:
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _step_config_with(**fields) -> Callable:
    make = trajectory_test.make_step_config
    return lambda *args, **kwargs: replace(make(*args, **kwargs), **fields)


def _reversed_rates(device, trainsize, rates, *args, **kwargs):
    return recipe.make_step_config(device, trainsize, list(rates)[::-1], *args, **kwargs)


def _optimizer_with(lr_factor: float = 1.0, wd_factor: float = 1.0) -> Callable:
    make = trajectory_test.make_optimizer
    return lambda model, lr, wd: make(model, lr * lr_factor, wd * wd_factor)


class _PolyFromZero(recipe.PolyDecay):
    """The poly LR with epochs counted from 0 (the authors count from 1)."""

    def __call__(self, index: int) -> float:
        return max(0.0, 1.0 - index / self.total_epochs) ** self.power


def _rescale_align_corners_false(images, masks, size):
    if images.shape[-2:] == (size, size):
        return images, masks
    resize = dict(size=(size, size), mode="bilinear", align_corners=False)
    return F.interpolate(images, **resize), F.interpolate(masks, **resize)


def _bce_scaled(*args, **kwargs):
    return _BCE(*args, **kwargs) * (1 + 1e-4)


_BCE = F.binary_cross_entropy_with_logits

#: name → a context that applies the change
CHANGES: Dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "none (the recipe as it is)": contextlib.nullcontext,
    "lr x 1.05": lambda: patched(trajectory_test, "make_optimizer", _optimizer_with(lr_factor=1.05)),
    "loss weights (0.1, 0.7, 0.1, 0.1)": lambda: patched(
        trajectory_test, "make_step_config", _step_config_with(weights=(0.1, 0.7, 0.1, 0.1))
    ),
    "loss weights 0.25 each": lambda: patched(trajectory_test, "make_step_config", _step_config_with(weights=(0.25,) * 4)),
    "poly LR counted from epoch 0": lambda: patched(recipe, "PolyDecay", _PolyFromZero),
    "rates in reverse order (1.25, 1, 0.75)": lambda: patched(trajectory_test, "make_step_config", _reversed_rates),
    "clamp 0.45 instead of 0.5": lambda: patched(trajectory_test, "make_step_config", _step_config_with(clip=0.45)),
    "BCE scaled by 1 + 1e-4": lambda: patched(F, "binary_cross_entropy_with_logits", _bce_scaled),
    "align_corners=False in the multi-scale rescale": lambda: patched(recipe, "rescale", _rescale_align_corners_false),
    "weight decay x 10": lambda: patched(trajectory_test, "make_optimizer", _optimizer_with(wd_factor=10)),
    "AdaX eps 1e-8 instead of 1e-12": lambda: patched(recipe, "ADAX_EPS", 1e-8),
    "BCE weighted (--loss weighted)": lambda: patched(
        trajectory_test, "make_step_config", _step_config_with(loss=LOSSES["weighted"].fn)
    ),
}


def _ratio(row) -> float:
    _, value, bound = row
    if bound > 0:
        return value / bound
    return 0.0 if value == 0 else float("inf")


def run(words: Sequence[str] = (), threads: int = 1) -> List[dict]:
    """One recipe run per selected change; a summary dict each (printed as it comes)."""
    torch.set_num_threads(threads)
    data = trajectory_test.load_trajectory()
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "FSANet-100.pth"
        state = recipe_state_dict(load_manifest("official_fsanet_keys.json"), radius=data["meta"]["weights"]["radius"])
        torch.save({"model": {"module." + k: v for k, v in state.items()}, "opech": 99}, weights)
        summaries = []
        for name, change in CHANGES.items():
            if words and not any(word.lower() in name.lower() for word in words):
                continue
            with change():
                rows = trajectory_test.compare(data, trajectory_test.run_recipe(data, weights))
            failing = [row for row in rows if not row[1] <= row[2]]
            first: Optional[tuple] = failing[0] if failing else None
            summary = {"change": name, "failing": len(failing), "figures": len(rows), "first": first}
            summary["closest"] = max(rows, key=_ratio)
            summaries.append(summary)
            shown = first or summary["closest"]
            print(
                f"| {name} | {len(failing)} of {len(rows)} | {shown[0]}: {shown[1]:.2g} vs {shown[2]:.2g} |",
                flush=True,
            )
    return summaries


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("words", nargs="*", help="run only the changes whose name holds one of these words")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    print("| change | figures failing | first failing figure (or, unchanged, the closest to its bound) |")
    print("| --- | --- | --- |")
    summaries = run(args.words, args.threads)
    unchanged = [s for s in summaries if s["change"].startswith("none")]
    changed = [s for s in summaries if not s["change"].startswith("none")]
    return 0 if all(s["failing"] == 0 for s in unchanged) and all(s["failing"] for s in changed) else 1


if __name__ == "__main__":
    sys.exit(main())
