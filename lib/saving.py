"""Moved to :mod:`lib.weights.writing`; kept for older imports."""

from lib.weights.writing import make_checkpoint, save_checkpoint

__all__ = ["make_checkpoint", "save_checkpoint"]
