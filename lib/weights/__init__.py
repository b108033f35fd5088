"""FSANet's weight files: one reader, one strict loader, one writer.

* :func:`open_weights` (:mod:`lib.weights.reader`) turns a weights argument (a local
  ``.pth`` / ``.safetensors`` file, a ``save_pretrained`` folder or ``hf:owner/name[@rev]``)
  into a :class:`WeightFile`, running every check once: hub resolution, the file's kind by
  its bytes, the safetensors header, the ``weights_only`` load with the archive's CRC-32s
  (one pass over a memory map), layout detection and key mapping, config validation, the
  shape check on the meta device, finiteness.
* :func:`build_model`, :func:`load_into` and :func:`load_backbone` (:mod:`lib.weights.loading`)
  load a record strictly; :func:`lib.weights.fit.check_fit` is the one shape check.
* :func:`save_checkpoint`, :func:`write_pretrained` (:mod:`lib.weights.writing`) and
  :func:`save_safetensors` write; ``python -m lib.convert`` converts and checks files.

Every entry point goes through here: test.py, app.py, train.py's ``--pre_model`` /
``--resume`` and weight flags, the ONNX export, ``lib.convert``, ``FSANet.from_pretrained``
and torch.hub. The network (:mod:`lib.network` and its blocks) imports none of it.
"""

from lib.weights.errors import CheckpointError
from lib.weights.keymap import FORMAT_NAME, FORMAT_VERSION
from lib.weights.loading import LoadReport, build_model, load_backbone, load_into
from lib.weights.reader import WeightFile, open_weights, read_checkpoint
from lib.weights.safetensors_file import save_safetensors
from lib.weights.sources import resolve_weights
from lib.weights.writing import make_checkpoint, save_checkpoint, write_pretrained

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "LoadReport",
    "WeightFile",
    "build_model",
    "load_backbone",
    "load_into",
    "make_checkpoint",
    "open_weights",
    "read_checkpoint",
    "resolve_weights",
    "save_checkpoint",
    "save_safetensors",
    "write_pretrained",
]
