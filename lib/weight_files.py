"""Moved to :mod:`lib.weights.kinds` (a file's kind by its bytes), :mod:`lib.weights.torch_file`
(the CRC-32 check) and :mod:`lib.weights.safetensors_file` (headers); kept for older imports."""

from lib.weights.kinds import KIND_TEXT, describe, file_kind
from lib.weights.safetensors_file import SAFETENSORS_DTYPES, safetensors_header
from lib.weights.torch_file import check_archive

__all__ = ["KIND_TEXT", "SAFETENSORS_DTYPES", "check_archive", "describe", "file_kind", "safetensors_header"]
