"""eval.py's outputs: the Markdown table, results.csv, results.json with provenance, and the curves.

Every report names how its numbers were made: the HCE rule, the Overall
definition and the versions of the libraries the metrics depend on (HCE moves
with OpenCV: from 4.13 on ``cv2.approxPolyDP`` measures distance to the segment).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from utils.common.fileio import atomic_write_bytes, atomic_write_text, check_writable
from utils.common.logs import get_logger
from utils.common.ownership import claim_folder
from utils.data.sets import DIS_SETS
from utils.evaluation.hce import HCE_RULE_TEXT
from utils.evaluation.metrics import OVERALL_TEXT, Curves, Results, columns, metric_keys, spec_of
from utils.evaluation.scoring import evaluate

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

#: the report's arrow of each ``better`` direction of the metric table.
ARROWS = {"higher": "↑", "lower": "↓"}


def arrow(key: str) -> str:
    """The header arrow of a table key (from the metric table; none for an unknown key)."""
    try:
        return ARROWS[spec_of(key).better]
    except KeyError:
        return ""


#: the tables eval.py writes in --save_dir.
REPORT_FILES = ("results.md", "results.csv", "results.json")
#: the distributions whose versions the metric values depend on.
METRIC_LIBRARIES = ("pysodmetrics", "scikit-image", "numpy", "scipy")


def opencv_distributions() -> List[str]:
    """Installed distributions that provide the ``cv2`` package (exactly one is expected)."""
    return sorted(set(metadata.packages_distributions().get("cv2", [])))


def provenance(hce_rule: Optional[str]) -> Dict[str, Any]:
    """How a table was made: the HCE rule, the Overall definition and library versions."""
    import cv2

    versions = {}
    for name in METRIC_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["opencv"] = cv2.__version__
    versions["opencv_distributions"] = [f"{d} {metadata.version(d)}" for d in opencv_distributions()]
    versions["python"] = platform.python_version()
    return {
        "hce_rule": hce_rule,
        "hce": HCE_RULE_TEXT[hce_rule] + " (relax 5, epsilon 2.0)" if hce_rule else "HCE not computed (--no_hce)",
        "overall": OVERALL_TEXT,
        "versions": versions,
    }


def provenance_line(info: Dict[str, Any]) -> str:
    """The one line under the Markdown table."""
    v = info["versions"]
    return (
        f"{info['hce']}. {info['overall']}. pysodmetrics {v['pysodmetrics']}, OpenCV {v['opencv']}, "
        f"scikit-image {v['scikit-image']}, numpy {v['numpy']}."
    )


def _rows(results: Results) -> Tuple[List[str], List[List[Any]]]:
    keys = [k for k in metric_keys() if any(k in v for per_set in results.values() for v in per_set.values())]
    header = ["method", "set", "num", *keys]
    rows = [
        [method, set_name, values["num"], *(values.get(k, float("nan")) for k in keys)]
        for method, per_set in results.items()
        for set_name, values in per_set.items()
    ]
    return header, rows


def format_table(results: Results, hce_rule: Optional[str] = None) -> str:
    """A Markdown table (also what the console shows): each key with its arrow and decimals
    from the metric table, the HCE header naming ``hce_rule``."""
    header, rows = _rows(results)
    shown = [h + arrow(h) + (f" ({hce_rule})" if h == "HCE" and hce_rule else "") for h in header]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(header)]
    digits = {key: info["digits"] for key, info in columns().items()}
    for row in rows:
        cells = [str(row[0]), str(row[1]), str(row[2])]
        for name, value in zip(header[3:], row[3:]):
            cells.append(f"{value:.{digits.get(name, 3)}f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_reports(results: Results, save_dir: PathLike, hce_rule: Optional[str] = "isnet") -> Dict[str, Path]:
    """``results.md`` (rounded, with the provenance line), ``results.csv`` (unrounded, an
    ``hce_rule`` column) and ``results.json`` (``{"results": {method: {set: {metric: value}}},
    "metrics": {key: {"better", "digits", "card"}}, "provenance": …}``) in ``save_dir``."""
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    info = provenance(hce_rule)
    paths = {key: save_dir / name for key, name in zip(("md", "csv", "json"), REPORT_FILES)}
    atomic_write_text(paths["md"], format_table(results, hce_rule) + "\n\n" + provenance_line(info) + "\n")
    header, rows = _rows(results)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(header + ["hce_rule"])
    writer.writerows([row[:3] + [repr(float(v)) for v in row[3:]] + [hce_rule or ""] for row in rows])
    atomic_write_text(paths["csv"], table.getvalue())
    shown = {key: info for key, info in columns().items() if key in header}  # what the model card reads
    document = {"results": results, "metrics": shown, "provenance": info}
    atomic_write_text(paths["json"], json.dumps(document, indent=2) + "\n")
    return paths


def _curve_sets(curves: Curves) -> List[str]:
    return sorted(
        {s for per_set in curves.values() for s in per_set},
        key=lambda s: (DIS_SETS.index(s) if s in DIS_SETS else len(DIS_SETS), s),
    )


def curve_files(curves: Curves) -> List[str]:
    """The names :func:`plot_curves` writes for ``curves``."""
    return [f"{kind}_{set_name}.png" for set_name in _curve_sets(curves) for kind in ("pr", "fm")]


def plot_curves(curves: Curves, save_dir: PathLike) -> List[Path]:
    """Per set: PR curves and Fβ-threshold curves of every method, as PNG."""
    from matplotlib.figure import Figure  # no pyplot: the process's matplotlib backend is left alone

    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for set_name in _curve_sets(curves):
        for kind in ("pr", "fm"):
            fig = Figure(figsize=(4.5, 4), dpi=120)
            ax = fig.subplots()
            for method, per_set in curves.items():
                if set_name not in per_set:
                    continue
                c = per_set[set_name]
                if kind == "pr":
                    ax.plot(c["recall"], c["precision"], label=method)
                else:
                    ax.plot(np.arange(len(c["fm"])), c["fm"], label=method)
            if kind == "pr":
                ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR curve · {set_name}")
            else:
                ax.set(xlabel="threshold", ylabel="Fβ", xlim=(0, 255), ylim=(0, 1.02), title=f"Fβ curve · {set_name}")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower left" if kind == "pr" else "lower center")
            fig.tight_layout()
            path = save_dir / f"{kind}_{set_name}.png"
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            atomic_write_bytes(path, buffer.getvalue())
            written.append(path)
    return written


def check_opencv() -> None:
    """Warn when the environment's OpenCV would make HCE differ from the published tables."""
    import cv2

    providers = opencv_distributions()
    if len(providers) > 1:
        log.warning(
            "%d OpenCV distributions provide cv2 (%s); which one is imported depends on install order. "
            "Keep only opencv-python-headless (pip uninstall the others, then "
            "pip install --force-reinstall -r requirements.txt)",
            len(providers),
            ", ".join(providers),
        )
    major_minor = tuple(int(x) for x in cv2.__version__.split(".")[:2])
    if major_minor >= (4, 13):
        log.warning(
            "OpenCV %s: from 4.13 on cv2.approxPolyDP changed and HCE differs from the published tables "
            "by up to ±4 per image; requirements.txt pins 4.12",
            cv2.__version__,
        )


def evaluate_to_folder(
    methods: Dict[str, PathLike],
    gt_root: PathLike,
    save_dir: PathLike,
    sets: Optional[Sequence[str]] = None,
    workers: int = 1,
    allow_missing: bool = False,
    hce_rule: Optional[str] = "isnet",
    curves: bool = True,
    progress: bool = True,
    boundary: bool = True,
) -> Tuple[Results, Dict[str, Any]]:
    """eval.py's job: score ``methods`` on the sets under ``gt_root`` and write the tables
    (and curves) to ``save_dir``, which is checked writable before any metric is computed;
    ``boundary=False`` leaves mBA and BIoU out."""
    with claim_folder(save_dir, "eval.py", "--save_dir") as owned:  # one writer; released when done
        owned.record(REPORT_FILES)
        check_writable(save_dir, "--save_dir")
        if hce_rule:
            check_opencv()
        results, set_curves = evaluate(
            methods, gt_root, sets, workers, allow_missing, hce_rule=hce_rule, progress=progress, boundary=boundary
        )
        paths: Dict[str, Any] = dict(write_reports(results, save_dir, hce_rule))
        if curves:
            owned.record(curve_files(set_curves))
            paths["curves"] = plot_curves(set_curves, save_dir)
    return results, paths
