"""The DIS metric table (maxFβ, mean Fβ, weighted Fβ, MAE, Sα, mean/max Eφ, HCEγ)
with pysodmetrics, BiRefNet's boundary metrics (mBA, max/mean BIoU), plus PR and Fβ curves.

    python eval.py --pred_root results/FSANet --gt_root data/TestDataset --save_dir results/eval
    python eval.py --gt_root DIS5K --methods FSANet=results/FSANet IS-Net=maps/isnet --save_dir results/cmp

Masks are read from <gt_root>/<set>/GT (or gt), predictions from <pred_root>/<set>/,
matched by file stem. Without --sets every set found is scored except DIS-TR.
HCE follows IS-Net's benchmark script by default (map > 128, mask > 128).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, Optional, Sequence

from utils.common.cli import EXIT_INTERRUPTED, EXIT_REFUSED, HelpFormatter, positive_int, usable_cores
from utils.common.logs import get_logger, setup_logging
from utils.evaluation.conventions import HCE_RULES
from utils.evaluation.matching import EvaluationError

# the metrics (pysodmetrics, OpenCV, scikit-image) are imported after the flags are parsed

log = get_logger("eval")


def _method(text: str) -> tuple:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--methods takes NAME=PATH, got {text!r}")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--pred_root", default=None, help="predictions of one method: <pred_root>/<set>/<stem>.png")
    p.add_argument("--method_name", default="FSANet", help="its name in the table")
    p.add_argument(
        "--methods",
        type=_method,
        nargs="+",
        default=[],
        metavar="NAME=PATH",
        help="several methods side by side (added to --pred_root)",
    )
    p.add_argument("--gt_root", default="./data/TestDataset", help="folder holding <set>/GT (or <set>/gt)")
    p.add_argument(
        "--sets", nargs="+", default=None, help="sets to score (default: every set found except DIS-TR, the training set)"
    )
    p.add_argument("--save_dir", default="./results/eval", help="results.{md,csv,json} and curves go here")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=usable_cores(),
        help="processes to spread the masks over (default: the cores this process may use, at most 8); "
        "the numbers equal a single process's",
    )
    p.add_argument("--allow_missing", action="store_true", help="score the masks that have a prediction")
    p.add_argument(
        "--hce_rule",
        choices=HCE_RULES,
        default="isnet",
        help="how HCE binarises a map: isnet = IS-Net's benchmark script, map > 128; "
        "pysod = pysodmetrics' default, min-max then > 0.5 (MVANet's evaluation)",
    )
    p.add_argument("--no_hce", action="store_true", help="skip HCE (the slowest metric)")
    p.add_argument(
        "--no_boundary", action="store_true", help="skip the boundary metrics mBA, maxBIoU and meanBIoU (BiRefNet's)"
    )
    p.add_argument("--no_curves", action="store_true", help="do not draw the PR / Fβ curves")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    return p


def run_eval(args: argparse.Namespace):
    """eval.py's flags → :func:`utils.evaluation.reports.evaluate_to_folder`."""
    methods: Dict[str, str] = {}
    if args.pred_root:
        methods[args.method_name] = args.pred_root
    for name, path in args.methods:
        if name in methods:
            raise EvaluationError(f"method name {name!r} given twice")
        methods[name] = path
    if not methods:
        raise EvaluationError("nothing to evaluate: give --pred_root or --methods NAME=PATH")
    from utils.evaluation.reports import evaluate_to_folder

    return evaluate_to_folder(
        methods,
        args.gt_root,
        args.save_dir,
        args.sets,
        args.workers,
        args.allow_missing,
        None if args.no_hce else args.hce_rule,
        curves=not args.no_curves,
        progress=not args.no_progress,
        boundary=not args.no_boundary,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from utils.common.errors import FSANetError
    from utils.common.signals import stop_handlers
    from utils.evaluation.reports import format_table, provenance, provenance_line

    try:
        with stop_handlers():  # SIGTERM (SLURM, timeout) ends like Ctrl-C
            results, paths = run_eval(args)
    except KeyboardInterrupt:
        log.error("interrupted; no table was written")
        return EXIT_INTERRUPTED
    except BrokenProcessPool:
        log.error(
            "an evaluation worker process died (killed, often by the out-of-memory killer); no table was "
            "written; run again with fewer --workers"
        )
        return EXIT_REFUSED
    except FSANetError as error:  # meant for the user; anything else is a bug: it keeps its traceback
        log.error("%s", error)
        return EXIT_REFUSED
    except OSError as error:  # a full disk while writing the reports
        log.error("%s", error)
        return EXIT_REFUSED
    hce_rule = None if args.no_hce else args.hce_rule
    sys.stdout.write(format_table(results, hce_rule) + "\n" + provenance_line(provenance(hce_rule)) + "\n")
    log.info(
        "wrote %s, %s, %s%s",
        paths["md"],
        paths["csv"],
        paths["json"],
        f" and {len(paths.get('curves', []))} curve plots" if paths.get("curves") else "",
    )
    return 0


if __name__ == "__main__":
    from utils.common.heap import keep_freed_memory

    keep_freed_memory()  # DIS-sized temporaries reuse freed pages (utils/common/heap.py); this process only
    sys.exit(main())
