"""What a run starts from: a fresh model with ImageNet backbones, the authors' or any FSANet
weights (``--pre_model``), or a run of this project continued exactly (``--resume``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from lib.configs import SHAPE_KEYS, flags_for, same_architecture
from lib.FSANet import FSANet, build_fsanet
from lib.weights import CheckpointError, WeightFile, load_backbone, load_into, open_weights
from lib.weights.keymap import authors_optimizer_to_fsanet
from models.registry import FAMILY_FLAGS, ROLE_FLAGS, get_backbone
from utils.common.errors import ConfigError
from utils.common.logs import get_logger
from utils.training.config import TrainConfig

log = get_logger(__name__)

#: options whose change makes a resumed run differ from an uninterrupted one.
RECIPE_ARGS = ("epoch", "lr", "batchsize", "trainsize", "clip", "rates", "loss", "weight_decay", "power", "amp", "seed")


#: data options whose change makes a resumed run train or select on other images.
DATA_ARGS = ("train_path", "val_path", "cache_dir")


def _same_path(value: Any) -> Optional[str]:
    return str(Path(value).resolve()) if value else None


def _plain_arg(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _weight_flag(config: TrainConfig, part: str) -> str:
    """The flag that gives ``part``'s ImageNet file, with its family alias."""
    alias = FAMILY_FLAGS.get(get_backbone(_backbone_name(config, part), part).family)
    return f"{ROLE_FLAGS[part]} (or its alias {alias})" if alias else ROLE_FLAGS[part]


def _backbone_name(config: TrainConfig, part: str) -> str:
    return config.backbone if part == "spatial" else config.freq_backbone


def backbone_sources(config: TrainConfig) -> Dict[str, Optional[str]]:
    """``{part: weights}`` each encoder starts from: the file of its role's flag
    (``--spatial_weights`` / ``--frequency_weights``, or the family's alias flag), else the
    table's default ImageNet weights on the Hub (:mod:`models.registry`), else ``None``
    (random: only with ``--random_backbones``)."""
    sources: Dict[str, Optional[str]] = {}
    for part in ROLE_FLAGS:
        spec = get_backbone(_backbone_name(config, part), part)
        alias = FAMILY_FLAGS.get(spec.family)
        given = getattr(config, f"{part}_weights") or (getattr(config, alias[2:], None) if alias else None)
        sources[part] = given or (None if config.random_backbones else spec.default_weights)
    return sources


@dataclass
class StartFiles:
    """The weight files a run starts from, each opened (read and checked) once."""

    resume: Optional[WeightFile] = None
    pre_model: Optional[WeightFile] = None
    #: ``{part: record}``; a part missing here stays random (``--random_backbones``)
    backbones: Dict[str, WeightFile] = field(default_factory=dict)


def resume_path(config: TrainConfig) -> Path:
    """The file ``--resume`` names: a run folder means its ``latest.pth``."""
    path = Path(config.resume)
    return path / "latest.pth" if path.is_dir() else path


def open_start_files(config: TrainConfig) -> StartFiles:
    """Open every weight file the run starts from, before any folder is claimed: the
    ``--resume`` or ``--pre_model`` checkpoint, else each encoder's ImageNet file. A fresh
    run whose encoders would start random without ``--random_backbones``, or whose default
    weights are neither cached nor downloadable, is refused in one message naming the flags,
    the files and ``--random_backbones``."""
    if config.resume:  # a missing latest.pth is explained by the run folder's check (never finished an epoch …)
        path = resume_path(config)
        return StartFiles(resume=open_weights(path, model_class=FSANet) if path.is_file() else None)
    if config.pre_model:
        return StartFiles(pre_model=open_weights(config.pre_model, model_class=FSANet))
    problems, opened = [], {}
    for part, source in backbone_sources(config).items():
        name, flag = _backbone_name(config, part), _weight_flag(config, part)
        if source is None:
            if not config.random_backbones:
                problems.append(f"the {part} encoder ({name}) has no ImageNet default: give {flag}")
            continue
        try:
            opened[part] = open_weights(source)
        except CheckpointError as error:
            problems.append(f"{error}; or give the local file with {flag}")
    if problems:
        raise CheckpointError(
            "no ImageNet weights to start from (the authors start from ImageNet PVT-v2-b2 and ResNet-50): "
            + " | ".join(problems)
            + " | --random_backbones trains from random encoders instead (not the paper's recipe)"
        )
    return StartFiles(backbones=opened)


