"""Everything a training run needs to know, as one dataclass (``train.py`` builds it from its flags).

The defaults are the authors' recipe; each field is a ``train.py`` option of the
same name. The architecture fields left ``None`` take the values of the named
configuration ``config`` (:mod:`lib.configs`: ``fsanet``, the paper's, or
``fsanet_small``). Every field is checked and normalised here, when the config is
made (sizes rounded to multiples of 32 with a warning, ``grad_checkpoint`` as a tuple
of part names), so a config built in code behaves exactly as the command line's.
A run never changes its config: ``--resume`` returns the effective one.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Tuple

from lib.configs import CHECKPOINT_PARTS, INPUT_MULTIPLE, checkpoint_parts, get_config
from utils.common.cli import round_to_multiple
from utils.common.errors import ConfigError
from utils.common.logs import get_logger
from utils.training.losses import LOSSES

log = get_logger(__name__)


#: the authors' multi-scale rates.
SIZE_RATES = (0.75, 1.0, 1.25)
#: ``config`` keys → ``TrainConfig`` fields where the names differ.
_ARCHITECTURE = {
    "backbone": "backbone",
    "freq_backbone": "freq_backbone",
    "channels": "channels",
    "decoder_channels": "decoder_channels",
    "radius": "radius",
    "drop_path_rate": "drop_path",
}


@dataclass
class TrainConfig:
    # the authors' recipe
    epoch: int = 200
    lr: float = 2e-4
    batchsize: int = 8  # global batch: split over DataParallel GPUs or torchrun processes
    trainsize: int = 736
    clip: float = 0.5
    rates: Tuple[float, ...] = SIZE_RATES
    loss: str = "authors"  # "weighted": the boundary-weighted BCE the authors intended
    weight_decay: float = 1e-4
    power: float = 0.9
    # data
    train_path: str = "./data/TrainDataset"
    skip_unpaired: bool = False
    cache_dir: Optional[str] = None
    workers: int = min(4, os.cpu_count() or 1)
    val_path: Optional[str] = None
    val_every: int = 1
    val_size: Optional[int] = None
    # model and weights (architecture: None = the named config's value)
    config: str = "fsanet"
    backbone: Optional[str] = None
    freq_backbone: Optional[str] = None
    channels: Optional[Tuple[int, int, int, int]] = None
    decoder_channels: Optional[int] = None
    radius: Optional[float] = None
    drop_path: Optional[float] = None
    spatial_weights: Optional[str] = None  # the spatial encoder's ImageNet file (models.registry's layouts)
    frequency_weights: Optional[str] = None  # the frequency encoder's ImageNet file
    pvt_weights: Optional[str] = None  # older per-family aliases of the two above
    resnet_weights: Optional[str] = None
    res2net_weights: Optional[str] = None
    random_backbones: bool = False  # the only way to train from random encoders (demo, tests)
    pre_model: Optional[str] = None
    fine_tune: bool = False  # with pre_model: the file's weights, a fresh optimiser, the epoch counter from 0
    resume: Optional[str] = None
    # devices, speed and output
    device: Optional[str] = None
    gpus: Optional[List[int]] = None
    amp: str = "none"
    channels_last: bool = False
    grad_checkpoint: Tuple[str, ...] = ()  # the parts recomputed in backward (lib.FSANet.CHECKPOINT_PARTS); (): off
    seed: int = 0
    train_save: str = "FSANet"
    overwrite: bool = False
    out_root: str = "."
    save_every: int = 5
    save_optimizer: str = "all"  # "latest": numbered and best checkpoints hold the weights only
    no_progress: bool = False
    threads: Optional[int] = None  # torch.set_num_threads; None: PyTorch's choice

    def __post_init__(self) -> None:
        named = get_config(self.config)
        for key, name in _ARCHITECTURE.items():
            if getattr(self, name) is None:
                setattr(self, name, named[key])
        self.channels = tuple(int(c) for c in self.channels)
        self.rates = tuple(float(r) for r in self.rates)
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError(f"--threads must be a whole number ≥ 1, got {self.threads}")
        for name in ("epoch", "batchsize", "trainsize", "val_every", "save_every", "decoder_channels"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name} must be a whole number ≥ 1, got {getattr(self, name)}")
        for name in ("lr", "power"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name} must be > 0, got {getattr(self, name)}")
        for name in ("clip", "weight_decay", "workers", "radius"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be ≥ 0, got {getattr(self, name)}")
        if not all(r > 0 for r in self.rates) or any(c < 1 for c in self.channels):
            raise ConfigError(f"--rates and --channels must be positive, got {self.rates} and {self.channels}")
        if self.save_optimizer not in ("all", "latest"):
            raise ConfigError(f"--save_optimizer must be all or latest, got {self.save_optimizer!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ConfigError(f"--amp must be none, bf16 or fp16, got {self.amp!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")  # the loss table
        if not 0 <= float(self.drop_path) < 1:
            raise ConfigError(f"--drop_path must be in [0, 1), got {self.drop_path}")
        if self.val_size is not None and int(self.val_size) < 1:
            raise ConfigError(f"--val_size must be a whole number ≥ 1, got {self.val_size}")
        parts = tuple(self.grad_checkpoint or ())
        if "all" in parts:
            parts = CHECKPOINT_PARTS
        self.grad_checkpoint = checkpoint_parts(parts) if parts else ()
        self.trainsize = round_to_multiple(int(self.trainsize), "trainsize", log, INPUT_MULTIPLE)
        if self.val_size is not None:
            self.val_size = round_to_multiple(int(self.val_size), "val_size", log, INPUT_MULTIPLE)
        zero = [r for r in self.rates if round(self.trainsize * r / INPUT_MULTIPLE) < 1]
        if zero:
            raise ConfigError(
                f"--rates {' '.join(f'{r:g}' for r in zero)}: at --trainsize {self.trainsize} the size rounds to 0 "
                f"(sizes are round(trainsize·rate/{INPUT_MULTIPLE})·{INPUT_MULTIPLE}); use rates of at least "
                f"{INPUT_MULTIPLE / 2 / self.trainsize:.3g}"
            )
        name = str(self.train_save)
        if not name or name in (".", "..") or "/" in name or os.sep in name or name != name.strip() or name.startswith("-"):
            raise ConfigError(
                f"--train_save {name!r}: give one plain folder name (e.g. FSANet or dis5k_run2); it becomes "
                "checkpoints/NAME and logs/NAME under --out_root"
            )
        if self.fine_tune and not self.pre_model:
            raise ConfigError("--fine_tune applies to the weights of --pre_model; give --pre_model PATH")
        if self.fine_tune and self.resume:
            raise ConfigError("--fine_tune starts a new run from --pre_model; --resume continues one: give one of the two")

    def model_config(self) -> Dict[str, Any]:
        """The FSANet constructor arguments this run builds."""
        return {key: getattr(self, name) for key, name in _ARCHITECTURE.items()}

    def as_dict(self) -> Dict[str, Any]:
        """Plain values, as checkpoints record them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        """A config from ``as_dict`` output or parsed flags; an unknown key is refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training options {unknown}; TrainConfig has: {', '.join(sorted(known))}")
        return cls(**values)
