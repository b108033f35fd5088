"""The DIS metric table with pysodmetrics (``eval.py`` is the CLI; reports in ``utils.evaluation.reports``).

Per set and method: maxFβ and mean Fβ (β² = 0.3, over 256 thresholds, per-image
curves averaged), weighted Fβ, MAE, Sα (α = 0.5), mean and max Eφ, and HCEγ
(relax 5, epsilon 2.0) under a binarisation rule (``utils.evaluation.hce``: IS-Net's
``> 128`` by default, the benchmark's definition), and BiRefNet's boundary metrics mBA,
maxBIoU and meanBIoU (``utils.evaluation.boundary``). "Overall" is the plain mean
of DIS-TE1..4, metric by metric, as the published DIS tables report it; its
``num`` is the sum.

:data:`METRICS` is the metric table, the one owner of every metric fact: an entry
(:class:`MetricSpec`) names the object that computes it (``step``/``get_results``,
:mod:`utils.evaluation.pair_metrics`), the table keys it reports, which direction is
better, the decimals shown and its model-card id. The report columns and arrows, the
Overall row, results.json's ``metrics`` entry (read by the model card) and the docs are
derived from it; :func:`register_metric` adds one (``docs/extending.md``). Scoring whole
sets of predictions: ``utils.evaluation.scoring``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from utils.common.logs import get_logger
from utils.common.tables import add_entry
from utils.evaluation.pair_metrics import (
    BoundaryIoUCurve,
    EMeasure,
    FMeasure,
    HumanCorrection,
    MeanAbsoluteError,
    MeanBoundaryAccuracy,
    Pair,
    PairMetric,
    SMeasure,
    WeightedFMeasure,
)
from utils.evaluation.pairs import MaskQuantities

PathLike = Union[str, os.PathLike]
log = get_logger(__name__)

OVERALL = "Overall"
#: what the Overall row is, for reports.
OVERALL_TEXT = "Overall = plain mean of DIS-TE1..4 per metric (num: their sum); not all TE images pooled"

Results = Dict[str, Dict[str, Dict[str, float]]]  # {method: {set: {metric: value}}}
Curves = Dict[str, Dict[str, Dict[str, np.ndarray]]]  # {method: {set: {curve: values}}}


@dataclass(frozen=True)
class MetricOptions:
    """What eval.py's flags choose about the metrics: the HCE rule (None: no HCE) and whether
    the boundary metrics (mBA, BIoU) are computed."""

    hce_rule: Optional[str] = "isnet"
    boundary: bool = True


@dataclass(frozen=True)
class MetricSpec:
    """One entry of the metric table.

    Args:
        name: its short name (``only=`` and the per-chunk dicts use it).
        make: ``MetricOptions -> PairMetric``, or ``None`` when the options leave it out.
        keys: the table keys its ``get_results()`` returns, in column order.
        better: ``"higher"`` or ``"lower"`` (the report's arrow).
        digits: decimals shown in the Markdown table and the model card.
        card: ``{table key: Hub metric id}`` of the keys the model card shows.
        summary: one line for the docs.
    """

    name: str
    make: Callable[[MetricOptions], Optional[PairMetric]]
    keys: Tuple[str, ...]
    better: str
    digits: int = 3
    card: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.keys:
            problems.append("at least one table key")
        if self.better not in ("higher", "lower"):
            problems.append("better 'higher' or 'lower'")
        if set(self.card) - set(self.keys):
            problems.append(f"card keys among {self.keys}")
        if not callable(self.make):
            problems.append("a callable make")
        if problems:
            raise ValueError(f"metric {self.name!r}: the entry needs {', '.join(problems)}")


#: the metric table: name -> spec, in column order.
METRICS: Dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec, *, replace: bool = False) -> MetricSpec:
    """Add ``spec`` to the table (``replace=True`` to redefine a name); its keys must be new."""
    taken = {k for name, other in METRICS.items() if name != spec.name for k in other.keys}
    if taken & set(spec.keys):
        raise ValueError(f"metric {spec.name!r}: table keys {sorted(taken & set(spec.keys))} belong to another entry")
    return add_entry(METRICS, spec.name, spec, "metric", replace)


def metric_keys() -> Tuple[str, ...]:
    """Every table key, in column order."""
    return tuple(k for spec in METRICS.values() for k in spec.keys)


def spec_of(key: str) -> MetricSpec:
    """The entry that reports table key ``key``."""
    for spec in METRICS.values():
        if key in spec.keys:
            return spec
    raise KeyError(key)


class _LiveKeys(Sequence):
    """:func:`metric_keys` as a sequence that follows the table (the older ``METRIC_KEYS``)."""

    def __getitem__(self, index):
        return metric_keys()[index]

    def __len__(self) -> int:
        return len(metric_keys())

    def __iter__(self) -> Iterator[str]:
        return iter(metric_keys())

    def __repr__(self) -> str:
        return repr(metric_keys())


METRIC_KEYS: Sequence[str] = _LiveKeys()


def columns() -> Dict[str, Dict[str, Any]]:
    """``{table key: {"better", "digits", "card"}}``: what reports and results.json say of each key."""
    return {
        key: {"better": spec.better, "digits": spec.digits, "card": spec.card.get(key)}
        for spec in METRICS.values()
        for key in spec.keys
    }


register_metric(
    MetricSpec(
        "fm",
        lambda o: FMeasure(),
        ("maxFm", "meanFm"),
        "higher",
        card={"maxFm": "max-f-measure"},
        summary="Fβ (β² = 0.3) over 256 thresholds: the mean curve's max and mean",
    )
)
register_metric(
    MetricSpec(
        "wfm", lambda o: WeightedFMeasure(), ("wFm",), "higher", card={"wFm": "weighted-f-measure"}, summary="weighted Fβ"
    )
)
register_metric(MetricSpec("mae", lambda o: MeanAbsoluteError(), ("MAE",), "lower", card={"MAE": "mae"}, summary="MAE"))
register_metric(MetricSpec("sm", lambda o: SMeasure(), ("Sm",), "higher", card={"Sm": "s-measure"}, summary="Sα (α = 0.5)"))
register_metric(
    MetricSpec(
        "em",
        lambda o: EMeasure(),
        ("meanEm", "maxEm"),
        "higher",
        card={"meanEm": "e-measure"},
        summary="Eφ over 256 thresholds: the mean curve's mean and max",
    )
)
register_metric(
    MetricSpec(
        "hce",
        lambda o: HumanCorrection(o.hce_rule) if o.hce_rule is not None else None,
        ("HCE",),
        "lower",
        digits=0,
        card={"HCE": "hce"},
        summary="HCEγ (relax 5, epsilon 2.0) under --hce_rule",
    )
)
register_metric(
    MetricSpec(
        "mba",
        lambda o: MeanBoundaryAccuracy() if o.boundary else None,
        ("mBA",),
        "higher",
        summary="mBA, BiRefNet's boundary accuracy",
    )
)
register_metric(
    MetricSpec(
        "biou",
        lambda o: BoundaryIoUCurve() if o.boundary else None,
        ("maxBIoU", "meanBIoU"),
        "higher",
        summary="boundary IoU over 256 thresholds: the mean curve's max and mean",
    )
)


def new_metrics(
    hce_rule: Optional[str] = "isnet", only: Optional[Sequence[str]] = None, boundary: bool = True
) -> Dict[str, PairMetric]:
    """Fresh metric objects of the table for one (method, set); ``hce_rule=None`` leaves HCE
    out, ``boundary=False`` mBA and BIoU, ``only`` keeps those names (``fm``, ``wfm``, ``mae``,
    ``sm``, ``em``, ``hce``, ``mba``, ``biou`` and any registered)."""
    options = MetricOptions(hce_rule, boundary)
    made = {name: spec.make(options) for name, spec in METRICS.items() if only is None or name in only}
    return {name: metric for name, metric in made.items() if metric is not None}


def step_metrics(
    metrics: Mapping[str, PairMetric], pred: np.ndarray, gt: np.ndarray, mask: Optional[MaskQuantities] = None
) -> None:
    """Step every metric on one (8-bit prediction, 8-bit mask) pair of equal size; ``mask`` is
    the mask's :class:`utils.evaluation.pairs.MaskQuantities` (shared by every method scored on
    it), built here when not given."""
    pair = Pair(pred, gt, mask)
    for metric in metrics.values():
        metric.step(pair)


#: the older name of :func:`step_metrics`
add_pair = step_metrics


def merge_metrics(parts: Sequence[Dict[str, PairMetric]]) -> Dict[str, PairMetric]:
    """Append the per-image results of several chunks (in order) to the first's."""
    merged = parts[0]
    for part in parts[1:]:
        for key, metric in part.items():
            merged[key].merge(metric)
    return merged


def pair_count(metrics: Mapping[str, PairMetric]) -> int:
    """How many pairs the metrics were stepped on."""
    return max((len(metric) for metric in metrics.values()), default=0)


def summarize(metrics: Mapping[str, PairMetric]) -> Tuple[Dict[str, float], Dict[str, np.ndarray]]:
    """``({table key: value}, {curve: 256 values})`` in the table's order, unrounded."""
    values: Dict[str, float] = {}
    curves: Dict[str, np.ndarray] = {}
    for metric in metrics.values():
        values.update(metric.get_results())
        curves.update(metric.get_curves())
    return {k: values[k] for k in metric_keys() if k in values}, curves


def markdown_table() -> str:
    """The docs table of :data:`METRICS` (docs/extending.md shows it)."""
    lines = ["| name | table keys | better | decimals | model-card id | what it is |", "|---|---|---|---|---|---|"]
    for spec in METRICS.values():
        card = ", ".join(f"`{v}`" for v in spec.card.values()) or "–"
        keys = ", ".join(f"`{k}`" for k in spec.keys)
        lines.append(f"| `{spec.name}` | {keys} | {spec.better} | {spec.digits} | {card} | {spec.summary} |")
    return "\n".join(lines)