def init_backbones(model: FSANet, config: TrainConfig, files: Optional[StartFiles] = None) -> List[str]:
    """Load each encoder's ImageNet weights (:func:`backbone_sources`); returns the encoders left random."""
    files = files if files is not None else open_start_files(config)
    generator = torch.Generator().manual_seed(config.seed)
    random_parts = []
    for part in ROLE_FLAGS:
        encoder = model.spatial_encoder if part == "spatial" else model.frequency_branch.encoder
        record = files.backbones.get(part)
        if record is not None:
            report = load_backbone(model, record, part, generator)
            log.info("%s encoder (%s) from %s (%s)", part, encoder.timm_name, record.path, report.layout)
        else:
            random_parts.append(f"{part} encoder ({encoder.timm_name})")
    return random_parts


@dataclass
class StartState:
    """What a run starts from: completed epochs and the states to restore."""

    epoch: int = 0
    optimizer: Optional[Dict[str, Any]] = None
    extras: Dict[str, Any] = field(default_factory=dict)
    #: the config the run actually trains with: ``--resume`` keeps the checkpoint's architecture
    config: Optional[TrainConfig] = None


def prepare_model(config: TrainConfig, files: Optional[StartFiles] = None) -> Tuple[FSANet, StartState]:
    """Build the FSANet this run trains and read what it resumes from.

    ``--resume``: a project checkpoint, restored exactly (model, optimiser, LR,
    AMP scaler, RNG, epoch, best score). ``--pre_model`` (the authors' meaning):
    weights, optimiser state when the file has one, and the epoch counter, from
    any FSANet checkpoint including the authors' FSANet-100.pth. Otherwise the
    backbones come from the ImageNet files given. ``files``: what :func:`open_start_files`
    opened (opened here when not given); each file is read once.
    """
    files = files if files is not None else open_start_files(config)
    if config.resume:
        path = resume_path(config)
        record = files.resume or open_weights(path, model_class=FSANet)
        layout, meta = record.layout, {"config": record.config}
        obj = record.extras
        if obj.get("weights_only"):
            raise CheckpointError(
                f"{path}: a weights-only file (no optimiser, LR or RNG state), so there is nothing to resume; "
                "--resume needs latest.pth of a train.py run; to start from these weights use --pre_model"
            )
        if layout != "project":
            raise CheckpointError(
                f"{path}: --resume needs a checkpoint written by this train.py (found a {layout} file); "
                "to start from other FSANet weights use --pre_model"
            )
        model = build_fsanet(meta["config"])
        load_into(model, record)
        extras = {k: obj.get(k) for k in ("scheduler", "scaler", "rng", "best", "history")}
        saved = obj.get("args") or {}  # the run's TrainConfig, as saved
        changed = [
            f"--{k} {saved[k]} → {getattr(config, k)}"
            for k in RECIPE_ARGS
            if k in saved and saved[k] != _plain_arg(getattr(config, k))
        ]
        data_changed = [
            f"--{k} {saved.get(k)} → {getattr(config, k)}"
            for k in DATA_ARGS
            if k in saved and _same_path(saved[k]) != _same_path(getattr(config, k))
        ]
        if data_changed:
            log.warning(
                "resuming on other data than the checkpoint's run: %s (the run continues, but it is no longer "
                "the run that was started)",
                "; ".join(data_changed),
            )
        if changed:
            log.warning(
                "resuming with recipe options that differ from the checkpoint's: %s "
                "(the run will not equal an uninterrupted one)",
                "; ".join(changed),
            )
        used = {
            "backbone": meta["config"].get("backbone"),
            "freq_backbone": meta["config"].get("freq_backbone"),
            "channels": meta["config"].get("channels"),
            "decoder_channels": meta["config"].get("decoder_channels"),
        }
        ignored = [
            f"--{k} {_plain_arg(getattr(config, k))}"
            for k, v in used.items()
            if v is not None and _plain_arg(getattr(config, k)) != _plain_arg(v)
        ]
        if ignored:
            log.warning(
                "--resume keeps the checkpoint's architecture (%s); ignored: %s",
                ", ".join(f"{k} {_plain_arg(v)}" for k, v in used.items()),
                "; ".join(ignored),
            )
        # the checkpoints of this run record what was used; the caller's config is left as it is
        effective = replace(config, **{k: tuple(v) if isinstance(v, list) else v for k, v in used.items() if v is not None})
        log.info("resuming %s after epoch %d", path, record.epoch)
        return model, StartState(int(record.epoch), obj.get("optimizer"), extras, effective)

    if config.pre_model:
        record = files.pre_model
        layout, obj = record.layout, record.extras
        recorded = record.config if layout == "project" else None
        if isinstance(recorded, dict) and not same_architecture(recorded, config.model_config()):
            raise CheckpointError(
                f"--pre_model {config.pre_model}: these weights are of another architecture "
                f"({', '.join(f'{k} {_plain_arg(recorded.get(k))}' for k in SHAPE_KEYS)}) than this run builds "
                f"({flags_for(config.model_config())}); add {flags_for(recorded)} to train.py's flags"
            )
    model = build_fsanet(config.model_config())
    if config.pre_model:
        report = load_into(model, record)
        epoch = int(record.epoch or 0)
        if config.fine_tune:  # the file's weights only: a fresh optimiser, LR schedule and counter
            log.info(
                "--pre_model %s (%s) with --fine_tune: weights only (the file's epoch %d and optimiser state are "
                "not used), epochs 1 → %d",
                config.pre_model,
                report.layout,
                epoch,
                config.epoch,
            )
            return model, StartState(0, None, config=config)
        if epoch >= config.epoch:
            raise ConfigError(
                f"--pre_model {config.pre_model}: its epoch counter is {epoch} and --epoch is {config.epoch}, so "
                f"the authors' meaning of --pre_model (the counter continues) would train nothing. To fine-tune "
                f"these weights for {config.epoch} epochs add --fine_tune (counter from 0, fresh optimiser); "
                f"to continue the counter give --epoch larger than {epoch}"
            )
        optimizer_state = None
        if layout == "project":
            optimizer_state = obj.get("optimizer")
        elif layout == "authors":
            optimizer_state = authors_optimizer_to_fsanet(obj.get("optimizer") or {}, obj["authors_keys"], model)
        log.info(
            "--pre_model %s (%s): weights%s, continuing after epoch %d",
            config.pre_model,
            report.layout,
            " and optimiser state" if optimizer_state else "",
            epoch,
        )
        return model, StartState(epoch, optimizer_state, config=config)

    random_parts = init_backbones(model, config, files)
    if random_parts:
        log.warning(
            "\n%s\nTHE BACKBONES ARE RANDOM (--random_backbones): no ImageNet weights for the %s.\n"
            "The authors start from ImageNet PVT-v2-b2 and ResNet-50; without them the paper's numbers "
            "are out of reach.\nDrop --random_backbones (timm's ImageNet weights from the HF cache), or give "
            "%s.\n%s",
            "!" * 78,
            " and ".join(random_parts),
            " / ".join(_weight_flag(config, part) for part in ROLE_FLAGS),
            "!" * 78,
        )
    return model, StartState(config=config)


def run_is_finished(config: TrainConfig, start: StartState) -> bool:
    """True (and says so) when a resumed run has already trained its ``--epoch`` epochs."""
    if config.resume and start.epoch >= config.epoch:
        log.info(
            "%s: this run is finished (epoch %d of --epoch %d); nothing to train. To train longer, give a "
            "larger --epoch (the LR schedule then changes)",
            config.resume,
            start.epoch,
            config.epoch,
        )
        return True
    return False
