"""The encoders FSANet can be built with, by name: views of the backbone table
(:mod:`models.registry`, the one owner), kept for the older imports."""

from models.registry import FREQUENCY_BACKBONES, SPATIAL_BACKBONES

__all__ = ["FREQUENCY_BACKBONES", "SPATIAL_BACKBONES"]
