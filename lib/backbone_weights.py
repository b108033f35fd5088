"""ImageNet weights for FSANet's two encoders.

The spatial encoder takes an official or timm PVT-v2 file (or Res2Net-50 v1b); the
frequency encoder a torchvision ResNet-50 (or -18) or Res2Net-50 v1b file. Its 1-channel
stem has no ImageNet counterpart and is drawn from N(0, 1), as the authors' code does.

Without a local file, training starts from the weights the authors started from, as timm
publishes them on the Hugging Face Hub (:data:`DEFAULT_BACKBONE_WEIGHTS`): fetched into
the HF cache when online, read from it offline (``lib.hub``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from lib.checkpoint import LoadReport, PathLike, _check_keys, read_checkpoint
from lib.keymap import CheckpointError, detect_layout, pvt_v2_to_timm

#: backbone layouts each encoder accepts (by timm model name prefix).
_BACKBONE_LAYOUTS: Dict[str, Tuple[str, ...]] = {
    "pvt_v2": ("pvt_v2_official", "pvt_v2_timm"),
    "res2net": ("res2net50_v1b",),
    "resnet": ("resnet50_torchvision", "resnet18_torchvision"),
}

#: the ImageNet weights each encoder starts from when no local file is given (timm's hub
#: repositories). ``resnet50.tv_in1k`` is torchvision's ``resnet50-0676ba61.pth``, the file the
#: authors' code downloads; ``pvt_v2_b*.in1k`` are the PVT authors' ImageNet weights in timm's
#: key names. Res2Net has none: timm's ``res2net50d.in1k`` could not be checked offline against
#: the official v1b 26w×4s file, so it needs ``--res2net_weights``.
DEFAULT_BACKBONE_WEIGHTS: Dict[str, str] = {
    **{f"pvt_v2_b{i}": f"hf:timm/pvt_v2_b{i}.in1k" for i in range(6)},
    "resnet50": "hf:timm/resnet50.tv_in1k",
    "resnet18": "hf:timm/resnet18.tv_in1k",
}


def _stem_key(encoder: nn.Module) -> str:
    """Name of the first convolution's weight in the encoder body."""
    for name, module in encoder.body.named_modules():
        if isinstance(module, nn.Conv2d):
            return name + ".weight"
    raise RuntimeError("encoder has no convolution")


def load_backbone_weights(
    model: nn.Module,
    path: PathLike,
    part: str,
    generator: Optional[torch.Generator] = None,
) -> LoadReport:
    """Initialise one encoder of an FSANet from an ImageNet backbone file.

    Args:
        model: an FSANet.
        path: ``pvt_v2_b*.pth`` (official or timm keys), the official Res2Net-50 v1b
            file, or torchvision's ResNet-50 file.
        part: ``"spatial"`` or ``"frequency"``.
        generator: RNG for the frequency encoder's stem.

    The frequency encoder takes a 1-channel image, so its first convolution cannot
    come from an RGB file: as the authors do, it is drawn from N(0, 1). Classifier
    weights (``head``/``fc``) are dropped. Everything else is strict.
    """
    model = getattr(model, "module", model)
    if part == "spatial":
        encoder = model.spatial_encoder
    elif part == "frequency":
        encoder = model.frequency_branch.encoder
    else:
        raise ValueError(f"part must be 'spatial' or 'frequency', got {part!r}")
    layout, state_dict, _ = detect_layout(read_checkpoint(path), path)
    family = next(f for f in _BACKBONE_LAYOUTS if encoder.timm_name.startswith(f))
    if layout not in _BACKBONE_LAYOUTS[family]:
        raise CheckpointError(
            f"{path}: a {layout} file, but the {part} encoder is {encoder.timm_name}; "
            f"it needs {' or '.join(_BACKBONE_LAYOUTS[family])} weights"
        )
    if family == "pvt_v2":
        state_dict = pvt_v2_to_timm(state_dict)
    else:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    reinitialised: List[str] = []
    if part == "frequency":
        stem = _stem_key(encoder)
        weight = torch.empty_like(encoder.body.state_dict()[stem])
        state_dict[stem] = weight.normal_(0.0, 1.0, generator=generator)
        reinitialised.append(f"{stem} ~ N(0, 1)")
    _check_keys(encoder.body, state_dict, f"the {part} encoder ({encoder.timm_name})", path)
    encoder.body.load_state_dict(state_dict, strict=True)
    return LoadReport(str(path), layout, len(state_dict), reinitialised=reinitialised)
