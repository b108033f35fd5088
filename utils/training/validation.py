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
from utils.inference.forward import predict_image

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


def warn_validation_overlap(
    train: Sequence[Tuple[Path, Path]], val: Sequence[Tuple[Path, Path]], train_path: str, val_path: Optional[str]
) -> int:
    """Warn when ``--val_path`` shares images with ``--train_path`` (the same files, or files of
    the same name and size): best.pth would then be chosen on training images. Returns the count."""
    if not val:
        return 0
    by_path = {image.resolve() for image, _ in train}
    by_name = {(image.name, image.stat().st_size) for image, _ in train}
    shared = [image for image, _ in val if image.resolve() in by_path or (image.name, image.stat().st_size) in by_name]
    if shared:
        same = Path(val_path or "").resolve() == Path(train_path).resolve()
        log.warning(
            "--val_path %s %s: %d of its %d images are training images (%s), so best.pth would be chosen on "
            "images the model trained on; give a held-out set (the authors validate on DIS-VD)",
            val_path,
            "is --train_path itself" if same else "overlaps --train_path",
            len(shared),
            len(val),
            ", ".join(p.name for p in shared[:3]) + (" …" if len(shared) > 3 else ""),
        )
    return len(shared)
