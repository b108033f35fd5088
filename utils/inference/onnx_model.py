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

from utils.common.extras import require_extra

PathLike = Union[str, os.PathLike]


class OnnxError(RuntimeError):
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
        options = ort.SessionOptions()
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
        self.config: Dict[str, Any] = json.loads(meta["fsanet_config"]) if "fsanet_config" in meta else {}

    def fixed_size(self) -> Optional[Tuple[int, int]]:
        """(H, W) of a fixed-size file, None when H and W are dynamic."""
        height, width = self.input_shape[2:4]
        return (height, width) if isinstance(height, int) and isinstance(width, int) else None

    def fixed_batch(self) -> Optional[int]:
        return self.input_shape[0] if isinstance(self.input_shape[0], int) else None

    def check_input(self, testsize: int, batch_size: int) -> None:
        """A ValueError, naming the fix, when the file cannot take ``testsize``/``batch_size``."""
        size = self.fixed_size()
        if size is not None and size != (testsize, testsize):
            raise ValueError(
                f"{self.path} was exported for {size[0]}×{size[1]} inputs; run with --testsize {size[0]}"
                if size[0] == size[1]
                else f"{self.path} was exported for {size[0]}×{size[1]} inputs, test.py feeds squares"
            ) from None
        batch = self.fixed_batch()
        if batch is not None and batch_size != batch:
            raise ValueError(f"{self.path} takes batches of {batch}; use --batch_size {batch} or export with --dynamic")

    def forward(self, batch: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """``(P1 logits,)``, or every output of a file exported with ``all_outputs``."""
        array = batch.detach().to("cpu", torch.float32).contiguous().numpy()
        return tuple(torch.from_numpy(out) for out in self.session.run(None, {self.input_name: array}))


__all__ = ["OnnxFSANet"]
