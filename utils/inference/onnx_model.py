"""An exported FSANet (``python -m utils.deploy.export``) run by onnxruntime behind FSANet's call
signature, so test.py's prediction loop (``utils.inference.predict``) runs it unchanged.

Needs the ``export`` extra (``pip install -e .[export]``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from lib.weights.kinds import describe, file_kind
from utils.common.errors import ConfigError, FSANetError
from utils.common.extras import require_extra

PathLike = Union[str, os.PathLike]


class OnnxError(FSANetError):
    """An ONNX file that cannot be run here; the message says what to do."""


class OnnxFSANet(nn.Module):
    """``OnnxFSANet(path)(batch) -> (P1 logits,)`` like ``FSANet(batch)[0]``, computed by
    onnxruntime on the CPU (or CUDA with ``device="cuda"`` and onnxruntime-gpu).

    ``input_shape`` is the file's input shape: ints where fixed, names where dynamic.
    """

    def __init__(self, path: PathLike, device: str = "cpu", threads: Optional[int] = None) -> None:
        super().__init__()
        require_extra("export", "--onnx", "onnxruntime")
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise OnnxError("--device cuda with --onnx needs onnxruntime-gpu; this onnxruntime runs on the CPU only")
            providers.insert(0, "CUDAExecutionProvider")
        kind = file_kind(path) if os.path.isfile(path) else "missing"
        if kind == "missing":
            raise OnnxError(f"{path}: no such file; export one with python -m utils.deploy.export")
        if kind in ("pytorch", "pytorch_legacy", "safetensors"):
            raise OnnxError(f"{path}: is {describe(kind)}, not an ONNX model; e.g. test.py --pth_path {path}")
        options = ort.SessionOptions()
        # every graph optimisation (constant folding, conv+BN/activation fusion, layout changes):
        # onnxruntime's default, set here so that it stays so; maps within one grey level of PyTorch's
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        self.path = str(path)
        try:
            self.session = ort.InferenceSession(self.path, options, providers=providers)
        except Exception as error:  # noqa: BLE001  (onnxruntime raises its own exception types)
            raise OnnxError(
                f"{path}: onnxruntime cannot load it ({type(error).__name__}: {str(error)[:200]}); "
                "export it again with python -m utils.deploy.export"
            ) from None
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.input_shape: List[Any] = list(inputs[0].shape)
        meta = self.session.get_modelmeta().custom_metadata_map
        output_shape = list(self.session.get_outputs()[0].shape)
        if "fsanet_config" not in meta or len(self.input_shape) != 4 or len(output_shape) != 4 or output_shape[1] != 1:
            raise OnnxError(
                f"{path}: not an FSANet export (input {self.input_shape}, first output {output_shape}, "
                f"{'with' if 'fsanet_config' in meta else 'no'} FSANet metadata; an FSANet export takes B×3×H×W "
                "and gives B×1×H×W logits); export FSANet with python -m utils.deploy.export"
            )
        try:
            self.config: Dict[str, Any] = json.loads(meta["fsanet_config"])
        except ValueError:
            raise OnnxError(f"{path}: damaged FSANet metadata; export it again") from None

    def fixed_size(self) -> Optional[Tuple[int, int]]:
        """(H, W) of a fixed-size file, None when H and W are dynamic."""
        height, width = self.input_shape[2:4]
        return (height, width) if isinstance(height, int) and isinstance(width, int) else None

    def fixed_batch(self) -> Optional[int]:
        return self.input_shape[0] if isinstance(self.input_shape[0], int) else None

    def check_input(self, testsize: int, batch_size: int, keep_aspect: bool = False) -> None:
        """A ValueError, naming the fix, when the file cannot take ``testsize``/``batch_size``
        (or, with ``keep_aspect``, inputs that are not square)."""
        size = self.fixed_size()
        if keep_aspect and size is not None:
            raise ConfigError(
                f"{self.path} was exported for {size[0]}×{size[1]} inputs only; --keep_aspect needs an export "
                "made with --dynamic (python -m utils.deploy.export ... --dynamic)"
            )
        if size is not None and size != (testsize, testsize):
            raise ConfigError(
                f"{self.path} was exported for {size[0]}×{size[1]} inputs; run with --testsize {size[0]}"
                if size[0] == size[1]
                else f"{self.path} was exported for {size[0]}×{size[1]} inputs, test.py feeds squares"
            ) from None
        batch = self.fixed_batch()
        if batch is not None and batch_size != batch:
            raise ConfigError(f"{self.path} takes batches of {batch}; use --batch_size {batch} or export with --dynamic")

    def forward(self, batch: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(P1 logits,)``, or every output of a file exported with ``all_outputs``."""
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return tuple(torch.from_numpy(out) for out in self.session.run(None, {self.input_name: array}))


def is_fsanet_onnx(path: PathLike) -> bool:
    """Whether ``path`` is an ONNX model carrying this project's FSANet metadata (an export of
    ``python -m utils.deploy.export``), read without its weights."""
    if not os.path.isfile(path) or file_kind(path) != "onnx":
        return False
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001  (a damaged protobuf raises DecodeError and others)
        return False
    return any(prop.key == "fsanet_config" for prop in model.metadata_props)


__all__ = ["OnnxFSANet", "is_fsanet_onnx"]
