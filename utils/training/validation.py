"""Validation during training: MAE and maxFβ of P1, post-processed as test.py does."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from tqdm import tqdm

from utils.common.devices import unwrap
from utils.common.logs import get_logger
from utils.data.images import read_gt_mask, read_rgb
from utils.data.pairing import scan_pairs
from utils.evaluation.metrics import new_metrics, step_metrics, summarize
from utils.inference.predict import predict_image

log = get_logger(__name__)


@torch.inference_mode()
def validate(
    model: nn.Module,
    pairs: Sequence[Tuple[Path, Path]],
    device: torch.device,
    size: int,
    amp_dtype: Optional[torch.dtype] = None,
    progress: bool = True,
) -> Dict[str, float]:
    """MAE and maxFβ of P1 on ``pairs``: test.py's map of each image
    (:func:`utils.inference.predict.predict_image`) scored by eval.py's metric objects."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    metrics = new_metrics(hce_rule=None, only=("fm", "mae"))
    for image_path, mask_path in tqdm(pairs, desc="validate", unit="img", disable=not progress, leave=False):
        mask, _ = read_gt_mask(mask_path)
        prediction = predict_image(model, read_rgb(image_path), size, device, amp_dtype, size_hw=mask.shape)
        step_metrics(metrics, prediction, mask)
    model.train(was_training)
    values, _ = summarize(metrics)
    return {"MAE": values["MAE"], "maxFm": values["maxFm"]}


def validation_pairs(val_path: Optional[str]) -> List[Tuple[Path, Path]]:
    """The usable pairs of ``--val_path`` (none without it); unusable files are warned about, not fatal."""
    if not val_path:
        return []
    scan = scan_pairs(val_path)
    if scan.has_problems or scan.size_mismatch:
        mismatched = ", ".join(scan.size_mismatch)
        log.warning(
            "validation set: %s%s", scan.problems(), f"\n  size mismatches left out: {mismatched}" if mismatched else ""
        )
    return scan.pairs
