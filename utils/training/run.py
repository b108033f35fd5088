"""A training run of the authors' recipe, read top to bottom (``train.py`` is the CLI).

    with TrainingRun(config) as run:          # folders, data, model, optimiser, resume
        for epoch in run.epochs():
            stats = run.train_epoch(epoch)    # utils.training.recipe: one optimiser step per size rate
            val = run.validate(epoch)         # utils.training.validation, every --val_every epochs
            run.end_epoch(epoch, stats, val)  # log, tensorboard, checkpoints
    result = run.result()

The recipe is in :mod:`utils.training.recipe`, the loss in :mod:`utils.training.losses`, the optimiser
in :mod:`utils.training.adaxw`, what a run starts from in :mod:`utils.training.start`, weights in :mod:`lib.weights`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

from lib.FSANet import FSANet
from utils.common.amp import AMP_DTYPES
from utils.common.cli import set_threads
from utils.common.devices import data_parallel_device, data_parallel_gpus, resolve_device, smallest_chunk, wrap_model
from utils.common.distributed import DistInfo, barrier, cleanup, gather_objects, init_distributed
from utils.common.errors import ConfigError, FSANetError
from utils.common.fileio import check_writable
from utils.common.logs import get_logger
from utils.common.signals import critical
from utils.data.checks import decode_file, verify_training_files
from utils.data.dataset import TrainDataset, make_train_loader
from utils.data.pairing import training_pairs
from utils.training.config import TrainConfig
from utils.training.health import check_finite_weights, warn_if_diverging
from utils.training.recipe import make_optimizer, make_scheduler, make_step_config, train_one_epoch, warn_if_nothing_learned
from utils.training.records import epoch_line, save_epoch, stop_message, write_scalars
from utils.training.rng import rng_state, seed_everything, set_rng_state
from utils.training.run_config import write_run_config
from utils.training.run_folder import PACKAGE_LOGGERS, add_log_file, agree, prepare_run_folder, release_lock
from utils.training.start import StartFiles, open_start_files, prepare_model, run_is_finished
from utils.training.validation import validate, validation_pairs, warn_validation_overlap

log = get_logger(__name__)


@dataclass
class TrainResult:
    """What a run leaves behind."""

    model: FSANet
    history: List[Dict[str, float]]
    checkpoint_dir: Path
    last_checkpoint: Optional[Path]


def run_training(config: TrainConfig) -> TrainResult:
    """Train FSANet as ``config`` says: the loop of this module's docstring."""
    with TrainingRun(config) as run:
        for epoch in run.epochs():
            stats = run.train_epoch(epoch)
            val = run.validate(epoch)
            run.end_epoch(epoch, stats, val)
    return run.result()


