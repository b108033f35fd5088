"""Where a weights argument points: a local file, a ``save_pretrained`` folder, or the
Hugging Face Hub and its local cache.

A weights argument (``--pth_path``, ``--pre_model``, ``app.py --pth_path``, the export's
``--pth_path``) is one of

- a local file (``.pth`` in any layout the loader takes, or ``.safetensors``);
- a local folder written by ``FSANet.save_pretrained`` (``model.safetensors`` + ``config.json``);
- a hub id ``hf:owner/name`` or ``hf:owner/name@revision``: fetched into the standard HF
  cache when online; with ``HF_HUB_OFFLINE=1`` or no network the cached copy is used.

A pretrained folder holds ``model.safetensors`` (this project's key names, the config in its
metadata, as ``python -m lib.convert`` writes), ``config.json`` (the same config: the
constructor arguments of :class:`lib.FSANet.FSANet`) and ``README.md`` (a Hub model card).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Tuple, Union

from lib.weights.errors import CheckpointError

PathLike = Union[str, os.PathLike]

HUB_PREFIX = "hf:"
WEIGHTS_NAME, CONFIG_NAME, CARD_NAME = "model.safetensors", "config.json", "README.md"
#: a repository without model.safetensors: its torch.save state dict (read with weights_only=True)
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"


def parse_hub_id(spec: PathLike) -> Optional[Tuple[str, Optional[str]]]:
    """``(repo_id, revision or None)`` for ``hf:owner/name[@revision]``; ``None`` for a local path."""
    text = str(spec)
    if not text.startswith(HUB_PREFIX):
        return None
    repo_id, _, revision = text[len(HUB_PREFIX) :].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CheckpointError(f"{text}: a hub id is hf:owner/name or hf:owner/name@revision")
    return repo_id, revision or None


def download_hint(repo_id: str, revision: Optional[str]) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f"hf download {repo_id}{rev}"


def _hub_reachable(endpoint: str) -> bool:
    """Whether the Hub's host name resolves (no network: it fails at once, where a download
    would retry for a minute)."""
    import socket
    from urllib.parse import urlparse

    try:
        socket.getaddrinfo(urlparse(endpoint).hostname or "", 443)
    except OSError:
        return False
    return True


def hub_file(repo_id: str, filename: str, revision: Optional[str] = None, **kwargs: Any) -> Path:
    """A file of a Hub model repository: from the network when it answers, else the local
    cache; a :class:`CheckpointError` in one line saying what to download and where."""
    from huggingface_hub import constants, hf_hub_download

    if constants.HF_HUB_OFFLINE or not _hub_reachable(constants.ENDPOINT):
        kwargs["local_files_only"] = True  # the cache only: no retries against a network that is not there
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, **kwargs))
    except Exception as error:  # noqa: BLE001  (offline, not cached, no such repository or file, HTTP)
        cache = kwargs.get("cache_dir") or constants.HF_HUB_CACHE
        offline = (
            " (HF_HUB_OFFLINE is set)"
            if constants.HF_HUB_OFFLINE
            else " (the Hub cannot be reached)"
            if kwargs.get("local_files_only")
            else ""
        )
        raise CheckpointError(
            f"{HUB_PREFIX}{repo_id}{'@' + revision if revision else ''}: {filename} is not in the Hugging Face cache "
            f"{cache} and could not be downloaded{offline} ({type(error).__name__}); on a machine that reaches "
            f"the Hub run `{download_hint(repo_id, revision)}` and copy its cache folder to {cache} "
            "(or set HF_HUB_CACHE), or give a local file"
        ) from None


def resolve_weights(spec: PathLike, **hub_options: Any) -> Path:
    """The local file a weights argument names (see the module docstring); ``hub_options``
    go to ``hf_hub_download`` (``cache_dir``, ``force_download``, ``local_files_only``, ``token``)."""
    hub = parse_hub_id(spec)
    if hub is not None:
        try:
            return hub_file(hub[0], WEIGHTS_NAME, hub[1], **hub_options)
        except CheckpointError as missing:
            try:  # a repository without safetensors: its torch.save state dict (read with weights_only=True)
                return hub_file(hub[0], LEGACY_WEIGHTS_NAME, hub[1], **hub_options)
            except CheckpointError:
                raise missing from None
    path = Path(spec)
    if path.is_dir() and (path / WEIGHTS_NAME).is_file():
        return path / WEIGHTS_NAME
    return path


def locate(spec: PathLike, **hub_options: Any) -> Path:
    """:func:`resolve_weights`, refusing a folder without weights or a missing file by name."""
    path = resolve_weights(spec, **hub_options)
    if path.is_dir():
        files = sorted(p.name for p in [*path.glob("*.pth"), *path.glob("*.safetensors")])
        hint = f"checkpoints in it: {', '.join(files[:8])}" if files else "it holds no .pth file"
        raise CheckpointError(
            f"{path}: a folder, not a checkpoint file; give a file, e.g. {path / 'best.pth'} "
            f"or {path / 'latest.pth'} ({hint})"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; check the path (pretrained files go in models/)")
    return path
