"""Export FSANet to ONNX, frequency branch included, and check it with onnxruntime.

    python -m utils.deploy.export --pth_path models/FSANet-100.pth --out fsanet.onnx              # 992×992
    python -m utils.deploy.export --pth_path models/FSANet-100.pth --out fsanet.onnx --size 512 512
    python -m utils.deploy.export --pth_path models/FSANet-100.pth --out fsanet.onnx --dynamic    # any H, W, batch

The graph maps a B×3×H×W ImageNet-normalised batch (input ``image``) to the P1
logits B×1×H×W (output ``logits``), before the sigmoid; test.py's pre- and
post-processing stay outside (``test.py --onnx``). In torch 2.14 only the
``torch.export``-based exporter (``dynamo=True``) takes ``torch.fft.fft2``/``ifft2``
and the complex magnitude (ONNX ``DFT``, opset 20); the TorchScript exporter stops at
``aten::fft_fft2``. After writing, the file is run with onnxruntime and its map
compared with PyTorch's: within 1 grey level, or the command fails (weights that make
the map chaotic at a few pixels get a looser rule: :class:`MapAgreement`).

Needs the ``export`` extra: ``pip install -e .[export]`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from lib.checkpoint import build_from_checkpoint
from lib.configs import CONFIGS, get_config
from lib.FSANet import INPUT_MULTIPLE, build_fsanet
from utils.common.errors import ConfigError, FSANetError
from utils.common.extras import MissingExtraError, require_extra
from utils.common.fileio import temporary_name
from utils.common.logs import get_logger, setup_logging
from utils.common.ownership import check_replaceable, hold_file_lock
from utils.inference.config import DEFAULT_TESTSIZE
from utils.inference.onnx_model import OnnxError, is_fsanet_onnx
from utils.inference.processing import POSTPROCESS_STEPS, map_difference

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: ONNX opset: 20 has the DFT form the exporter writes for torch.fft.
OPSET = 20
INPUT_NAME, OUTPUT_NAME = "image", "logits"
#: largest multiple of 32 (per side) a --dynamic file is exported for
MAX_DYNAMIC_SIDE = 4096


class ExportError(OnnxError):
    """An export that failed or did not verify; the message says what to do."""


#: output names of an ``all_outputs`` export, FSANetOutput's fields
ALL_OUTPUT_NAMES = ("logits", "p2", "p3", "p4", "frequency_map")


class PredictionLogits(nn.Module):
    """FSANet reduced to what a deployment needs: the P1 logits (the prediction);
    with ``all_outputs`` every FSANet output (to compare the parts of a model)."""

    def __init__(self, model: nn.Module, all_outputs: bool = False) -> None:
        super().__init__()
        self.model, self.all_outputs = model, all_outputs

    def forward(self, image: torch.Tensor):
        outputs = self.model(image)
        return tuple(outputs) if self.all_outputs else outputs[0]


def export_onnx(
    model: nn.Module,
    out: PathLike,
    size: Tuple[int, int] = (DEFAULT_TESTSIZE, DEFAULT_TESTSIZE),
    dynamic: bool = False,
    opset: int = OPSET,
    all_outputs: bool = False,
) -> Path:
    """Write ``model`` (an FSANet, eval mode) as ONNX to ``out``, atomically.

    ``size`` is the input's H×W (multiples of 32): the fixed size, or with ``dynamic``
    the example traced (then H, W and the batch are free; H and W must stay multiples of 32).
    ``all_outputs`` also exports P2–P4 and the frequency map (:data:`ALL_OUTPUT_NAMES`).
    """
    require_extra("export", "ONNX export", "onnx", "onnxscript")
    from torch.export import Dim

    height, width = (int(s) for s in size)
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ConfigError(f"--size {height} {width}: FSANet needs multiples of {INPUT_MULTIPLE}")
    wrapper = PredictionLogits(model.eval(), all_outputs).eval()
    example = torch.randn(2 if dynamic else 1, 3, height, width)  # batch 1 would be fixed to 1
    shapes = None
    if dynamic:
        most = MAX_DYNAMIC_SIDE // INPUT_MULTIPLE
        rows, cols = Dim("rows", min=1, max=most), Dim("cols", min=1, max=most)
        shapes = {"image": {0: Dim("batch", min=1, max=256), 2: INPUT_MULTIPLE * rows, 3: INPUT_MULTIPLE * cols}}
    with torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(ALL_OUTPUT_NAMES) if all_outputs else [OUTPUT_NAME],
            dynamic_shapes=shapes,
            verbose=False,
        )
    config = dict(getattr(model, "config", {}))
    program.model.metadata_props.update(
        {
            "fsanet_config": json.dumps(config, sort_keys=True),
            "input": "B×3×H×W RGB resized to the test size, /255, ImageNet mean/std normalised",
            "output": "B×1×H×W P1 logits (test.py turns them into 8-bit maps as 'postprocess' says)",
            "postprocess": POSTPROCESS_STEPS,
            "input_size": "dynamic" if dynamic else f"{height}x{width}",
        }
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(out)
    try:
        program.save(str(tmp))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


@dataclass
class MapAgreement:
    """How the onnxruntime map of one image agrees with PyTorch's (8-bit test.py maps)."""

    size: Tuple[int, int]
    max_difference: int  # grey levels
    beyond_one: int  # pixels more than 1 grey level apart
    pixels: int
    #: pixels where PyTorch's own map moves by more than 1 grey level when the input is
    #: scaled by (1 + 1e-6), counted only when the maps differ by more than 1:
    #: > 0 means the weights make the map numerically chaotic
    self_beyond_one: int

    @property
    def ok(self) -> bool:
        """Within 1 grey level everywhere; or, for weights whose map PyTorch itself cannot
        reproduce under a 1e-6 input change (a saturated SFF gate, docs/onnx.md),
        beyond 1 grey level at no more than twice the pixels where PyTorch's own map moves,
        plus 0.1% of the image."""
        if self.max_difference <= 1:
            return True
        return self.self_beyond_one > 0 and self.beyond_one <= 2 * self.self_beyond_one + 1e-3 * self.pixels

    def __str__(self) -> str:
        text = f"{self.size[0]}×{self.size[1]}: max {self.max_difference} grey levels"
        if self.max_difference > 1:
            text += (
                f", {self.beyond_one} of {self.pixels} pixels beyond 1 (PyTorch against itself under a "
                f"1e-6 input change: {self.self_beyond_one})"
            )
        return text


