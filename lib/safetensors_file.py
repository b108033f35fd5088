"""Moved to :mod:`lib.weights.safetensors_file`; kept for older imports."""

from lib.weights.safetensors_file import SUFFIX, is_safetensors, read_safetensors, save_safetensors

__all__ = ["SUFFIX", "is_safetensors", "read_safetensors", "save_safetensors"]
