"""The authors' FSANet training recipe as importable functions (``train.py`` is the CLI).

Recipe (README, "Training"): every batch is used for one
optimiser step at each size rate (0.75, 1, 1.25 → 544, 736, 928 for trainsize
736; bilinear, align_corners=True); loss 0.7·L(P1) + 0.1·(L(P2) + L(P3) + L(P4))
with L = BCE + weighted IoU; AdaXW; poly LR per epoch, lr·(1 − epoch/E)^0.9 with
epochs counted from 1; gradients clamped to ±clip before each step.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from lib.checkpoint import (
    CheckpointError,
    atomic_copy,
    atomic_save,
    authors_optimizer_to_fsanet,
    detect_layout,
    load_backbone_weights,
    load_fsanet_checkpoint,
    make_checkpoint,
    read_checkpoint,
)
from lib.FSANet import FSANet, build_fsanet, checkpoint_parts
from utils.adaxw import AdaXW
from utils.data_check import load_record, save_record, verify_pairs
from utils.dataset import TrainDataset
from utils.distributed import DistInfo, all_reduce_sum, barrier, cleanup, gather_objects, init_distributed
from utils.fileio import check_writable
from utils.images import describe_mask_notes, read_gt_mask, read_rgb
from utils.inference import postprocess, preprocess
from utils.losses import DEEP_SUPERVISION_WEIGHTS, deep_supervision_loss
from utils.pairing import DatasetError, scan_pairs, training_pairs
from utils.run_folder import RunFolderError, prepare_run_folder, release_lock

log = logging.getLogger("fsanet.train")

#: the authors' multi-scale rates.
SIZE_RATES = (0.75, 1.0, 1.25)
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: options whose change makes a resumed run differ from an uninterrupted one.
RECIPE_ARGS = ("epoch", "lr", "batchsize", "trainsize", "clip", "rates", "loss", "weight_decay", "power", "amp", "seed")


def _plain_arg(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ----------------------------------------------------------------------------- recipe pieces


def scaled_sizes(trainsize: int, rates: Sequence[float]) -> List[int]:
    """``round(trainsize·rate/32)·32`` per rate (736 → 544, 736, 928)."""
    return [int(round(trainsize * rate / 32) * 32) for rate in rates]


def rescale(images: torch.Tensor, masks: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both tensors bilinear to size×size with align_corners=True (unchanged at their own size)."""
    if images.shape[-2:] == (size, size):
        return images, masks
    resize = dict(size=(size, size), mode="bilinear", align_corners=True)
    return F.interpolate(images, **resize), F.interpolate(masks, **resize)


class PolyDecay:
    """LR factor for ``torch.optim.lr_scheduler.LambdaLR``: scheduler index i → epoch i + 1,
    ``(1 − epoch/total)^power`` (0 from the last epoch on, as the authors' formula gives)."""

    def __init__(self, total_epochs: int, power: float = 0.9) -> None:
        self.total_epochs = int(total_epochs)
        self.power = float(power)

    def __call__(self, index: int) -> float:
        return max(0.0, 1.0 - (index + 1) / self.total_epochs) ** self.power


