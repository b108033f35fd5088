"""What a training run leaves after each epoch: the log line, the tensorboard scalars and
the checkpoints (``latest.pth`` always, ``FSANet-N.pth`` every ``--save_every`` epochs and
at the end, ``best.pth`` on a new best validation maxFβ); every file is written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from lib.saving import make_checkpoint
from utils.common.fileio import atomic_copy, atomic_save
from utils.common.logs import get_logger
from utils.common.signals import Stopped, critical
from utils.training.config import TrainConfig

log = get_logger(__name__)


def epoch_line(epoch: int, total: int, lr: float, stats: Dict[str, float], val: Optional[Dict[str, float]]) -> str:
    """The epoch's line in the console and train.log."""
    line = (
        f"epoch {epoch}/{total} | loss {stats['loss']:.4f} (P1 {stats['P1']:.4f} P2 {stats['P2']:.4f} "
        f"P3 {stats['P3']:.4f} P4 {stats['P4']:.4f}) | lr {lr:.3e} | {stats['images_per_s']:.2f} img/s | "
        f"{stats['seconds']:.0f} s"
    )
    if val:
        line += f" | val MAE {val['MAE']:.4f} maxFβ {val['maxFm']:.4f}"
    return line


def write_scalars(writer: Any, epoch: int, lr: float, stats: Dict[str, float], val: Optional[Dict[str, float]]) -> None:
    """The epoch's losses, LR, speed and validation scores into tensorboard."""
    for key in ("loss", "P1", "P2", "P3", "P4"):
        writer.add_scalar(f"train/loss_{key}" if key != "loss" else "train/loss", stats[key], epoch)
    writer.add_scalar("train/lr", lr, epoch)
    writer.add_scalar("train/images_per_s", stats["images_per_s"], epoch)
    for key, value in (val or {}).items():
        writer.add_scalar(f"val/{key}", value, epoch)
    writer.flush()


def save_epoch(
    folder: Path,
    model: nn.Module,
    epoch: int,
    val: Optional[Dict[str, float]],
    best: Dict[str, Any],
    states: Dict[str, Any],
    config: TrainConfig,
) -> Tuple[Dict[str, Any], Path]:
    """Write the epoch's checkpoints; ``(best score so far, the newest checkpoint written)``.

    ``states``: ``optimizer`` (the optimiser itself) and the other states latest.pth holds.
    A Ctrl-C or SIGTERM during the saves and their log lines takes effect after them."""
    with critical():
        improved = val is not None and val["maxFm"] > best["maxFm"]
        if improved:
            best = {"maxFm": val["maxFm"], "MAE": val["MAE"], "epoch": epoch}
        extra = {k: v for k, v in states.items() if k != "optimizer"}
        checkpoint = make_checkpoint(model, epoch, states["optimizer"], config.as_dict(), best=best, **extra)
        newest = folder / "latest.pth"
        atomic_save(checkpoint, newest)  # always complete: --resume continues from it
        numbered = epoch % config.save_every == 0 or epoch == config.epoch
        targets = ([folder / f"FSANet-{epoch}.pth"] if numbered else []) + ([folder / "best.pth"] if improved else [])
        for target in targets:
            if config.save_optimizer == "all":
                atomic_copy(folder / "latest.pth", target)  # a hard link where the file system allows
            else:  # weights only: about a third of the size
                atomic_save(make_checkpoint(model, epoch, None, config.as_dict(), best=best), target)
        if numbered:
            newest = targets[0]
            log.info("saved %s", newest)
        if improved:
            log.info("new best maxFβ %.4f at epoch %d → %s", val["maxFm"], epoch, folder / "best.pth")
        return best, newest


def last_saved(checkpoint_dir: Path) -> Optional[str]:
    """``<dir>/latest.pth (epoch N)`` when the run holds a readable latest.pth, else None."""
    try:
        obj = torch.load(checkpoint_dir / "latest.pth", map_location="cpu", weights_only=True, mmap=True)
        return f"{checkpoint_dir / 'latest.pth'} (epoch {obj['epoch']})"
    except Exception:  # noqa: BLE001  absent or unreadable: nothing to point to
        return None


def stop_message(stop: BaseException, checkpoint_dir: Path) -> str:
    """One line for a Ctrl-C or SIGTERM: what stopped the run, the intact checkpoint and how to continue."""
    what = f"stopped by {stop.signal_name}" if isinstance(stop, Stopped) and stop.signal_name != "SIGINT" else "interrupted"
    saved = last_saved(checkpoint_dir)
    if saved:
        return f"{what}. Intact: {saved}; continue with the same options plus --resume {checkpoint_dir}"
    return f"{what}. No epoch was finished, so nothing was saved; start again with the same options plus --overwrite"
