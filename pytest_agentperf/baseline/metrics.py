"""The gated metrics: what the regression gate compares, one ``GatedMetric`` entry each.

Each entry says how its metric is judged (``judge``), what figure of a run the baseline file
keeps for it (``stored_as`` and ``measure``, for metrics judged on a mean per call) and the
terminal column that shows its change. ``compare`` runs every entry of ``METRICS``; the
baseline store writes and reads the ``stored_as`` figures; the terminal table makes one column
per entry with a ``column``. Adding a gated metric is one entry here.

Latency (p50, p95): the ratio now / baseline with a seeded block-bootstrap interval
(``stats.ratio_ci``). Error rate: Newcombe's interval on the difference of the two rates
against an absolute tolerance. Tokens, cost and CPU time per call: the ratio of the means
(no interval: only means are recorded); CPU time counts only when the change is material.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..results import FloatArray, PerfResult
from ..stats import proportion_diff_ci, ratio_ci
from ..units import Unit
from .change import ChangeKind, MetricChange, Status, difference_status, ratio_status

if TYPE_CHECKING:
    from .store import BaselineRun

RESOLUTION = 1e-6
"""Latencies are compared at microsecond resolution (as stored in the baseline)."""
CPU_BUSY_ALLOWANCE = 0.15
"""On a busy machine CPU time per call regresses only above (1 + tolerance) x 1.15: busy
neighbours (hyperthread siblings, caches) stretch CPU time too, though far less than wall time."""


@dataclass(frozen=True)
class LatencySides:
    """Both runs' latency samples as the gate compares them, prepared once per comparison."""

    current: FloatArray
    baseline: FloatArray
    baseline_in_order: bool
    min_block: tuple[int, int]
    """Calls in flight together on each side: the bootstrap's shortest block (Little's law)."""


@dataclass(frozen=True)
class Sides:
    """What a judge sees: this run, its baseline run, and the comparison's settings."""

    current: PerfResult
    baseline: BaselineRun
    tolerance: float
    error_tolerance: float
    confidence: float
    resamples: int
    seed: int
    busy: str | None
    """"machine busy: ..." when this run saw clearly more contention, else None."""
    latency: LatencySides | None
    """None when either side had no successful call."""


Judge = Callable[[Sides, "GatedMetric"], "MetricChange | None"]


@dataclass(frozen=True)
class GatedMetric:
    """One metric the gate compares; see the module docstring."""

    key: str
    """Key in ``Comparison.metrics`` and in the JSON (``"p95"``, ``"tokens"``)."""
    judge: Judge
    """Its verdict for a run against its baseline run; None when it cannot be compared."""
    column: str | None = None
    """Header of its change's column in the terminal table; None: no column."""
    stored_as: str | None = None
    """Field of a baseline entry holding the figure ``measure`` gives (e.g. "tokens_per_call")."""
    measure: Callable[[PerfResult], float | None] | None = None
    """That figure of a run, as saved in the baseline; None when unknown."""
    rounding: Callable[[float], float] = lambda v: float(f"{v:.6g}")
    """How the baseline file rounds that figure (default: 6 significant digits)."""
    one_sided: str | None = None
    """When set, a figure known on one side only is flagged, naming it with this text."""
    wall_time: bool = False
    """A wall-time metric: contention can stretch it (``comparison.judge_contention``)."""


def latency(q: float, seed_offset: int) -> Judge:
    """Judge of the ``q`` quantile of latency (0-1)."""

    def judge(s: Sides, metric: GatedMetric) -> MetricChange | None:
        if s.latency is None:
            return None
        # both sides at the baseline file's resolution, or µs-fast agents would differ by rounding
        cur = np.maximum(np.round(s.latency.current, 6), RESOLUTION)
        base = np.maximum(np.round(s.latency.baseline, 6), RESOLUTION)
        estimate, low, high = ratio_ci(
            cur,
            base,
            q,
            confidence=s.confidence,
            resamples=s.resamples,
            seed=s.seed + seed_offset,
            current_in_order=True,
            baseline_in_order=s.latency.baseline_in_order,
            current_min_block=s.latency.min_block[0],
            baseline_min_block=s.latency.min_block[1],
        )
        return MetricChange(
            key=metric.key,
            name=f"p{q * 100:g} latency",
            kind=ChangeKind.RATIO,
            unit=Unit.SECONDS,
            baseline=float(np.quantile(base, q)),
            current=float(np.quantile(cur, q)),
            change=estimate,
            low=low,
            high=high,
            status=ratio_status(estimate, low, high, s.tolerance),
            limit=s.tolerance,
        )

    return judge


