"""A web page to try FSANet on your own photos (gradio; needs ``pip install -e .[app]``).

    python app.py --pth_path models/FSANet-100.pth            # http://127.0.0.1:7860
    python app.py                                             # random weights, to try the page
    python app.py --onnx fsanet.onnx --testsize 992           # an exported model, onnxruntime

Upload or drop photos; each gets the prediction map (what test.py writes), a cut-out
on a transparent background and an overlay, side by side and downloadable, with a
threshold slider for the binary mask. Runs are queued: one model run at a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from lib.configs import CONFIGS, get_config
from utils.common.amp import AMP_CHOICES
from utils.common.cli import (
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    THREADS_HELP,
    HelpFormatter,
    add_inference_speed_flags,
    positive_int,
)
from utils.common.errors import ConfigError, FSANetError
from utils.common.logs import get_logger, setup_logging
from utils.common.signals import stop_handlers, stop_pending
from utils.deploy.limits import KEEP_RESULTS_S, MAX_PIXELS
from utils.inference.config import DEFAULT_TESTSIZE, PredictConfig

# torch, gradio and the model code are imported after the flags are parsed: -h needs none of them

log = get_logger("app")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    model = p.add_mutually_exclusive_group()
    model.add_argument("--pth_path", help="FSANet weights (.pth in any layout test.py takes, or .safetensors)")
    model.add_argument("--onnx", help="an exported model (python -m utils.deploy.export), run with onnxruntime")
    p.add_argument(
        "--config",
        choices=sorted(CONFIGS),
        default="fsanet",
        help="architecture of the random-weights model (without --pth_path/--onnx only)",
    )
    p.add_argument("--testsize", type=positive_int, default=DEFAULT_TESTSIZE, help="input side (test.py's; multiple of 32)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--amp", choices=sorted(AMP_CHOICES), default="none", help="mixed precision (PyTorch models)")
    p.add_argument(
        "--keep_aspect",
        action="store_true",
        help="as test.py --keep_aspect: the long side at --testsize, the short side the nearest multiple of 32",
    )
    add_inference_speed_flags(p)
    p.add_argument("--threshold", type=int, default=128, help="initial mask threshold, 0–254")
    p.add_argument("--max_pixels", type=positive_int, default=MAX_PIXELS, help="larger uploads are refused")
    p.add_argument("--max_file_size", default="200mb", help="largest upload gradio accepts")
    p.add_argument("--threads", type=positive_int, default=None, help=THREADS_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860, help="port to serve on (a busy one is refused before the model loads)")
    p.add_argument(
        "--keep_results",
        type=positive_int,
        default=int(KEEP_RESULTS_S),
        help="seconds an upload's result files are kept (all are deleted when the server stops)",
    )
    return p


def make_segmenter(args: argparse.Namespace):
    """The model of ``args`` (weights, an ONNX file, or random weights) behind test.py's prediction
    (a :class:`utils.deploy.webapp.Segmenter`)."""
    import torch

    from lib.FSANet import build_fsanet
    from utils.common.amp import AMP_DTYPES
    from utils.common.devices import resolve_device
    from utils.deploy.webapp import Segmenter
    from utils.inference.predict import load_predictor

    config = PredictConfig.from_args(args)
    random_weights = not (config.pth_path or config.onnx)
    if random_weights:
        device = resolve_device(config.device)
        torch.manual_seed(0)
        model = build_fsanet(get_config(args.config)).to(device).eval()
        log.warning("no --pth_path: serving a randomly initialised %s; the page says so", args.config)
        source = f"random {args.config}"
    else:
        model, device = load_predictor(config)
        source = config.pth_path or config.onnx
    description = f"Model: `{source}` · input {config.testsize}×{config.testsize} · {device}"
    if config.keep_aspect:
        description += " · --keep_aspect (long side)"
    return Segmenter(
        model,
        config.testsize,
        device,
        AMP_DTYPES[config.amp],
        random_weights,
        args.max_pixels,
        description,
        keep_aspect=config.keep_aspect,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from utils.deploy.webapp import PAGE_CSS, build_app, check_port, parse_file_size, require_app_extra

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home (and none possible offline)
    try:
        require_app_extra()
        if not 0 <= args.threshold <= 254:
            raise ConfigError(f"--threshold {args.threshold}: choose 0–254")
        parse_file_size(args.max_file_size)
        check_port(args.host, args.port)  # before the model: a busy port should not cost a minute of loading
        segmenter = make_segmenter(args)
    except (ImportError, FSANetError) as error:  # anything else is a bug: it keeps its traceback
        log.error("%s", error)
        return EXIT_REFUSED
    root = Path(tempfile.mkdtemp(prefix="fsanet-app-"))
    stopped: Optional[str] = None
    try:
        with stop_handlers():  # SIGTERM (systemd, docker stop, Kubernetes) is Ctrl-C
            demo = build_app(segmenter, root, threshold=args.threshold, keep_s=args.keep_results)
            log.info("serving on http://%s:%d (Ctrl-C stops); result files in %s", args.host, args.port, root)
            demo.launch(
                server_name=args.host,
                server_port=args.port,
                max_file_size=args.max_file_size,
                show_error=False,
                css=PAGE_CSS,
            )
            stopped = stop_pending()  # gradio's own wait loop ends quietly on the stop and returns
    except KeyboardInterrupt as error:
        stopped = getattr(error, "signal_name", "SIGINT")
    finally:
        shutil.rmtree(root, ignore_errors=True)  # every upload's result files
    if stopped:
        log.info("stopped by %s; the result files in %s are removed", stopped, root)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
