"""The error of the weights package."""

from __future__ import annotations

from utils.common.errors import FSANetError


class CheckpointError(FSANetError):
    """A weight file that cannot be used, with a message that names the file and the fix."""


__all__ = ["CheckpointError"]
