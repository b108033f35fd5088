"""Moved to :mod:`lib.weights.sources` (weights arguments, the Hub and its cache),
:mod:`lib.weights.writing` (``write_pretrained``) and :mod:`lib.weights.model_card`; kept
for older imports."""

from lib.weights.model_card import CARD_TAGS, LIBRARY_NAME, PAPER, PIPELINE_TAG, model_card, read_results
from lib.weights.sources import (
    CARD_NAME,
    CONFIG_NAME,
    HUB_PREFIX,
    LEGACY_WEIGHTS_NAME,
    WEIGHTS_NAME,
    hub_file,
    parse_hub_id,
    resolve_weights,
)
from lib.weights.writing import write_pretrained

__all__ = [
    "CARD_NAME",
    "CARD_TAGS",
    "CONFIG_NAME",
    "HUB_PREFIX",
    "LEGACY_WEIGHTS_NAME",
    "LIBRARY_NAME",
    "PAPER",
    "PIPELINE_TAG",
    "WEIGHTS_NAME",
    "hub_file",
    "model_card",
    "parse_hub_id",
    "read_results",
    "resolve_weights",
    "write_pretrained",
]
