"""How a model predicts, as one object for test.py, app.py and the ONNX export: which
weights, the input side, batch, device and precision. Checked and normalised when made."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

from lib.configs import INPUT_MULTIPLE
from utils.common.amp import AMP_CHOICES
from utils.common.cli import round_to_multiple
from utils.common.errors import ConfigError
from utils.common.logs import get_logger

log = get_logger(__name__)

#: the authors' test size (square input side)
DEFAULT_TESTSIZE = 992


@dataclass(frozen=True)
class PredictConfig:
    """What test.py, app.py and ``utils.deploy.export`` predict with.

    ``pth_path``: FSANet weights (any layout, ``.safetensors``); ``onnx``: an exported
    model run by onnxruntime (instead). ``testsize`` is rounded to a multiple of 32.
    """

    pth_path: Optional[str] = None
    onnx: Optional[str] = None
    testsize: int = DEFAULT_TESTSIZE
    batch_size: int = 1
    workers: int = 0
    device: Optional[str] = None
    amp: str = "none"
    channels_last: bool = False
    fold_bn: bool = False  # BatchNorm folded into the conv before it (lib.fold_batchnorm)
    compile: bool = False  # torch.compile the model (the first batch compiles it)
    threads: Optional[int] = None  # torch.set_num_threads (and onnxruntime's); None: PyTorch's choice
    keep_aspect: bool = False  # long side testsize, short side the nearest multiple of 32 (not the authors' square)

    def __post_init__(self) -> None:
        for name in ("testsize", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name} must be a whole number ≥ 1, got {getattr(self, name)}")
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError(f"--threads must be a whole number ≥ 1, got {self.threads}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be ≥ 0, got {self.workers}")
        if self.amp not in AMP_CHOICES:
            raise ConfigError(f"--amp must be one of {', '.join(sorted(AMP_CHOICES))}, got {self.amp!r}")
        if self.pth_path and self.onnx:
            raise ConfigError("give FSANet weights (--pth_path) or an exported model (--onnx), not both")
        object.__setattr__(self, "testsize", round_to_multiple(int(self.testsize), "testsize", log, INPUT_MULTIPLE))

    @classmethod
    def from_args(cls, args: argparse.Namespace | Mapping[str, Any]) -> "PredictConfig":
        """The fields of parsed flags (or a dict) that this config has; other keys belong to the script."""
        values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
