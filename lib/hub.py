"""FSANet weights where the field keeps them: the Hugging Face Hub and its local cache.

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

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from lib.keymap import CheckpointError

PathLike = Union[str, os.PathLike]

HUB_PREFIX = "hf:"
WEIGHTS_NAME, CONFIG_NAME, CARD_NAME = "model.safetensors", "config.json", "README.md"
#: a repository without model.safetensors: its torch.save state dict (read with weights_only=True)
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"
#: the Hub's metadata of this project's model repositories
CARD_TAGS = ("dichotomous-image-segmentation", "image-segmentation", "fsanet", "pytorch")
LIBRARY_NAME, PIPELINE_TAG = "fsanet", "image-segmentation"
PAPER = "High-Precision Dichotomous Image Segmentation with Frequency and Scale Awareness (IEEE TNNLS 2024)"


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


def resolve_weights(spec: PathLike) -> Path:
    """The local file a weights argument names (see the module docstring)."""
    hub = parse_hub_id(spec)
    if hub is not None:
        try:
            return hub_file(hub[0], WEIGHTS_NAME, hub[1])
        except CheckpointError as missing:
            try:  # a repository without safetensors: its torch.save state dict (read with weights_only=True)
                return hub_file(hub[0], LEGACY_WEIGHTS_NAME, hub[1])
            except CheckpointError:
                raise missing from None
    path = Path(spec)
    if path.is_dir() and (path / WEIGHTS_NAME).is_file():
        return path / WEIGHTS_NAME
    return path


# ----------------------------------------------------------------------------- writing a folder


def write_pretrained(folder: PathLike, model: Any, epoch: Optional[int] = None, source: str = "") -> Path:
    """``model.safetensors`` and ``config.json`` of ``model`` into ``folder`` (the model card:
    :func:`model_card`); the weights are read back and compared bit for bit."""
    import torch

    from lib.safetensors_file import read_safetensors, save_safetensors
    from utils.common.fileio import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = model.state_dict()
    save_safetensors(folder / WEIGHTS_NAME, state_dict, model.config, epoch, source=source or "save_pretrained")
    atomic_write_text(folder / CONFIG_NAME, json.dumps(model.config, indent=2, sort_keys=True) + "\n")
    written = read_safetensors(folder / WEIGHTS_NAME)["model"]
    if set(written) != set(state_dict) or any(not torch.equal(written[k], v) for k, v in state_dict.items()):
        raise OSError(f"{folder / WEIGHTS_NAME}: read back differs from the model; the disk may be faulty")
    return folder


# ----------------------------------------------------------------------------- the model card


def _front_matter(metrics: bool) -> str:
    lines = [
        "---",
        f"library_name: {LIBRARY_NAME}",
        f"pipeline_tag: {PIPELINE_TAG}",
        "license: other",
        "license_name: same-as-the-authors-release",
        "tags:",
        *[f"- {tag}" for tag in CARD_TAGS],
        "datasets:",
        "- DIS5K",
    ]
    if metrics:
        lines += [
            "metrics:",
            *[f"- {m}" for m in ("max-f-measure", "weighted-f-measure", "mae", "s-measure", "e-measure", "hce")],
        ]
    return "\n".join(lines + ["---"])


def _cell(key: str, values: Mapping[str, Any]) -> str:
    if key not in values:
        return "–"
    return f"{values[key]:.0f}" if key == "HCE" else f"{values[key]:.3f}"


def _results_table(results: Mapping[str, Any]) -> str:
    """eval.py's results.json (``{"results": {method: {set: {metric: value}}}, "provenance"}``) as Markdown."""
    table = results.get("results", {})
    keys = ["maxFm", "wFm", "MAE", "Sm", "meanEm", "HCE"]
    lines = ["| method | set | num | " + " | ".join(keys) + " |", "|" + "---|" * (3 + len(keys))]
    for method, per_set in table.items():
        for set_name, values in per_set.items():
            cells = [
                f"{values[k]:.0f}" if k == "HCE" and k in values else f"{values[k]:.3f}" if k in values else "–"
                for k in keys
            ]
            lines.append(f"| {method} | {set_name} | {values.get('num', '')} | " + " | ".join(cells) + " |")
    info = results.get("provenance") or {}
    notes = [info.get("hce"), info.get("overall")]
    versions = info.get("versions") or {}
    if versions:
        notes.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    return "\n".join(lines) + ("\n\n" + ". ".join(n for n in notes if n) + "." if any(notes) else "")


def model_card(config: Mapping[str, Any], parameters: int, results: Optional[Mapping[str, Any]] = None) -> str:
    """The README.md of a pretrained folder: a Hub model card (YAML front matter first)."""
    config_text = json.dumps(dict(config), indent=2, sort_keys=True)
    card = [
        _front_matter(results is not None),
        "",
        "# FSANet",
        "",
        f'FSANet, "{PAPER}" (Jiang, Cheng, Wu, Timofte et al.), for dichotomous image segmentation: one object',
        "cut out of a high-resolution photo with its fine details. PVT-v2 spatial encoder, a high-pass frequency",
        "branch with a ResNet encoder, multi-modality fusion (MF), collaborative scale fusion (CSFM),",
        "hierarchical context fusion (HCF) and selective feature fusion (SFF).",
        "",
        f"- parameters: {parameters:,}",
        "- weights: `model.safetensors` (this implementation's key names; the config is in its metadata)",
        "",
        "Config (`config.json`, the constructor arguments of `lib.FSANet.FSANet`):",
        "",
        "```json",
        config_text,
        "```",
        "",
        "## Use",
        "",
        "```bash",
        "python test.py --pth_path hf:OWNER/NAME --input my_photos/ --save_path results/photos",
        "python app.py --pth_path hf:OWNER/NAME     # the web app",
        "```",
        "",
        "```python",
        "from lib.FSANet import FSANet",
        "",
        'model = FSANet.from_pretrained("OWNER/NAME").eval()  # or a local folder written by save_pretrained',
        "```",
        "",
        "Input: ImageNet-normalised RGB, sides multiples of 32 (the authors test at 992×992); output P1 logits,",
        "post-processed as the authors do (bilinear to the image size, sigmoid, min-max, 8-bit).",
        "",
    ]
    if results is not None:
        card += ["## Evaluation (eval.py)", "", _results_table(results), ""]
    card += [
        "## Faithfulness",
        "",
        "The defaults reproduce the authors' code, quirks included: the BCE term is the plain mean (their",
        "`reduce='none'` call), the last epoch of the poly schedule runs at lr 0, and their weight decay is a",
        "float32 no-op at the default lr. The paper's own DIS5K table is the reference for its numbers.",
        "",
        "## Citation",
        "",
        "```bibtex",
        "@article{jiang2024fsanet,",
        "  title   = {High-Precision Dichotomous Image Segmentation with Frequency and Scale Awareness},",
        "  author  = {Jiang, Qiuping and Cheng, Jinguang and Wu, Zongwei and others},",
        "  journal = {IEEE Transactions on Neural Networks and Learning Systems},",
        "  year    = {2024}",
        "}",
        "```",
        "",
    ]
    return "\n".join(card)


def read_results(path: Optional[PathLike]) -> Optional[Dict[str, Any]]:
    """eval.py's results.json, or ``None``; a file that is not one is refused by name."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a results.json of eval.py ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise CheckpointError(f"{path}: not a results.json of eval.py (no 'results' table)")
    return data