def verify_onnx(
    onnx_path: PathLike, model: nn.Module, sizes: Sequence[Tuple[int, int]], seed: int = 0
) -> List[MapAgreement]:
    """Run the ONNX file and ``model`` on the same image at each (H, W) and compare the
    test.py maps (sigmoid, min-max, 8 bits) they give.

    The input is a synthetic DIS-like image (``utils.data.synthetic``), not noise, so the maps
    span the grey range the way real predictions do.
    """
    from PIL import Image

    from utils.data.synthetic import make_sample
    from utils.inference.onnx_model import OnnxFSANet
    from utils.inference.processing import preprocess

    runner = OnnxFSANet(onnx_path)
    result = []
    for height, width in sizes:
        image, _ = make_sample(np.random.default_rng(seed), width, height)
        batch = preprocess(Image.fromarray(image), (height, width))
        with torch.no_grad():
            eager = _map(model.eval()(batch)[0], height, width)
            difference = map_difference(_map(runner(batch)[0], height, width), eager)
            self_beyond_one = 0
            if difference.max_grey > 1:  # does PyTorch reproduce its own map here? (a second forward)
                self_beyond_one = map_difference(_map(model(batch * (1 + 1e-6))[0], height, width), eager).beyond_one
        result.append(MapAgreement((height, width), *difference, self_beyond_one))
    return result


def _map(logits: torch.Tensor, height: int, width: int) -> np.ndarray:
    from utils.inference.processing import postprocess

    return postprocess(logits[0], (height, width))


def build_parser() -> argparse.ArgumentParser:
    from utils.common.cli import HelpFormatter

    p = argparse.ArgumentParser(prog="python -m utils.deploy.export", description=__doc__, formatter_class=HelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pth_path", help="FSANet weights (.pth in any layout the loader takes, or .safetensors)")
    source.add_argument(
        "--random_init",
        choices=sorted(CONFIGS),
        help="export a freshly initialised model of this configuration instead (for trying the pipeline)",
    )
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--size", nargs=2, type=int, default=[DEFAULT_TESTSIZE] * 2, metavar=("H", "W"), help="input size")
    p.add_argument("--dynamic", action="store_true", help="free batch, H and W (multiples of 32); --size is the trace")
    p.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (20 or newer for torch.fft)")
    p.add_argument(
        "--verify_sizes",
        nargs="+",
        type=int,
        default=None,
        metavar="S",
        help="square sizes to compare onnxruntime with PyTorch at (default: the export size; "
        "with --dynamic also 512; other sizes need --dynamic); 0 skips the check",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also the exporter's own log (its graph passes)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(verbose=args.verbose)
    try:
        require_extra("export", "ONNX export", "onnx", "onnxscript", "onnxruntime")
        if args.pth_path:
            model, report = build_from_checkpoint(args.pth_path)
            log.info("%s", report)
        else:
            torch.manual_seed(0)
            model = build_fsanet(get_config(args.random_init)).eval()
            log.warning("exporting a freshly initialised %s (random weights): its maps mean nothing", args.random_init)
        size = (args.size[0], args.size[1])
        sizes = [size] + ([(512, 512)] if args.dynamic and size != (512, 512) else [])
        if args.verify_sizes is not None:
            sizes = [(s, s) for s in args.verify_sizes if s > 0]
            if not args.dynamic and any(s != size for s in sizes):
                raise ConfigError(f"--verify_sizes: a fixed-size export runs at {size[0]}×{size[1]} only; or use --dynamic")
        out = Path(args.out)
        with hold_file_lock(out, "--out", "export"):  # one writer of the file
            # only an earlier FSANet export may be replaced, and only by one that verifies
            check_replaceable(out, "--out", is_fsanet_onnx, "an FSANet ONNX export", inputs=[args.pth_path])
            tmp = temporary_name(out)
            try:
                export_onnx(model, tmp, size, args.dynamic, args.opset)
                if sizes:
                    agreements = verify_onnx(tmp, model, sizes)
                    log.info("onnxruntime vs PyTorch maps: %s", "; ".join(map(str, agreements)))
                    if not all(a.ok for a in agreements):
                        kept = f"the earlier {out} is left as it was" if out.exists() else "nothing was written"
                        log.error("the export's maps differ from PyTorch's by more than 1 grey level; %s", kept)
                        return 1
                    if any(a.max_difference > 1 for a in agreements):
                        log.warning(
                            "these weights make FSANet's map numerically chaotic at a few pixels (PyTorch's own map "
                            "moves there under a 1e-6 change of the input); the export agrees elsewhere"
                        )
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
        log.info("wrote %s (%.1f MiB, input %s)", out, out.stat().st_size / 2**20, "dynamic" if args.dynamic else size)
    except (FSANetError, MissingExtraError, OSError) as error:  # anything else is a bug: it keeps its traceback
        log.error("%s", error)  # nothing usable was written
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
