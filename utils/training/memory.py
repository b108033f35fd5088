"""A memory model of the recipe's training step that holds on any device (``bench/memory.py`` is the CLI).

It answers "does this recipe fit on that GPU?" without the GPU: the step is run on
fake tensors (``torch._subclasses.FakeTensorMode``: shapes, dtypes and devices,
no data, no allocation), on a fake CUDA device by default so that autocast picks
CUDA's lower-precision ops. It counts, in bytes:

- ``parameters``: the model's parameters and buffers (fp32, as AMP keeps them);
- ``gradients``: one per trainable parameter;
- ``optimizer``: AdaXW's state after one step (two tensors per parameter);
- ``activations``: every tensor autograd saves for backward in the forward pass
  and the recipe's loss (``torch.autograd.graph.saved_tensors_hooks``), each
  storage once, parameters left out (autocast's low-precision weight copies are
  counted: they stay alive until backward). With gradient checkpointing, what a
  checkpointed part saves is dropped and its inputs are counted instead.

``total`` is their sum: the steady state at the end of the forward pass, before
the allocator's fragmentation, cuDNN workspaces, the transient buffers of the
backward pass and the CUDA context (about 0.5–1 GB), which docs/training.md's table
leaves as headroom.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, Optional, Sequence
from unittest import mock

import torch
import torch.utils.checkpoint
from torch import nn

from lib.FSANet import FSANet
from utils.common.amp import AMP_DTYPES
from utils.common.errors import ConfigError
from utils.training.adaxw import AdaXW
from utils.training.losses import deep_supervision_loss


@dataclass
class MemoryEstimate:
    """Bytes of one training step (see the module docstring); the options that produced them."""

    parameters_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    total_bytes: int
    size: int
    batch: int
    amp: str
    grad_checkpoint: Sequence[str]
    device: str

    def as_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["grad_checkpoint"] = list(self.grad_checkpoint)
        return out


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


class SavedTensorCounter:
    """Bytes of the distinct storages autograd saves for backward while active.

    Tensors whose storage is in ``exclude`` (the parameters) are not counted; the
    tensors are kept referenced so that a storage's identity is not reused.
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()) -> None:
        self.excluded = {_storage_key(t) for t in exclude}
        self.storages: Dict[int, int] = {}
        self._alive: list = []

    def add(self, tensor: torch.Tensor) -> None:
        key = _storage_key(tensor)
        if key not in self.excluded and key not in self.storages:
            self.storages[key] = tensor.untyped_storage().nbytes()
            self._alive.append(tensor)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.add(tensor)
        return tensor

    @contextlib.contextmanager
    def counting(self) -> Iterator["SavedTensorCounter"]:
        """Count saved tensors, and the inputs of checkpointed parts (which checkpointing keeps)."""
        real_checkpoint = torch.utils.checkpoint.checkpoint

        def counted_checkpoint(function, *args, **kwargs):
            for arg in args:
                if isinstance(arg, torch.Tensor):
                    self.add(arg)
            kwargs["preserve_rng_state"] = False  # no RNG state of a device that may be fake
            return real_checkpoint(function, *args, **kwargs)

        with mock.patch.object(torch.utils.checkpoint, "checkpoint", counted_checkpoint):
            with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor):
                yield self


def _autocast(device_type: str, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    if device_type == "cuda" and not torch.cuda.is_available():
        # torch.autocast turns itself off without a GPU; the fake CUDA tensors still take CUDA's autocast rules
        with (
            mock.patch("torch.cuda.is_available", return_value=True),
            mock.patch("torch.cuda.is_bf16_supported", return_value=True),
        ):
            return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device_type, dtype=dtype)


def count_step_activations(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, amp_dtype: Optional[torch.dtype] = None
) -> int:
    """Bytes saved for backward by one forward pass of ``model`` and the recipe's loss."""
    counter = SavedTensorCounter(exclude=list(model.parameters()))
    with counter.counting(), _autocast(images.device.type, amp_dtype):
        outputs = model(images)
        deep_supervision_loss(outputs[:4], masks)
    return counter.bytes


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def estimate_training_memory(
    model_factory,
    size: int,
    batch: int,
    amp: str = "none",
    grad_checkpoint: Sequence[str] = (),
    device: str = "cuda",
) -> MemoryEstimate:
    """The memory of one recipe step at ``size``² and ``batch`` images, on fake tensors.

    ``model_factory()`` builds the FSANet (on CPU; it is converted to fake tensors
    on ``device``). ``grad_checkpoint`` names the parts to checkpoint
    (:data:`lib.FSANet.CHECKPOINT_PARTS`).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    if amp not in AMP_DTYPES:
        raise ConfigError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
    with torch.device("meta"):
        model: FSANet = model_factory()
    model.frequency_branch.high_pass.radius.requires_grad_(False)  # as train.py does
    if grad_checkpoint:
        model.set_grad_checkpointing(True, parts=grad_checkpoint)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device=device)
        model.train()
        images = torch.empty(batch, 3, size, size, device=device)
        masks = torch.empty(batch, 1, size, size, device=device)
        activations = count_step_activations(model, images, masks, AMP_DTYPES[amp])
        trainable = [p for p in model.parameters() if p.requires_grad]
        for param in trainable:
            param.grad = torch.zeros_like(param)
        optimizer = AdaXW(trainable)
        optimizer.step()
        optimizer_bytes = _nbytes(
            t for state in optimizer.state.values() for t in state.values() if isinstance(t, torch.Tensor)
        )
    parameters = _nbytes(model.parameters()) + _nbytes(model.buffers())
    gradients = _nbytes(trainable)
    return MemoryEstimate(
        parameters,
        gradients,
        optimizer_bytes,
        activations,
        parameters + gradients + optimizer_bytes + activations,
        size,
        batch,
        amp,
        tuple(grad_checkpoint),
        device,
    )
