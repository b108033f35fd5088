"""Everything a training run needs to know, as one dataclass (``train.py`` builds it from its flags).

The defaults are the authors' recipe; each field is a ``train.py`` option of the
same name. The architecture fields left ``None`` take the values of the named
configuration ``config`` (:mod:`lib.configs`: ``fsanet``, the paper's, or
``fsanet_small``). Numbers are checked when the config is made, so a library user
gets the same clear errors as the command line.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Optional, Tuple

from lib.configs import get_config

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
    pvt_weights: Optional[str] = None
    resnet_weights: Optional[str] = None
    res2net_weights: Optional[str] = None
    pre_model: Optional[str] = None
    resume: Optional[str] = None
    # devices, speed and output
    device: Optional[str] = None
    gpus: Optional[List[int]] = None
    amp: str = "none"
    channels_last: bool = False
    grad_checkpoint: Optional[List[str]] = None  # None: off; []: the encoders; or part names
    seed: int = 0
    train_save: str = "FSANet"
    overwrite: bool = False
    out_root: str = "."
    save_every: int = 5
    save_optimizer: str = "all"  # "latest": numbered and best checkpoints hold the weights only
    no_progress: bool = False

    def __post_init__(self) -> None:
        named = get_config(self.config)
        for key, name in _ARCHITECTURE.items():
            if getattr(self, name) is None:
                setattr(self, name, named[key])
        self.channels = tuple(int(c) for c in self.channels)
        self.rates = tuple(float(r) for r in self.rates)
        for name in ("epoch", "batchsize", "trainsize", "val_every", "save_every", "decoder_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name} must be a whole number ≥ 1, got {getattr(self, name)}")
        for name in ("lr", "power"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be > 0, got {getattr(self, name)}")
        for name in ("clip", "weight_decay", "workers", "radius"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be ≥ 0, got {getattr(self, name)}")
        if not all(r > 0 for r in self.rates) or any(c < 1 for c in self.channels):
            raise ValueError(f"--rates and --channels must be positive, got {self.rates} and {self.channels}")
        if self.save_optimizer not in ("all", "latest"):
            raise ValueError(f"--save_optimizer must be all or latest, got {self.save_optimizer!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"--amp must be none, bf16 or fp16, got {self.amp!r}")

    def model_config(self) -> Dict[str, Any]:
        """The FSANet constructor arguments this run builds."""
        return {key: getattr(self, name) for key, name in _ARCHITECTURE.items()}

    def as_dict(self) -> Dict[str, Any]:
        """Plain values, as checkpoints record them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        """A config from ``as_dict`` output or parsed flags; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
