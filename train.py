"""Train FSANet with the authors' recipe.

    python train.py --train_path ./data/TrainDataset --train_save FSANet
    torchrun --nproc_per_node 2 train.py --train_path DIS5K/DIS-TR --train_save FSANet_ddp

Checkpoints go to checkpoints/<train_save>/, logs and tensorboard scalars to
logs/<train_save>/ (under --out_root, default the working directory).
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from lib.configs import CHECKPOINT_PARTS, CONFIGS
from models.registry import BACKBONES, FAMILY_FLAGS, FREQUENCY_BACKBONES, ROLE_FLAGS, SPATIAL_BACKBONES, backbone_names
from utils.common.cli import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    THREADS_HELP,
    HelpFormatter,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from utils.common.logs import get_logger, setup_logging
from utils.training.config import TrainConfig
from utils.training.losses import LOSSES  # the loss table (its callables need torch)

# the training code is imported in main(), after the flags are parsed


def _gpu_list(text: str) -> List[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus takes comma-separated GPU indices like 0,1; got {text!r}") from None


def _optional_path(text: str) -> Optional[str]:
    return None if text in ("", "None", "none") else text


def _checkpoint_part(text: str) -> str:
    if text not in (*CHECKPOINT_PARTS, "all"):
        raise argparse.ArgumentTypeError(
            f"--grad_checkpoint takes parts of {' '.join(CHECKPOINT_PARTS)} or all; got {text!r}"
        )
    return text


def _layouts_help(role: str) -> str:
    """``backbone: layouts`` of every backbone the role allows (from the backbone table)."""
    return "; ".join(f"{name}: {', '.join(BACKBONES[name].layouts)}" for name in backbone_names(role))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    recipe = p.add_argument_group("the authors' recipe (defaults reproduce it)")
    recipe.add_argument("--epoch", type=positive_int, default=TrainConfig.epoch, help="total epochs")
    recipe.add_argument(
        "--lr", type=positive_float, default=TrainConfig.lr, help="initial learning rate of the poly schedule"
    )
    recipe.add_argument(
        "--batchsize",
        type=positive_int,
        default=TrainConfig.batchsize,
        help="global batch: split over GPUs by DataParallel, or over torchrun processes",
    )
    recipe.add_argument(
        "--trainsize",
        type=positive_int,
        default=TrainConfig.trainsize,
        help="training side before the size rates (rounded to a multiple of 32)",
    )
    recipe.add_argument(
        "--clip", type=non_negative_float, default=TrainConfig.clip, help="clamp every gradient to ±clip (0: off)"
    )
    recipe.add_argument(
        "--rates",
        type=positive_float,
        nargs="+",
        default=list(TrainConfig.rates),
        help="multi-scale rates, one optimiser step each",
    )
    recipe.add_argument(
        "--loss",
        choices=list(LOSSES),
        default=TrainConfig.loss,
        help="; ".join(f"{spec.name}: {spec.summary}" for spec in LOSSES.values()),
    )
    recipe.add_argument(
        "--weight_decay", type=non_negative_float, default=TrainConfig.weight_decay, help="AdaXW decoupled weight decay"
    )
    recipe.add_argument("--power", type=positive_float, default=TrainConfig.power, help="poly LR power")

    data = p.add_argument_group("data")
    data.add_argument(
        "--train_path",
        default=TrainConfig.train_path,
        help="dataset root: <root>/Imgs + <root>/GT, or DIS5K's <root>/im + <root>/gt",
    )
    data.add_argument(
        "--skip_unpaired",
        action="store_true",
        help="train on the usable pairs when some files have no partner or are not images",
    )
    data.add_argument("--cache_dir", default=None, help="keep resized copies here (much faster on DIS5K)")
    data.add_argument(
        "--workers",
        type=non_negative_int,
        default=TrainConfig.workers,
        help="DataLoader worker processes (also the threads that check the files first)",
    )
    data.add_argument("--val_path", default=None, help="optional validation set (either layout)")
    data.add_argument("--val_every", type=positive_int, default=TrainConfig.val_every, help="validate every N epochs")
    data.add_argument("--val_size", type=positive_int, default=None, help="validation input side (default: --trainsize)")

    model = p.add_argument_group("model and weights")
    model.add_argument(
        "--config",
        choices=sorted(CONFIGS),
        default=TrainConfig.config,
        help="named architecture (lib/configs.py): fsanet is the paper's, fsanet_small a fast one for tests and "
        "demos; the flags below override its values",
    )
    model.add_argument("--backbone", choices=sorted(SPATIAL_BACKBONES), default=None, help="default: the config's")
    model.add_argument("--freq_backbone", choices=sorted(FREQUENCY_BACKBONES), default=None, help="default: the config's")
    model.add_argument(
        "--channels",
        type=positive_int,
        nargs=4,
        default=None,
        help="CSFM widths at strides 4-32 (the paper's 64 128 320 512; default: the config's)",
    )
    model.add_argument("--decoder_channels", type=positive_int, default=None, help="HCF/SFF/head width (the paper's 64)")
    model.add_argument(
        "--radius",
        type=non_negative_float,
        default=None,
        help="initial high-pass radius (the authors' 100 removes the whole spectrum of inputs "
        "below ~142 px: use less for small demo sizes)",
    )
    model.add_argument(
        "--drop_path", type=probability, default=None, help="spatial encoder stochastic depth (the paper's 0.1)"
    )
    for role, flag in ROLE_FLAGS.items():
        model.add_argument(
            flag,
            default=None,
            help=f"ImageNet file of the {role} encoder, in a layout its backbone accepts ({_layouts_help(role)})",
        )
    for family, flag in FAMILY_FLAGS.items():
        roles = sorted({role for spec in BACKBONES.values() if spec.family == family for role in spec.roles})
        model.add_argument(
            flag, default=None, help=f"alias of {' / '.join(ROLE_FLAGS[r] for r in roles)} for a {family} encoder"
        )
    model.add_argument(
        "--random_backbones",
        action="store_true",
        help="train from random encoders (demo, tests); without it and without the files above the encoders "
        "start from timm's ImageNet weights in the Hugging Face cache (pvt_v2_b*.in1k, resnet50.tv_in1k)",
    )
    model.add_argument(
        "--pre_model",
        type=_optional_path,
        default=None,
        help="start from these FSANet weights (+ optimiser state and epoch), e.g. FSANet-100.pth",
    )
    model.add_argument(
        "--fine_tune",
        action="store_true",
        help="with --pre_model: use the file's weights only; the epoch counter starts at 0 and the optimiser "
        "is fresh (fine-tuning FSANet-100.pth, whose counter is 99, for --epoch N)",
    )
    model.add_argument(
        "--resume", default=None, help="continue a run exactly from its checkpoint (a file, or the run's checkpoint folder)"
    )

    run = p.add_argument_group("devices, speed and output")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("--gpus", type=_gpu_list, default=None, help="DataParallel GPU ids, e.g. 0,1 (default: all visible)")
    run.add_argument(
        "--config_file",
        default=None,
        help="start from the options in this JSON file (a run's checkpoints/NAME/config.json, or a recipe file); "
        "flags given on the command line win",
    )
    run.add_argument("--amp", choices=["bf16", "fp16", "none"], default=TrainConfig.amp, help="mixed precision")
    run.add_argument("--channels_last", action="store_true", help="NHWC memory format")
    run.add_argument(
        "--grad_checkpoint",
        nargs="*",
        default=None,
        metavar="PART",
        type=_checkpoint_part,
        help="recompute activations in backward to save memory: no PART = both encoders; parts: "
        f"{' '.join(CHECKPOINT_PARTS)}, or all (docs/training.md, GPU memory)",
    )
    run.add_argument("--seed", type=int, default=TrainConfig.seed, help="seed of weights, data order and augmentation")
    run.add_argument(
        "--train_save",
        default=TrainConfig.train_save,
        help="run name: checkpoints/NAME and logs/NAME; a folder holding a run is refused unless --resume or --overwrite",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in checkpoints/NAME (its checkpoints and logs are deleted first)",
    )
    run.add_argument("--out_root", default=TrainConfig.out_root, help="folder that holds checkpoints/ and logs/")
    run.add_argument(
        "--save_every", type=positive_int, default=TrainConfig.save_every, help="numbered checkpoint every N epochs"
    )
    run.add_argument(
        "--save_optimizer",
        choices=["all", "latest"],
        default=TrainConfig.save_optimizer,
        help="which checkpoints keep the optimiser state (about 2/3 of a checkpoint's 1.3 GB): all, or only "
        "latest.pth (numbered and best checkpoints then hold the weights only; --resume needs latest.pth)",
    )
    run.add_argument("--threads", type=positive_int, default=None, help=THREADS_HELP)
    run.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def _given_flags(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> set:
    """The options the command line itself gives (not their defaults)."""
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def parse_config(argv: Optional[Sequence[str]] = None) -> TrainConfig:
    """train.py's flags as a :class:`TrainConfig` (which checks and normalises them); with
    ``--config_file``, the file's options first and the flags given on the command line over them."""
    values = vars(build_parser().parse_args(argv))
    parts = values["grad_checkpoint"]
    values["grad_checkpoint"] = () if parts is None else tuple(parts) or ("encoder",)  # the bare flag: the encoders
    config_file = values.pop("config_file")
    if config_file:
        from utils.training.run_config import read_config_file

        given = _given_flags(build_parser(), argv)
        values.update({k: v for k, v in read_config_file(config_file).items() if k not in given})
    return TrainConfig.from_dict(values)