class TrainingRun:
    """One run: entering it claims the run folder and builds everything; leaving it releases
    the folder, and writes the reason of a failure into ``train.log``."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        set_threads(config.threads)
        self.device = resolve_device(config.device)
        root = Path(config.out_root)
        self.checkpoint_dir = root / "checkpoints" / config.train_save
        self.log_dir = root / "logs" / config.train_save
        self.info = DistInfo()
        self.lock: Optional[Path] = None
        self.handler: Optional[logging.Handler] = None
        self.writer = None
        self.last_checkpoint: Optional[Path] = None
        self.finished = False

    def __enter__(self) -> "TrainingRun":
        files = open_start_files(self.config)  # read and checked once, before any folder is claimed
        try:
            self._claim_folder()
            self._build(files)
        except BaseException as failure:
            self.__exit__(type(failure), failure, None)
            raise
        return self

    def __exit__(self, kind, failure, traceback) -> None:
        if failure is not None and self.handler is not None:  # the reason goes into train.log too
            text = stop_message(failure, self.checkpoint_dir) if isinstance(failure, KeyboardInterrupt) else failure
            self.handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "stopped: %s", (text,), None))
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.handler is not None:
            for name in PACKAGE_LOGGERS:
                logging.getLogger(name).removeHandler(self.handler)
            self.handler.close()
            self.handler = None
        release_lock(self.lock)
        self.lock = None
        cleanup(self.info)

    def _claim_folder(self) -> None:
        config = self.config
        self.info = info = init_distributed(self.device.type)
        if info.enabled:
            self.device = info.device  # one process per GPU (or CPU worker)
            if config.gpus:
                log.warning(
                    "--gpus %s is ignored under torchrun: each process drives GPU LOCAL_RANK",
                    ",".join(map(str, config.gpus)),
                )
        elif self.device.type == "cuda" and config.gpus:
            self.device = data_parallel_device(self.device, config.gpus)
        error = None
        if info.is_main:
            try:
                resume = Path(config.resume) if config.resume else None
                self.lock = prepare_run_folder(self.checkpoint_dir, self.log_dir, resume, config.overwrite)
            except FSANetError as refused:
                error = refused
        agree(info, error)
        if info.is_main:
            self.handler = add_log_file(self.log_dir / "train.log")
        else:
            for name in PACKAGE_LOGGERS:  # one voice: rank 0 logs for all processes
                logging.getLogger(name).setLevel(logging.ERROR)

    def _build(self, files: StartFiles) -> None:
        config, info, device = self.config, self.info, self.device
        if config.batchsize % info.world_size:
            raise ConfigError(
                f"--batchsize {config.batchsize} (the global batch) must divide by the {info.world_size} processes"
            )
        per_process = config.batchsize // info.world_size
        self.dp_gpus = data_parallel_gpus(device, config.gpus, info)
        if smallest_chunk(per_process, len(self.dp_gpus)) < 2:
            where = f"each of the {len(self.dp_gpus)} DataParallel GPUs" if self.dp_gpus else "each process"
            raise ConfigError(
                f"{where} needs at least 2 images per batch (--batchsize {config.batchsize}): SFF's "
                "global branch applies BatchNorm to a 1×1 map, which fails on one image in training "
                "(as in the authors' model); raise --batchsize or use fewer GPUs (--gpus)"
            )
        pairs = training_pairs(config.train_path, skip_unpaired=config.skip_unpaired)
        self.val_pairs = validation_pairs(config.val_path)
        warn_validation_overlap(pairs, self.val_pairs, config.train_path, config.val_path)
        if config.cache_dir:
            check_writable(config.cache_dir, "--cache_dir")
        seed_everything(config.seed + info.rank)
        self.model, self.start = model, start = prepare_model(config, files)
        self.config = config = start.config  # the effective config (--resume: the checkpoint's architecture)
        self.finished = run_is_finished(config, start)
        self.history: List[Dict[str, float]] = list(start.extras.get("history") or [])
        if self.finished:
            return
        record = (
            Path(config.cache_dir) / "verified.json" if config.cache_dir else self.checkpoint_dir / "verified_files.json"
        )
        dataset = TrainDataset(pairs, config.trainsize, config.cache_dir)
        prepare = dataset.prepare if config.cache_dir else decode_file  # with a cache, checking fills it
        verify_training_files(pairs, self.val_pairs, record, config.workers, info, not config.no_progress, prepare)
        warn_if_nothing_learned(config.epoch, config.power, start.epoch)
        self._build_model_and_optimiser()
        self._build_loader(dataset, per_process)
        if info.is_main:
            from tensorboardX import SummaryWriter

            write_run_config(self.checkpoint_dir, config, start.epoch)  # updated on resume; --config_file reruns it
            self.writer = SummaryWriter(str(self.log_dir))
            log.info(
                "training %d pairs from %s on %s%s | sizes %s | batch %d | epochs %d → %d | checkpoints in %s",
                len(self.loader.dataset),
                config.train_path,
                device,
                f" × {info.world_size} processes" if info.enabled else "",
                self.step.sizes,
                config.batchsize,
                start.epoch + 1,
                config.epoch,
                self.checkpoint_dir,
            )

    def _build_model_and_optimiser(self) -> None:
        config, model, start, device = self.config, self.model, self.start, self.device
        # The radius gets no gradient in the authors' model (hard threshold); freezing it changes
        # nothing and lets DistributedDataParallel run without find_unused_parameters.
        model.frequency_branch.high_pass.radius.requires_grad_(False)
        if config.grad_checkpoint:
            model.set_grad_checkpointing(True, parts=config.grad_checkpoint)
        model.to(device)
        if config.channels_last:
            model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(model, config.lr, config.weight_decay)
        if start.optimizer:
            self.optimizer.load_state_dict(start.optimizer)
        self.scheduler = make_scheduler(self.optimizer, config.epoch, config.power, start.epoch)
        if start.extras.get("scheduler"):
            self.scheduler.load_state_dict(start.extras["scheduler"])
        self.amp_dtype = AMP_DTYPES[config.amp]
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
        if start.extras.get("scaler"):
            self.scaler.load_state_dict(start.extras["scaler"])
        self.wrapped = wrap_model(model, device, self.dp_gpus, self.info)
        self.best = dict(start.extras.get("best") or {"maxFm": -math.inf, "epoch": 0})
        self.step = make_step_config(
            device, config.trainsize, config.rates, config.clip, config.loss, self.amp_dtype, config.channels_last
        )

    def _build_loader(self, dataset: TrainDataset, per_process: int) -> None:
        config, info = self.config, self.info
        self.loader, self.sampler, self.generator = make_train_loader(
            dataset, per_process, config.workers, config.seed, info, self.device, len(self.dp_gpus), config.train_path
        )
        if self.start.extras.get("rng"):
            states = self.start.extras["rng"]
            set_rng_state(states["ranks"][info.rank] if info.rank < len(states["ranks"]) else states["ranks"][0])
            self.generator.set_state(states["loader"])

    # ------------------------------------------------------------------ the loop

    def epochs(self) -> range:
        """The epochs left to train (counted from 1)."""
        return (
            range(self.config.epoch + 1, self.config.epoch + 1)
            if self.finished
            else range(self.start.epoch + 1, self.config.epoch + 1)
        )

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        """One pass over the data at the epoch's LR; the LR schedule then steps."""
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.lr = self.optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(
            self.wrapped,
            self.loader,
            self.optimizer,
            self.scaler,
            self.step,
            f"epoch {epoch}/{self.config.epoch}",
            progress=self.info.is_main and not self.config.no_progress,
            info=self.info,
        )
        self.scheduler.step()
        return stats

    def validate(self, epoch: int) -> Optional[Dict[str, float]]:
        """MAE and maxFβ of P1 on ``--val_path`` every ``--val_every`` epochs and after the last (rank 0)."""
        config = self.config
        if not self.val_pairs or not self.info.is_main:
            return None
        if epoch % config.val_every and epoch != config.epoch:
            return None
        return validate(
            self.model,
            self.val_pairs,
            self.device,
            config.val_size or config.trainsize,
            self.amp_dtype,
            progress=not config.no_progress,
        )

    def end_epoch(self, epoch: int, stats: Dict[str, float], val: Optional[Dict[str, float]]) -> None:
        """Record the epoch: train.log, tensorboard, latest.pth, numbered and best checkpoints."""
        check_finite_weights(self.model, epoch)  # before anything of the epoch is saved
        warn_if_diverging(self.history, epoch, stats)
        states = gather_objects(rng_state(), self.info)
        self.history.append({"epoch": epoch, "lr": self.lr, **stats, **(val or {})})
        if self.info.is_main:
            with critical():  # a stop inside tensorboardX's flush (its writer thread) would hang its close
                log.info(epoch_line(epoch, self.config.epoch, self.lr, stats, val))
                write_scalars(self.writer, epoch, self.lr, stats, val)
                self.best, self.last_checkpoint = save_epoch(
                    self.checkpoint_dir, self.model, epoch, val, self.best, self._states(states), self.config
                )
        barrier(self.info)

    def _states(self, rank_rng: list) -> dict:
        """What latest.pth holds besides the weights, to resume exactly."""
        rng = {"ranks": rank_rng, "loader": self.generator.get_state()}
        scheduler, scaler = self.scheduler.state_dict(), self.scaler.state_dict()
        return {"optimizer": self.optimizer, "scheduler": scheduler, "scaler": scaler, "rng": rng, "history": self.history}

    def result(self) -> TrainResult:
        return TrainResult(self.model, self.history, self.checkpoint_dir, self.last_checkpoint)
