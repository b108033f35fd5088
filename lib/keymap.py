"""Moved to :mod:`lib.weights.keymap` (every key mapping and layout); kept for older imports."""

from lib.weights.errors import CheckpointError
from lib.weights.keymap import (
    AUTHORS_KEY_MAP,
    AUTHORS_UNUSED,
    FORMAT_NAME,
    FORMAT_VERSION,
    authors_optimizer_to_fsanet,
    authors_to_fsanet,
    detect_layout,
    pvt_v2_to_timm,
    strip_module_prefix,
)

__all__ = [
    "AUTHORS_KEY_MAP",
    "AUTHORS_UNUSED",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointError",
    "authors_optimizer_to_fsanet",
    "authors_to_fsanet",
    "detect_layout",
    "pvt_v2_to_timm",
    "strip_module_prefix",
]