def main(argv: Optional[Sequence[str]] = None) -> int:
    setup_logging()
    log = get_logger("train")
    from utils.common.errors import FSANetError

    try:
        config = parse_config(argv)
    except FSANetError as error:  # a value argparse accepts but the recipe cannot use (e.g. --rates giving size 0)
        log.error("%s", error)
        return EXIT_REFUSED
    from utils.common.signals import stop_handlers

    run_dir = Path(config.out_root) / "checkpoints" / config.train_save
    with stop_handlers():
        return _train(config, run_dir, log)


def _train(config: TrainConfig, run_dir: Path, log) -> int:
    from utils.common.errors import FSANetError
    from utils.common.signals import stop_behind
    from utils.data.dataset import loader_failure
    from utils.training.records import last_saved, stop_message
    from utils.training.run import TrainingRun

    try:
        with TrainingRun(config) as run:  # claims the run folder; data, model, AdaXW; --resume / --pre_model
            for epoch in run.epochs():
                stats = run.train_epoch(epoch)  # one optimiser step per size rate (utils/training/recipe.py)
                val = run.validate(epoch)  # MAE and maxFβ on --val_path, every --val_every epochs
                run.end_epoch(epoch, stats, val)  # train.log, tensorboard, latest/numbered/best checkpoints
    except KeyboardInterrupt as stop:  # Ctrl-C, and SIGTERM (SLURM, Kubernetes, timeout)
        log.error("%s", stop_message(stop, run_dir))
        return EXIT_INTERRUPTED
    except FloatingPointError as error:
        saved = last_saved(run_dir)
        log.error("%s. %s", error, f"The last good checkpoint: {saved}" if saved else "No checkpoint was saved.")
        return EXIT_REFUSED
    except Exception as error:  # noqa: BLE001  every known failure ends in one line; others keep their traceback
        stop = stop_behind(error)  # the process group signalled: a worker died of the stop signal first
        if stop is not None:
            log.error("%s", stop_message(stop, run_dir))
            return EXIT_INTERRUPTED
        from_worker = loader_failure(error)
        if from_worker is not None:  # a file deleted mid-run, a worker killed by the OOM killer
            saved = last_saved(run_dir)
            log.error("%s. %s", from_worker, f"Intact: {saved}" if saved else "No checkpoint was saved before.")
            return EXIT_REFUSED
        if isinstance(error, FSANetError):  # refusals meant for the user; anything else is a bug: traceback
            log.error("%s", error)
            return EXIT_REFUSED
        if isinstance(error, OSError):  # a full disk while saving, a folder that became unwritable
            saved = last_saved(run_dir)
            text = error.strerror if error.errno == errno.ENOSPC and error.strerror else str(error)
            log.error("%s. %s", text, f"Intact: {saved}" if saved else "No checkpoint was saved before.")
            return EXIT_REFUSED
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
