"""FSANet: frequency- and scale-aware network for dichotomous image segmentation
(Jiang et al., IEEE TNNLS 2024).

    spatial encoder (PVT-v2-b2) ─┐
                                 ├─ MF ─ CSFM ─ HCF ×4 ─ SFF ×3 (shared) ─ heads ─ P1..P4
    frequency branch (ResNet-50) ┘

This module is the network only: the blocks' composition and the forward pass, no file
code (an import-linter contract keeps it so). :class:`lib.FSANet.FSANet` adds the Hub's
``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` on top; weight files are read
and written by :mod:`lib.weights`.
"""

from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Sequence, Type, TypeVar

import torch
import torch.utils.checkpoint
from torch import nn

from lib.configs import CHECKPOINT_PARTS, CONFIGS, INPUT_MULTIPLE, NON_ARCHITECTURE_KEYS, full_config  # noqa: F401
from lib.context_fusion import HierarchicalContextFusion
from lib.feature_fusion import SelectiveFeatureFusion
from lib.frequency import FrequencyBranch
from lib.head import PredictionHead
from lib.modality_fusion import MultiModalityFusion
from lib.scale_fusion import CollaborativeScaleFusion
from models.backbones import build_spatial_encoder
from utils.common.errors import ConfigError

#: the paper's configuration (``lib.configs``); every key is a constructor argument of :class:`FSANet`.
DEFAULT_CONFIG: Dict[str, Any] = CONFIGS["fsanet"]


class FSANetOutput(NamedTuple):
    """FSANet's outputs, each B×1×H×W at the input's size: the four side outputs P1 (the
    prediction) to P4, logits before the sigmoid, and the high-pass frequency map. A tuple,
    so ``p1, p2, p3, p4, freq = model(x)`` and ``model(x)[0]`` work as before."""

    p1: torch.Tensor
    p2: torch.Tensor
    p3: torch.Tensor
    p4: torch.Tensor
    frequency_map: torch.Tensor


def check_input(x: torch.Tensor) -> None:
    """Raise a ValueError unless ``x`` is B×3×H×W with H, W multiples of 32."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ConfigError(f"FSANet expects a B×3×H×W RGB batch, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE or height == 0 or width == 0:
        fit = [max(INPUT_MULTIPLE, round(s / INPUT_MULTIPLE) * INPUT_MULTIPLE) for s in (height, width)]
        raise ConfigError(
            f"FSANet needs H and W that are multiples of {INPUT_MULTIPLE}, got {height}×{width}; "
            f"resize the input, e.g. to {fit[0]}×{fit[1]}"
        )


class FSANetNetwork(nn.Module):
    """FSANet as the authors' released model computes it (:class:`lib.FSANet.FSANet` is this
    network plus the Hub's methods: use that one).

    Args:
        backbone: spatial encoder, a key of ``models.backbones.SPATIAL_BACKBONES``
            (``pvt_v2_b0``..``pvt_v2_b5``, ``res2net50``).
        freq_backbone: frequency encoder, ``resnet50`` or ``res2net50``.
        channels: CSFM widths at strides 4, 8, 16, 32; encoders of other widths
            get 1×1 projections.
        decoder_channels: width of HCF, SFF and the heads.
        radius: initial high-pass radius (the authors' 100).
        drop_path_rate: stochastic depth of the spatial encoder, active in training
            only. 0.1 is what ``pvt_v2_b2`` in the authors' ``lib/pvtv2.py`` sets.

    ``forward(x: B×3×H×W ImageNet-normalised, H, W multiples of 32)
    -> (P1, P2, P3, P4, frequency_map)``, each B×1×H×W; P1..P4 are logits, P1 is
    the prediction, the frequency map is the high-pass image fed to the frequency
    encoder.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_CONFIG["backbone"],
        freq_backbone: str = DEFAULT_CONFIG["freq_backbone"],
        channels: Sequence[int] = DEFAULT_CONFIG["channels"],
        decoder_channels: int = DEFAULT_CONFIG["decoder_channels"],
        radius: float = DEFAULT_CONFIG["radius"],
        drop_path_rate: float = DEFAULT_CONFIG["drop_path_rate"],
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        self.config: Dict[str, Any] = {
            "backbone": backbone,
            "freq_backbone": freq_backbone,
            "channels": list(channels),
            "decoder_channels": int(decoder_channels),
            "radius": float(radius),
            "drop_path_rate": float(drop_path_rate),
        }
        self.spatial_encoder = build_spatial_encoder(backbone, channels, drop_path_rate)
        self.frequency_branch = FrequencyBranch(freq_backbone, radius)
        self.modality_fusion = MultiModalityFusion(self.frequency_branch.out_channels, channels)
        self.scale_fusion = CollaborativeScaleFusion(channels)
        level_channels = (channels[0], *self.scale_fusion.out_channels)
        self.context_fusion = nn.ModuleList(HierarchicalContextFusion(c, decoder_channels) for c in level_channels)
        self.feature_fusion = SelectiveFeatureFusion(decoder_channels)
        self.head = PredictionHead(decoder_channels)
        self.checkpointed: frozenset = frozenset()  # decoder parts recomputed in backward

    def set_grad_checkpointing(self, enable: bool = True, parts: Sequence[str] = ("encoder",)) -> None:
        """Recompute the activations of ``parts`` (:data:`CHECKPOINT_PARTS`) during backward,
        to save memory; ``enable=False`` turns all of them off. Weights and keys are unchanged."""
        unknown = set(parts) - set(CHECKPOINT_PARTS)
        if unknown:
            raise ConfigError(f"unknown checkpoint parts {sorted(unknown)}; choose from {', '.join(CHECKPOINT_PARTS)}")
        encoder = enable and "encoder" in parts
        self.spatial_encoder.set_grad_checkpointing(encoder)
        self.frequency_branch.encoder.set_grad_checkpointing(encoder)
        self.checkpointed = frozenset(p for p in parts if p != "encoder") if enable else frozenset()

    def _run(self, part: str, module: nn.Module, *inputs: torch.Tensor):
        if part in self.checkpointed and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(module, *inputs, use_reentrant=False)
        return module(*inputs)

    def forward(self, x: torch.Tensor) -> FSANetOutput:
        check_input(x)
        spatial = self.spatial_encoder(x)
        frequency_map, frequency = self.frequency_branch(x)
        f1, f2, f3, f4 = self._run("mf", self.modality_fusion, spatial, frequency)
        x21, x32, x43 = self._run("csfm", self.scale_fusion, f1, f2, f3, f4)
        h1, h2, h3, h4 = (self._run("hcf", hcf, t) for hcf, t in zip(self.context_fusion, (f1, x21, x32, x43)))
        o3 = self._run("sff", self.feature_fusion, h3, h4)
        o2 = self._run("sff", self.feature_fusion, h2, o3)
        o1 = self._run("sff", self.feature_fusion, h1, o2)
        p1, p2, p3, p4 = self.head([o1, o2, o3, h4])
        return FSANetOutput(p1, p2, p3, p4, frequency_map)


Network = TypeVar("Network", bound=nn.Module)


def build_network(
    config: Optional[Dict[str, Any]] = None, network_class: Type[Network] = FSANetNetwork, **overrides: Any
) -> Network:
    """``network_class`` from a config dict (as stored in the project's checkpoints) plus overrides."""
    return network_class(**full_config(config, **overrides))
