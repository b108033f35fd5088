"""torch.hub entry points: ``torch.hub.load("<owner>/<repo>", "fsanet", weights=...)``, or
``torch.hub.load(checkout, "fsanet", source="local", weights=...)`` from a clone.

``weights``: ``None`` (random weights, no file access), a local file in any layout the
loader takes, a ``save_pretrained`` folder, or a hub id ``hf:owner/name[@revision]``.
The model comes back in eval mode.
"""

dependencies = ["torch", "timm", "huggingface_hub"]


def _build(config_name: str, weights=None, **overrides):
    from lib.checkpoint import build_from_checkpoint
    from lib.configs import config_name_of, get_config, same_architecture
    from lib.FSANet import build_fsanet
    from utils.common.errors import ConfigError

    if weights is None:
        return build_fsanet({**get_config(config_name), **overrides}).eval()
    model, _ = build_from_checkpoint(weights, **overrides)
    if not same_architecture(model.config, {**get_config(config_name), **overrides}):
        other = config_name_of(model.config)
        load = f"torch.hub.load(..., {other!r}, weights=...)" if other else "lib.checkpoint.build_from_checkpoint(weights)"
        raise ConfigError(
            f"weights {weights}: a model of {'the ' + repr(other) + ' configuration' if other else 'another architecture'}, "
            f"not {config_name!r} (hubconf.{config_name}); load them with {load}"
        )
    return model


def fsanet(weights=None, **overrides):
    """The paper's FSANet (PVT-v2-b2, ResNet-50 frequency encoder); with ``weights``, the
    architecture the file records (the paper's for the authors' FSANet-100.pth)."""
    return _build("fsanet", weights, **overrides)


def fsanet_small(weights=None, **overrides):
    """The small configuration (PVT-v2-b0, ResNet-18; 18 M parameters) for CPUs and tests."""
    return _build("fsanet_small", weights, **overrides)
