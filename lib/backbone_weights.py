"""ImageNet weights for FSANet's encoders: kept for older imports. The loader is
:func:`lib.weights.load_backbone`; each backbone's accepted layouts and default weights are
entries of the backbone table (:mod:`models.registry`)."""

from typing import Dict

from lib.weights import load_backbone
from models.registry import BACKBONES

#: timm model name -> its default ImageNet weights (derived from the backbone table).
DEFAULT_BACKBONE_WEIGHTS: Dict[str, str] = {
    spec.timm_name: spec.default_weights for spec in BACKBONES.values() if spec.default_weights
}

load_backbone_weights = load_backbone

__all__ = ["DEFAULT_BACKBONE_WEIGHTS", "load_backbone_weights"]