def make_scheduler(optimizer: torch.optim.Optimizer, total_epochs: int, power: float, done_epochs: int):
    """A poly LambdaLR whose current LR is that of epoch ``done_epochs + 1``."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, PolyDecay(total_epochs, power), last_epoch=done_epochs - 1)


def resolve_device(name: Optional[str]) -> torch.device:
    """``cuda`` when available unless told otherwise; a clear error for a missing GPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is visible to PyTorch; use --device cpu")
    return device


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> Dict[str, Any]:
    """Every global RNG's state, in types that ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- model and weights


def unwrap(model: nn.Module) -> nn.Module:
    """The FSANet inside DataParallel / DistributedDataParallel."""
    return getattr(model, "module", model)


def init_backbones(model: FSANet, args: argparse.Namespace) -> List[str]:
    """Load the ImageNet files given on the command line; returns the encoders left random."""
    generator = torch.Generator().manual_seed(args.seed)
    files = {"pvt_v2": args.pvt_weights, "res2net": args.res2net_weights, "resnet": args.resnet_weights}
    flags = {"pvt_v2": "--pvt_weights", "res2net": "--res2net_weights", "resnet": "--resnet_weights"}
    random_parts = []
    for part, encoder in (("spatial", model.spatial_encoder), ("frequency", model.frequency_branch.encoder)):
        family = next(f for f in files if encoder.timm_name.startswith(f))
        if files[family]:
            report = load_backbone_weights(model, files[family], part, generator)
            log.info("%s encoder (%s) from %s (%s)", part, encoder.timm_name, files[family], report.layout)
        else:
            random_parts.append(f"{part} encoder ({encoder.timm_name}, {flags[family]})")
    return random_parts


@dataclass
class StartState:
    """What a run starts from: completed epochs and the states to restore."""

    epoch: int = 0
    optimizer: Optional[Dict[str, Any]] = None
    extras: Dict[str, Any] = field(default_factory=dict)


def prepare_model(args: argparse.Namespace) -> Tuple[FSANet, StartState]:
    """Build the FSANet this run trains and read what it resumes from.

    ``--resume``: a project checkpoint, restored exactly (model, optimiser, LR,
    AMP scaler, RNG, epoch, best score). ``--pre_model`` (the authors' meaning):
    weights, optimiser state when the file has one, and the epoch counter, from
    any FSANet checkpoint including the authors' FSANet-100.pth. Otherwise the
    backbones come from the ImageNet files given.
    """
    if args.resume:
        path = Path(args.resume)
        if path.is_dir():
            path = path / "latest.pth"
        obj = read_checkpoint(path)
        layout, _, meta = detect_layout(obj, path)
        if layout != "project":
            raise CheckpointError(
                f"{path}: --resume needs a checkpoint written by this train.py (found a {layout} file); "
                "to start from other FSANet weights use --pre_model"
            )
        model = build_fsanet(meta["config"])
        load_fsanet_checkpoint(model, obj, path)
        extras = {k: obj.get(k) for k in ("scheduler", "scaler", "rng", "best", "history")}
        saved = obj.get("args") or {}
        changed = [
            f"--{k} {saved[k]} → {getattr(args, k)}"
            for k in RECIPE_ARGS
            if k in saved and saved[k] != _plain_arg(getattr(args, k))
        ]
        if changed:
            log.warning(
                "resuming with recipe options that differ from the checkpoint's: %s "
                "(the run will not equal an uninterrupted one)",
                "; ".join(changed),
            )
        used = {
            "backbone": meta["config"].get("backbone"),
            "freq_backbone": meta["config"].get("freq_backbone"),
            "channels": meta["config"].get("channels"),
            "decoder_channels": meta["config"].get("decoder_channels"),
        }
        ignored = [
            f"--{k} {_plain_arg(getattr(args, k))}"
            for k, v in used.items()
            if v is not None and _plain_arg(getattr(args, k)) != _plain_arg(v)
        ]
        if ignored:
            log.warning(
                "--resume keeps the checkpoint's architecture (%s); ignored: %s",
                ", ".join(f"{k} {_plain_arg(v)}" for k, v in used.items()),
                "; ".join(ignored),
            )
        for key, value in used.items():  # the checkpoints of this run record what was used
            if value is not None:
                setattr(args, key, tuple(value) if isinstance(value, list) else value)
        log.info("resuming %s after epoch %d", path, obj["epoch"])
        return model, StartState(int(obj["epoch"]), obj.get("optimizer"), extras)

    model = build_fsanet(
        backbone=args.backbone,
        freq_backbone=args.freq_backbone,
        channels=args.channels,
        decoder_channels=args.decoder_channels,
        radius=args.radius,
        drop_path_rate=args.drop_path,
    )
    if args.pre_model:
        obj = read_checkpoint(args.pre_model)
        layout, state_dict, meta = detect_layout(obj, args.pre_model)
        report = load_fsanet_checkpoint(model, obj, args.pre_model)
        optimizer_state = None
        if layout == "project":
            optimizer_state = obj.get("optimizer")
        elif layout == "authors":
            optimizer_state = authors_optimizer_to_fsanet(obj.get("optimizer") or {}, obj["model"], model)
        epoch = int(meta.get("epoch") or 0)
        log.info(
            "--pre_model %s (%s): weights%s, continuing after epoch %d",
            args.pre_model,
            report.layout,
            " and optimiser state" if optimizer_state else "",
            epoch,
        )
        return model, StartState(epoch, optimizer_state)

    random_parts = init_backbones(model, args)
    if random_parts:
        log.warning(
            "\n%s\nTHE BACKBONES ARE RANDOM: no ImageNet weights for the %s.\n"
            "The authors start from ImageNet PVT-v2-b2 and ResNet-50; without them the paper's numbers "
            "are out of reach.\nGive the local files with --pvt_weights / --resnet_weights / --res2net_weights.\n%s",
            "!" * 78,
            " and ".join(random_parts),
            "!" * 78,
        )
    return model, StartState()


# ----------------------------------------------------------------------------- one epoch


@dataclass
class StepConfig:
    """Per-step settings of :func:`train_one_epoch`."""

    device: torch.device
    sizes: List[int]
    record_index: int
    clip: float = 0.5
    bce: str = "mean"
    weights: Tuple[float, ...] = DEEP_SUPERVISION_WEIGHTS
    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: StepConfig,
    desc: str = "train",
    progress: bool = True,
    info: Optional[DistInfo] = None,
) -> Dict[str, float]:
    """One pass over ``loader``, one optimiser step per size in ``cfg.sizes``.

    Returns the epoch's mean losses (``loss``, ``P1``..``P4``) over the steps at
    the recorded rate (rate 1, as the authors log), images/s and seconds.
    """
    info = info or DistInfo()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    # total, P1..P4, samples; on the training device, where NCCL's all_reduce needs it (MPS has no float64)
    sums = torch.zeros(6, dtype=torch.float32 if cfg.device.type == "mps" else torch.float64, device=cfg.device)
    seen, start = 0, time.perf_counter()
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress, dynamic_ncols=True, leave=False)
    for images, masks in bar:
        images = images.to(cfg.device, non_blocking=True)
        masks = masks.to(cfg.device, non_blocking=True)
        for index, size in enumerate(cfg.sizes):
            optimizer.zero_grad(set_to_none=True)
            x, y = rescale(images, masks, size)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(cfg.device.type, dtype=cfg.amp_dtype or torch.float32, enabled=cfg.amp_dtype is not None):
                outputs = model(x)
            total, losses = deep_supervision_loss(outputs[:4], y, cfg.weights, cfg.bce)
            if not torch.isfinite(total):
                raise FloatingPointError(
                    f"{desc}: the loss became {total.item()} at size {size}; lower --lr, or use --amp bf16 instead of fp16"
                )
            scaler.scale(total).backward()
            if cfg.clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_value_(params, cfg.clip)
            scaler.step(optimizer)
            scaler.update()
            if index == cfg.record_index:
                batch = images.shape[0]
                values = torch.stack([total.detach(), *(loss.detach() for loss in losses)]).to(sums.dtype)
                sums[:5] += values * batch
                sums[5] += batch
        seen += images.shape[0]
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{(sums[0] / max(sums[5].item(), 1)).item():.4f}", img_s=f"{seen / elapsed:.1f}")
    elapsed = time.perf_counter() - start
    all_reduce_sum(sums, info)
    count = max(sums[5].item(), 1.0)
    stats = {"loss": sums[0].item() / count}
    stats.update({f"P{i + 1}": sums[i + 1].item() / count for i in range(4)})
    stats["images_per_s"] = seen * info.world_size / elapsed if elapsed > 0 else float("nan")
    stats["seconds"] = elapsed
    return stats


@torch.inference_mode()
def validate(
    model: nn.Module,
    pairs: Sequence[Tuple[Path, Path]],
    device: torch.device,
    size: int,
    amp_dtype: Optional[torch.dtype] = None,
    progress: bool = True,
) -> Dict[str, float]:
    """MAE and maxFβ of P1 on ``pairs``, post-processed as the authors test."""
    from py_sod_metrics import MAE, FmeasureHandler, FmeasureV2

    model = unwrap(model)
    was_training = model.training
    model.eval()
    mae = MAE()
    fmeasure = FmeasureV2(metric_handlers={"fm": FmeasureHandler(with_dynamic=True, with_adaptive=False, beta=0.3)})
    for image_path, mask_path in tqdm(pairs, desc="validate", unit="img", disable=not progress, leave=False):
        mask, _ = read_gt_mask(mask_path)
        x = preprocess(read_rgb(image_path), size).to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)[0]
        prediction = postprocess(logits, mask.shape)
        mae.step(prediction, mask)
        fmeasure.step(prediction, mask)
    model.train(was_training)
    return {"MAE": float(mae.get_results()["mae"]), "maxFm": float(fmeasure.get_results()["fm"]["dynamic"].max())}


# ----------------------------------------------------------------------------- the run


def verify_training_files(
    pairs: Sequence[Tuple[Path, Path]],
    val_pairs: Sequence[Tuple[Path, Path]],
    record_path: Path,
    workers: int,
    info: DistInfo,
    progress: bool = True,
) -> None:
    """Decode every training and validation file before the first step (each process
    its share); raise one :class:`DatasetError` naming every unreadable file."""
    everything = list(pairs) + list(val_pairs)
    record = load_record(record_path)
    mine = verify_pairs(
        everything[info.rank :: info.world_size], record, max(1, workers), progress=progress and info.is_main
    )
    parts = gather_objects((mine.bad, dict(mine.mask_notes), mine.record, mine.decoded), info)
    bad = sorted(b for part in parts for b in part[0])
    notes: Dict[str, List[str]] = {}
    for part in parts:
        for kind, files in part[1].items():
            notes.setdefault(kind, []).extend(files)
    if info.is_main:
        for line in describe_mask_notes({k: sorted(v) for k, v in notes.items()}, "training/validation masks"):
            log.warning("%s", line)
        decoded = sum(part[3] for part in parts)
        if decoded:
            merged = dict(record)
            for part in parts:
                merged.update(part[2])
            try:
                save_record(record_path, merged)
            except OSError as error:
                log.warning("could not remember the checked files in %s (%s)", record_path, error)
            log.info(
                "checked %d files (%d decoded now, the rest remembered in %s)", 2 * len(everything), decoded, record_path
            )
    if bad:
        raise DatasetError(
            f"{len(bad)} training/validation files cannot be read:\n  "
            + "\n  ".join(bad)
            + "\nreplace or remove them (with their image or mask) before training"
        )


@dataclass
class TrainResult:
    """What :func:`run_training` leaves behind."""

    model: FSANet
    history: List[Dict[str, float]]
    checkpoint_dir: Path
    log_dir: Path
    last_checkpoint: Optional[Path]


#: this repository's loggers; train.log receives theirs (the root logger is left to the scripts).
PACKAGE_LOGGERS = ("fsanet", "utils", "lib", "models")


def _add_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    for name in PACKAGE_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler


def _data_parallel_device(device: torch.device, gpus: List[int]) -> torch.device:
    """The GPU DataParallel keeps the model on (the first of ``--gpus``), after checking the ids."""
    count = torch.cuda.device_count()
    absent = [g for g in gpus if g >= count]
    if absent or len(set(gpus)) != len(gpus):
        raise ValueError(
            f"--gpus {','.join(map(str, gpus))}: {count} GPUs are visible (ids 0..{count - 1}), each id may appear once"
        )
    if device.index is not None and device.index != gpus[0]:
        raise ValueError(
            f"--device {device} but --gpus starts with {gpus[0]}: DataParallel keeps the model on the "
            "first of --gpus; drop --device or make them agree"
        )
    return torch.device("cuda", gpus[0])


def data_parallel_gpus(device: torch.device, gpus: Optional[List[int]], info: DistInfo) -> List[int]:
    """The GPUs nn.DataParallel splits each batch over (empty: no DataParallel)."""
    if info.enabled or device.type != "cuda":
        return []
    gpus = gpus if gpus is not None else list(range(torch.cuda.device_count()))
    return gpus if len(gpus) > 1 else []


def smallest_chunk(batch: int, replicas: int) -> int:
    """The smallest piece ``torch.chunk`` (DataParallel's scatter) cuts ``batch`` images into."""
    if replicas <= 1:
        return batch
    size = -(-batch // replicas)
    return batch % size or size


def _wrap_model(model: nn.Module, device: torch.device, dp_gpus: List[int], info: DistInfo) -> nn.Module:
    if info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if dp_gpus:
        log.info("nn.DataParallel over GPUs %s (the batch is split between them)", dp_gpus)
        return nn.DataParallel(model, device_ids=dp_gpus)
    return model


def _epoch_line(epoch: int, total: int, lr: float, stats: Dict[str, float], val: Optional[Dict[str, float]]) -> str:
    line = (
        f"epoch {epoch}/{total} | loss {stats['loss']:.4f} (P1 {stats['P1']:.4f} P2 {stats['P2']:.4f} "
        f"P3 {stats['P3']:.4f} P4 {stats['P4']:.4f}) | lr {lr:.3e} | {stats['images_per_s']:.2f} img/s | "
        f"{stats['seconds']:.0f} s"
    )
    if val:
        line += f" | val MAE {val['MAE']:.4f} maxFβ {val['maxFm']:.4f}"
    return line


def run_training(args: argparse.Namespace) -> TrainResult:
    """Train FSANet as ``args`` (``train.py``'s options) say; see the module docstring."""
    device = resolve_device(args.device)
    info = init_distributed(device.type)
    if info.enabled:
        device = info.device  # one process per GPU (or CPU worker)
        if args.gpus:
            log.warning(
                "--gpus %s is ignored under torchrun: each process drives GPU LOCAL_RANK", ",".join(map(str, args.gpus))
            )
    elif device.type == "cuda" and args.gpus:
        device = _data_parallel_device(device, args.gpus)
    root = Path(args.out_root)
    checkpoint_dir, log_dir = root / "checkpoints" / args.train_save, root / "logs" / args.train_save
    lock, handler = None, None
    try:
        error = None
        if info.is_main:
            try:
                lock = prepare_run_folder(
                    checkpoint_dir, log_dir, Path(args.resume) if args.resume else None, getattr(args, "overwrite", False)
                )
            except ValueError as refused:
                error = refused
        _agree(info, error)
        if info.is_main:
            handler = _add_log_file(log_dir / "train.log")
        else:
            for name in PACKAGE_LOGGERS:  # one voice: rank 0 logs for all processes
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            return _run(args, device, info, checkpoint_dir, log_dir)
        except (Exception, KeyboardInterrupt) as failure:
            if handler is not None:  # the reason goes into train.log too (the script prints it on the console)
                text = "interrupted (Ctrl-C)" if isinstance(failure, KeyboardInterrupt) else failure
                handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "stopped: %s", (text,), None))
            raise
    finally:
        if handler is not None:
            for name in PACKAGE_LOGGERS:
                logging.getLogger(name).removeHandler(handler)
            handler.close()
        release_lock(lock)
        cleanup(info)


def _agree(info: DistInfo, error: Optional[Exception]) -> None:
    """Raise ``error`` (found by one process) in every process, so that none waits for the others."""
    errors = [e for e in gather_objects(str(error) if error else None, info) if e]
    if error is not None:
        raise error
    if errors:
        raise RunFolderError(errors[0])


def _run(args: argparse.Namespace, device: torch.device, info: DistInfo, checkpoint_dir: Path, log_dir: Path) -> TrainResult:
    if args.batchsize % info.world_size:
        raise ValueError(f"--batchsize {args.batchsize} (the global batch) must divide by the {info.world_size} processes")
    per_process = args.batchsize // info.world_size
    dp_gpus = data_parallel_gpus(device, args.gpus, info)
    if smallest_chunk(per_process, len(dp_gpus)) < 2:
        where = f"each of the {len(dp_gpus)} DataParallel GPUs" if dp_gpus else "each process"
        raise ValueError(
            f"{where} needs at least 2 images per batch (--batchsize {args.batchsize}): SFF's global "
            "branch applies BatchNorm to a 1×1 map, which fails on one image in training (as in the "
            "authors' model); raise --batchsize or use fewer GPUs (--gpus)"
        )
    pairs = training_pairs(args.train_path, skip_unpaired=args.skip_unpaired)
    val_pairs = []
    if args.val_path:
        val_scan = scan_pairs(args.val_path)
        if val_scan.has_problems or val_scan.size_mismatch:
            mismatched = ", ".join(val_scan.size_mismatch)
            log.warning(
                "validation set: %s%s",
                val_scan.problems(),
                f"\n  size mismatches left out: {mismatched}" if mismatched else "",
            )
        val_pairs = val_scan.pairs
    if args.cache_dir:
        check_writable(args.cache_dir, "--cache_dir")
    seed_everything(args.seed + info.rank)
    model, start = prepare_model(args)
    if args.resume and start.epoch >= args.epoch:
        log.info(
            "%s: this run is finished (epoch %d of --epoch %d); nothing to train. To train longer, "
            "give a larger --epoch (the LR schedule then changes)",
            args.resume,
            start.epoch,
            args.epoch,
        )
        return TrainResult(model, list(start.extras.get("history") or []), checkpoint_dir, log_dir, None)
    record = Path(args.cache_dir) / "verified.json" if args.cache_dir else checkpoint_dir / "verified_files.json"
    verify_training_files(pairs, val_pairs, record, args.workers, info, progress=not args.no_progress)
    if all(PolyDecay(args.epoch, args.power)(i) == 0 for i in range(start.epoch, args.epoch)):
        log.warning(
            "every epoch of this run has learning rate 0: the authors' poly schedule reaches 0 at its last "
            "epoch (--epoch %d), so nothing will be learned; use --epoch 2 or more",
            args.epoch,
        )
    # The radius gets no gradient in the authors' model (hard threshold); freezing it changes
    # nothing and lets DistributedDataParallel run without find_unused_parameters.
    model.frequency_branch.high_pass.radius.requires_grad_(False)
    if args.grad_checkpoint is not None:
        model.set_grad_checkpointing(True, parts=checkpoint_parts(args.grad_checkpoint))
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)

    optimizer = AdaXW(model.parameters(), lr=args.lr, betas=(0.9, 1e-4), eps=1e-12, weight_decay=args.weight_decay)
    if start.optimizer:
        optimizer.load_state_dict(start.optimizer)
    scheduler = make_scheduler(optimizer, args.epoch, args.power, start.epoch)
    if start.extras.get("scheduler"):
        scheduler.load_state_dict(start.extras["scheduler"])
    amp_dtype = AMP_DTYPES[args.amp]
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    if start.extras.get("scaler"):
        scaler.load_state_dict(start.extras["scaler"])
    wrapped = _wrap_model(model, device, dp_gpus, info)

    dataset = TrainDataset(pairs, args.trainsize, args.cache_dir)
    sampler = DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=args.seed) if info.enabled else None
    per_rank_samples = len(sampler) if sampler is not None else len(dataset)
    remainder = per_rank_samples % per_process
    drop_last = remainder > 0 and smallest_chunk(remainder, len(dp_gpus)) < 2
    if drop_last:
        log.warning(
            "%d images with batch %d leave a last batch of %d that puts 1 image on a GPU or process, which "
            "BatchNorm cannot train on: those images are skipped each epoch",
            per_rank_samples,
            per_process,
            remainder,
        )
    generator = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(
        dataset,
        batch_size=per_process,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
        generator=generator,
    )
    if len(dataset) < 2:
        raise ValueError(
            f"{args.train_path}: {len(dataset)} usable pair; training needs at least 2 (every batch "
            "needs 2 images for SFF's BatchNorm): add images"
        )
    if len(loader) == 0:
        raise ValueError(
            f"{args.train_path}: {len(dataset)} pairs give no full batch of {per_process}; "
            "add images or lower --batchsize (2 at the least)"
        )

    rates = list(args.rates)
    sizes = scaled_sizes(args.trainsize, rates)
    record_index = rates.index(1.0) if 1.0 in rates else len(rates) - 1
    cfg = StepConfig(
        device,
        sizes,
        record_index,
        args.clip,
        "weighted" if args.loss == "weighted" else "mean",
        amp_dtype=amp_dtype,
        channels_last=args.channels_last,
    )
    history: List[Dict[str, float]] = list(start.extras.get("history") or [])
    best = dict(start.extras.get("best") or {"maxFm": -math.inf, "epoch": 0})
    if start.extras.get("rng"):
        states = start.extras["rng"]
        set_rng_state(states["ranks"][info.rank] if info.rank < len(states["ranks"]) else states["ranks"][0])
        generator.set_state(states["loader"])

    writer = None
    if info.is_main:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(log_dir))
        log.info(
            "training %d pairs from %s on %s%s | sizes %s | batch %d | epochs %d → %d | checkpoints in %s",
            len(dataset),
            args.train_path,
            device,
            f" × {info.world_size} processes" if info.enabled else "",
            sizes,
            args.batchsize,
            start.epoch + 1,
            args.epoch,
            checkpoint_dir,
        )
    last_checkpoint = None
    for epoch in range(start.epoch + 1, args.epoch + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            wrapped,
            loader,
            optimizer,
            scaler,
            cfg,
            f"epoch {epoch}/{args.epoch}",
            progress=info.is_main and not args.no_progress,
            info=info,
        )
        scheduler.step()
        val = None
        if val_pairs and info.is_main and (epoch % args.val_every == 0 or epoch == args.epoch):
            val = validate(
                model, val_pairs, device, args.val_size or args.trainsize, amp_dtype, progress=not args.no_progress
            )
        states = gather_objects(rng_state(), info)
        record = {"epoch": epoch, "lr": lr, **stats, **(val or {})}
        history.append(record)
        if info.is_main:
            log.info(_epoch_line(epoch, args.epoch, lr, stats, val))
            for key in ("loss", "P1", "P2", "P3", "P4"):
                writer.add_scalar(f"train/loss_{key}" if key != "loss" else "train/loss", stats[key], epoch)
            writer.add_scalar("train/lr", lr, epoch)
            writer.add_scalar("train/images_per_s", stats["images_per_s"], epoch)
            for key, value in (val or {}).items():
                writer.add_scalar(f"val/{key}", value, epoch)
            writer.flush()
            improved = val is not None and val["maxFm"] > best["maxFm"]
            if improved:
                best = {"maxFm": val["maxFm"], "MAE": val["MAE"], "epoch": epoch}
            checkpoint = make_checkpoint(
                model,
                epoch,
                optimizer,
                vars(args),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                rng={"ranks": states, "loader": generator.get_state()},
                best=best,
                history=history,
            )
            last_checkpoint = checkpoint_dir / "latest.pth"
            atomic_save(checkpoint, last_checkpoint)
            if epoch % args.save_every == 0 or epoch == args.epoch:
                last_checkpoint = atomic_copy(checkpoint_dir / "latest.pth", checkpoint_dir / f"FSANet-{epoch}.pth")
                log.info("saved %s", last_checkpoint)
            if improved:
                atomic_copy(checkpoint_dir / "latest.pth", checkpoint_dir / "best.pth")
                log.info("new best maxFβ %.4f at epoch %d → %s", val["maxFm"], epoch, checkpoint_dir / "best.pth")
        barrier(info)
    if writer is not None:
        writer.close()
    return TrainResult(model, history, checkpoint_dir, log_dir, last_checkpoint)
