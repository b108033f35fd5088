"""The model card of a pretrained folder (its ``README.md``) and the Hub metadata of this
project's model repositories; ``eval.py``'s results.json becomes its table."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from lib.weights.errors import CheckpointError

PathLike = Union[str, os.PathLike]

#: the Hub's metadata of this project's model repositories
CARD_TAGS = ("dichotomous-image-segmentation", "image-segmentation", "fsanet", "pytorch")
LIBRARY_NAME, PIPELINE_TAG = "fsanet", "image-segmentation"
PAPER = "High-Precision Dichotomous Image Segmentation with Frequency and Scale Awareness (IEEE TNNLS 2024)"


def _card_columns(results: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """``{table key: {"digits", "card"}}`` of the keys the card shows: those results.json's
    ``metrics`` entry (written by eval.py from its metric table) gives a card id; a results
    file without that entry shows every key it holds, with 3 decimals."""
    described = results.get("metrics")
    if isinstance(described, Mapping) and described:
        return {k: dict(v) for k, v in described.items() if isinstance(v, Mapping) and v.get("card")}
    keys: Dict[str, Dict[str, Any]] = {}
    for per_set in results.get("results", {}).values():
        for values in per_set.values():
            keys.update({k: {"digits": 3, "card": None} for k in values if k != "num"})
    return keys


def _front_matter(results: Optional[Mapping[str, Any]]) -> str:
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
    ids = [info["card"] for info in _card_columns(results).values() if info.get("card")] if results else []
    if ids:
        lines += ["metrics:", *[f"- {m}" for m in ids]]
    return "\n".join(lines + ["---"])


def _results_table(results: Mapping[str, Any]) -> str:
    """eval.py's results.json (``{"results": {method: {set: {metric: value}}}, "metrics", "provenance"}``)
    as Markdown, in the columns and decimals its ``metrics`` entry gives."""
    table = results.get("results", {})
    shown = _card_columns(results)
    keys = list(shown)
    lines = ["| method | set | num | " + " | ".join(keys) + " |", "|" + "---|" * (3 + len(keys))]
    for method, per_set in table.items():
        for set_name, values in per_set.items():
            cells = [f"{values[k]:.{int(shown[k].get('digits', 3))}f}" if k in values else "–" for k in keys]
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
        _front_matter(results),
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
