"""FSANet (Jiang et al., IEEE TNNLS 2024): the network of :mod:`lib.network` with the
Hugging Face Hub's ``from_pretrained`` / ``save_pretrained`` / ``push_to_hub``
(huggingface_hub's mixin, the field's convention).

``FSANet()`` builds the paper's configuration with random weights and no file access.
The Hub methods hold no file code: they hand over to the one reader and writer of
:mod:`lib.weights` (``open_weights`` / ``write_pretrained``). Other weights:
``lib.checkpoint.build_from_checkpoint(path)`` or ``load_fsanet_weights(model, path)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from huggingface_hub import ModelCard, PyTorchModelHubMixin

from lib.configs import CHECKPOINT_PARTS, INPUT_MULTIPLE, NON_ARCHITECTURE_KEYS, checkpoint_parts  # noqa: F401
from lib.network import DEFAULT_CONFIG, FSANetNetwork, FSANetOutput, build_network, check_input  # noqa: F401
from lib.weights import CheckpointError, build_model, open_weights, write_pretrained
from lib.weights.model_card import CARD_TAGS, LIBRARY_NAME, PIPELINE_TAG, model_card, read_results


class FSANet(
    FSANetNetwork,
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    pipeline_tag=PIPELINE_TAG,
    tags=list(CARD_TAGS),
    license="other",
):
    """FSANet as the authors' released model computes it, with the Hub's methods.

    The constructor's arguments and the outputs are :class:`lib.network.FSANetNetwork`'s:
    ``FSANet(backbone, freq_backbone, channels, decoder_channels, radius, drop_path_rate)``,
    ``forward(x) -> FSANetOutput(p1, p2, p3, p4, frequency_map)``.
    """

    def _save_pretrained(self, save_directory: Path) -> None:
        """``save_pretrained``: ``model.safetensors`` + ``config.json`` (:func:`lib.weights.write_pretrained`)."""
        write_pretrained(save_directory, self)

    def generate_model_card(self, *args: Any, results: Union[None, str, os.PathLike, dict] = None, **kwargs: Any):
        """The folder's README.md (:func:`lib.weights.model_card.model_card`); ``results``: eval.py's
        results.json (``save_pretrained(folder, model_card_kwargs={"results": path})``)."""
        table = read_results(results) if isinstance(results, (str, os.PathLike)) else results
        return ModelCard(model_card(self.config, sum(p.numel() for p in self.parameters()), table))

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, Path]] = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: Optional[Union[str, bool]] = None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> "FSANet":
        """``from_pretrained``: the architecture and weights of the folder's or repository's
        weights (the config in their metadata), read by :func:`lib.weights.open_weights` and
        loaded strictly, in eval mode."""
        if Path(model_id).is_dir():
            spec = str(model_id)
        else:
            spec = f"hf:{model_id}{'@' + revision if revision else ''}"
        options = dict(cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only, token=token)
        record = open_weights(spec, model_class=cls, hub_options={k: v for k, v in options.items() if v})
        if record.layout != "project" or not record.config:
            raise CheckpointError(
                f"{record.path}: no FSANet config in its metadata; write it with save_pretrained or lib.convert"
            )
        model, _ = build_model(record, cls)
        return model.to(map_location)


def build_fsanet(config: Dict[str, Any] | None = None, **overrides: Any) -> FSANet:
    """FSANet from a config dict (as stored in the project's checkpoints) plus overrides."""
    return build_network(config, FSANet, **overrides)


__all__ = ["DEFAULT_CONFIG", "FSANet", "FSANetOutput", "build_fsanet", "check_input"]