def error_rate(s: Sides, metric: GatedMetric) -> MetricChange | None:
    """Difference of the error rates, with Newcombe's interval, against an absolute limit."""
    result, base, limit = s.current, s.baseline, s.error_tolerance
    if result.requests <= 0 or base.requests <= 0:
        return None
    diff, low, high = proportion_diff_ci(
        result.errors, result.requests, base.errors, base.requests, s.confidence
    )
    status = difference_status(diff, low, high, limit)
    return MetricChange(
        key=metric.key,
        name="error rate",
        kind=ChangeKind.DIFFERENCE,
        unit=Unit.FRACTION,
        baseline=base.errors / base.requests,
        current=result.errors / result.requests,
        change=diff,
        low=low,
        high=high,
        status=status,
        limit=limit,
    )


def _ratio(base: float, cur: float) -> float:
    return cur / base if base > 0 else (1.0 if cur <= 0 else math.inf)


def mean_per_call(name: str, unit: Unit) -> Judge:
    """Judge of a mean per call the baseline keeps (``metric.stored_as``): the ratio of the
    means against the tolerance."""

    def judge(s: Sides, metric: GatedMetric) -> MetricChange | None:
        assert metric.measure is not None and metric.stored_as is not None
        base = s.baseline.figures.get(metric.stored_as)
        cur = metric.measure(s.current)
        if base is None or cur is None or not math.isfinite(base) or not math.isfinite(cur):
            return None
        ratio = _ratio(base, cur)
        status = ratio_status(ratio, None, None, s.tolerance)
        return MetricChange(
            metric.key,
            name,
            ChangeKind.RATIO,
            unit,
            base,
            cur,
            ratio,
            None,
            None,
            status,
            s.tolerance,
        )

    return judge


def cpu_per_call(s: Sides, metric: GatedMetric) -> MetricChange | None:
    """CPU time per call: ratio of the means; a rise counts only when it is material, i.e.
    when it alone would slow the baseline's median call by more than the tolerance, and on a
    busy machine only above (1 + tolerance) x (1 + ``CPU_BUSY_ALLOWANCE``)."""
    b, c = s.baseline.figures.get("cpu_per_call"), s.current.cpu.per_call
    if b is None or c is None or not math.isfinite(b) or not math.isfinite(c):
        return None
    tolerance, busy = s.tolerance, s.busy
    ratio = _ratio(b, c)
    material = abs(c - b) > tolerance * (s.baseline.latency.p50 or 0.0)
    limit = (1.0 + tolerance) * (1.0 + CPU_BUSY_ALLOWANCE) if busy else 1.0 + tolerance
    if ratio > limit and material:
        status = Status.REGRESSED
    elif ratio < 1.0 / (1.0 + tolerance) and material:
        status = Status.IMPROVED
    else:
        status = Status.UNCHANGED
    note = busy if busy and ratio > 1.0 + tolerance and status is not Status.REGRESSED else None
    return MetricChange(
        metric.key,
        "cpu per call",
        ChangeKind.RATIO,
        Unit.SECONDS,
        b,
        c,
        ratio,
        None,
        None,
        status,
        tolerance,
        note,
    )


METRICS: tuple[GatedMetric, ...] = (
    GatedMetric("p50", latency(0.50, 0), column="Δp50 (95% CI)", wall_time=True),
    GatedMetric("p95", latency(0.95, 1), column="Δp95 (95% CI)", wall_time=True),
    GatedMetric("error_rate", error_rate),
    GatedMetric(
        "tokens",
        mean_per_call("tokens per call", Unit.COUNT),
        column="Δtok",
        stored_as="tokens_per_call",
        measure=lambda r: r.usage.per_call.total_tokens,
        rounding=lambda v: round(v, 3),
        one_sided="token usage",
    ),
    GatedMetric(
        "cost",
        mean_per_call("cost per call", Unit.USD),
        column="Δ$",
        stored_as="cost_per_call",
        measure=lambda r: r.cost.per_call,
        rounding=lambda v: float(f"{v:.8g}"),
        one_sided="cost",
    ),
    GatedMetric(
        "cpu",
        cpu_per_call,
        column="Δcpu",
        stored_as="cpu_per_call",
        measure=lambda r: r.cpu.per_call,
    ),
)
"""Every gated metric, in the order they are judged and listed."""

STORED = tuple(m for m in METRICS if m.stored_as is not None and m.measure is not None)
"""The metrics whose figure per call the baseline file keeps, in file order."""
STORED_FIELDS: tuple[str, ...] = tuple(m.stored_as for m in STORED if m.stored_as is not None)
"""Their field names in a baseline entry."""


def stored_figures(result: PerfResult) -> dict[str, float | None]:
    """The figures of ``result`` the baseline keeps, by field name, rounded as in the file."""
    out: dict[str, float | None] = {}
    for m in STORED:
        assert m.stored_as is not None and m.measure is not None
        value = m.measure(result)
        finite = value is not None and math.isfinite(value)
        out[m.stored_as] = m.rounding(float(value)) if finite and value is not None else None
    return out
