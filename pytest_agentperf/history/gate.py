"""The history gate (``--agentperf-compare=history``): a run against the last N sessions.

Instead of one baseline run, each figure is judged against its values in the last N sessions
of this machine (same test, run and load shape), so the tolerance follows the run-to-run
variation measured for that very test. For latency, tokens and cost (on a log scale, so a
change and its undoing weigh alike), with mean m and standard deviation s of the N past
values:

- the tolerance is the larger of ``--agentperf-tolerance`` and the one-sided 99 % Student t
  prediction bound of one new run, t(0.99, N-1) * s * sqrt(1 + 1/N): an unchanged run exceeds
  it 1 % of the time;
- the interval of the ratio now / exp(m) is that of the history's mean (95 %, t(0.975, N-1)
  * s / sqrt(N)): the current run's own noise is in the tolerance already;
- the verdict follows the baseline gate's rule (``change.ratio_status``): REGRESSED when the
  whole interval lies above 1 + tolerance, INCONCLUSIVE when only the estimate does.

Past sessions far from the others (beyond 5 MADs of the median: a regressed or disturbed
session) are left out of m and s, so one bad session does not widen the tolerance.

Error rate (counts, so the history is pooled): Newcombe's interval on the difference now -
pooled rate, against at least 1 percentage point, more when sessions vary beyond counting.
Fewer than ``MIN_SESSIONS`` comparable past sessions: the run is NEW (not judged).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ..baseline.change import ChangeKind, MetricChange, Status, difference_status, ratio_status
from ..baseline.comparison import (
    DEFAULT_TOLERANCE,
    ERROR_RATE_TOLERANCE,
    Comparison,
    not_compared,
)
from ..baseline.store import shape_dict
from ..record import RunRecord
from ..results import FloatArray, PerfResult
from ..settings import Settings
from ..stats import proportion_diff_ci
from ..units import Unit
from .store import History, HistoryRun, HistorySession, load_history
from .tdist import t_quantile

DEFAULT_SESSIONS = 20
"""Past sessions a run is judged against (``--agentperf-history-sessions``)."""
MIN_SESSIONS = 5
"""Fewest comparable past sessions needed to judge a run."""
ALPHA = 0.01
"""One-sided level of the learned tolerance: an unchanged run exceeds it this often."""
CONFIDENCE = 0.95


@dataclass(frozen=True)
class GatedFigure:
    """A figure the history gate judges: its key in ``Comparison.metrics`` (the baseline
    gate's, so every report shows it alike), its name in the history file, its words, unit."""

    key: str
    figure: str
    name: str
    unit: Unit
    difference: bool = False


GATED: tuple[GatedFigure, ...] = (
    GatedFigure("p50", "p50", "p50 latency", Unit.SECONDS),
    GatedFigure("p95", "p95", "p95 latency", Unit.SECONDS),
    GatedFigure("error_rate", "error_rate", "error rate", Unit.FRACTION, difference=True),
    GatedFigure("tokens", "tokens_per_call", "tokens per call", Unit.COUNT),
    GatedFigure("cost", "cost_per_call", "cost per call", Unit.USD),
)


@functools.lru_cache(maxsize=256)
def _t(p: float, df: int) -> float:
    """Student's t quantile, cached: a session asks for the same few again and again."""
    return t_quantile(p, df)


OUTLIER_MADS = 5.0
"""A past session further than this many (normal-scaled) MADs from the median is left out."""


def typical_sessions(values: FloatArray) -> FloatArray:
    """``values`` without the sessions far from the median (``OUTLIER_MADS``): one regressed
    or disturbed session must not widen the tolerance of the next ones. Normal noise loses
    about one value in 2000 to this, so the t quantiles stay calibrated."""
    median = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - median)))
    kept: FloatArray = values[np.abs(values - median) <= OUTLIER_MADS * mad]
    return kept


def judge_ratio(
    figure: GatedFigure, past: Sequence[float], current: float | None, tolerance: float
) -> MetricChange | None:
    """``current`` against the ``past`` values of a positive figure (module docstring)."""
    values = np.asarray([v for v in past if v > 0 and math.isfinite(v)], dtype=np.float64)
    if current is None or not math.isfinite(current) or current <= 0:
        return None
    logs = typical_sessions(np.log(values))
    n = int(logs.size)
    if n < MIN_SESSIONS:
        return None
    center, spread = float(logs.mean()), float(logs.std(ddof=1))
    learned = math.expm1(_t(1.0 - ALPHA, n - 1) * spread * math.sqrt(1.0 + 1.0 / n))
    limit = round(max(tolerance, learned), 3)  # shown as a whole percentage
    half = _t(0.5 + CONFIDENCE / 2.0, n - 1) * spread / math.sqrt(n)
    typical = math.exp(center)
    ratio = current / typical
    low, high = ratio * math.exp(-half), ratio * math.exp(half)
    return MetricChange(
        key=figure.key,
        name=figure.name,
        kind=ChangeKind.RATIO,
        unit=figure.unit,
        baseline=typical,
        current=current,
        change=ratio,
        low=low,
        high=high,
        status=ratio_status(ratio, low, high, limit),
        limit=limit,
        note=f"vs the last {n} sessions; run-to-run variation {spread:.1%}",
    )


def binomial_quantile(q: float, n: int, p: float) -> int:
    """The smallest k with P(X <= k) >= q for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for k in range(n + 1):
        total += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * log_p
            + (n - k) * log_q
        )
        if total >= q:
            return k
    return n


def judge_error_rate(
    figure: GatedFigure,
    past: Sequence[tuple[int, int]],
    current: tuple[int, int],
    tolerance: float,
) -> MetricChange | None:
    """The error rate now against the ``past`` sessions' (errors, requests), as a difference.

    The history is pooled into one rate and compared with Newcombe's interval (as the
    baseline gate does, since errors are counts); the tolerance is the larger of
    ``tolerance`` and the one-sided 99 % bound of an unchanged run: the binomial quantile of
    this run's calls at the pooled rate, widened by the variation between sessions beyond
    what counting explains (a provider that fails in bursts)."""
    usable = [(e, n) for e, n in past if n > 0]
    errors, requests = current
    if requests <= 0 or len(usable) < MIN_SESSIONS:
        return None
    k = len(usable)
    rates = np.asarray([e / n for e, n in usable], dtype=np.float64)
    pooled_errors, pooled_requests = sum(e for e, _ in usable), sum(n for _, n in usable)
    pooled = pooled_errors / pooled_requests
    counting = pooled * (1.0 - pooled) / (pooled_requests / k)  # binomial variance of one
    excess = math.sqrt(max(0.0, float(rates.var(ddof=1)) - counting))
    # counts are skewed at low rates: the bound of counting noise is the binomial quantile
    by_counting = binomial_quantile(1.0 - ALPHA, requests, pooled) / requests - pooled
    by_sessions = _t(1.0 - ALPHA, k - 1) * excess * math.sqrt(1.0 + 1.0 / k)
    limit = round(max(tolerance, by_counting + by_sessions), 4)
    diff, low, high = proportion_diff_ci(
        errors, requests, pooled_errors, pooled_requests, CONFIDENCE
    )
    status = difference_status(diff, low, high, limit)
    return MetricChange(
        key=figure.key,
        name=figure.name,
        kind=ChangeKind.DIFFERENCE,
        unit=figure.unit,
        baseline=pooled,
        current=errors / requests,
        change=diff,
        low=low,
        high=high,
        status=status,
        limit=limit,
        note=f"vs the last {k} sessions pooled",
    )


def current_figures(result: PerfResult) -> dict[str, float | None]:
    """The figures of ``result`` the gate judges, by history-file name."""
    return {
        "p50": result.latency.p50,
        "p95": result.latency.p95,
        "tokens_per_call": result.usage.per_call.total_tokens,
        "cost_per_call": result.cost.per_call,
    }


def compare_with_history(
    result: PerfResult,
    past: Sequence[tuple[HistorySession, HistoryRun]],
    *,
    sessions: int = DEFAULT_SESSIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    error_tolerance: float = ERROR_RATE_TOLERANCE,
) -> Comparison:
    """``result`` judged against the newest ``sessions`` of ``past`` (its own run in earlier
    sessions of this machine, oldest first) that had the same load shape and did not end in
    ERROR; NEW when fewer than ``MIN_SESSIONS`` remain."""
    shape = shape_dict(result.shape)
    usable = [(s, r) for s, r in past if dict(r.shape) == shape and r.status != "ERROR"]
    usable = usable[-sessions:]
    reference = f"the last {len(usable)} sessions in the history"
    if len(usable) < MIN_SESSIONS:
        text = (
            f"{len(usable)} earlier sessions of this run with this load shape on this machine "
            f"in the history (at least {MIN_SESSIONS} are needed): not judged"
        )
        return Comparison(Status.NEW, tolerance, messages=(text,), reference=reference)
    now = current_figures(result)
    metrics: dict[str, MetricChange] = {}
    for figure in GATED:
        if figure.difference:
            counts = [(r.errors, r.requests) for _, r in usable]
            current = (result.errors, result.requests)
            change = judge_error_rate(figure, counts, current, error_tolerance)
        else:
            values = [r.figures.get(figure.figure) for _, r in usable]
            known = [v for v in values if v is not None]
            change = judge_ratio(figure, known, now[figure.figure], tolerance)
        if change is not None:
            metrics[figure.key] = change
    status = max(
        (m.status for m in metrics.values()), key=lambda s: s.severity, default=Status.UNCHANGED
    )
    last = usable[-1][0]
    return Comparison(
        status=status,
        tolerance=tolerance,
        metrics=MappingProxyType(metrics),
        messages=tuple(m.text for m in metrics.values()),
        baseline_commit=last.commit,
        baseline_created=last.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        reference=reference,
    )


class HistoryGate:
    """Attaches each run's comparison with the history (an after-run hook of the pipeline);
    the baseline gate's ``check`` then fails a regressed run as usual."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        machine_id: str,
        *,
        sessions: int = DEFAULT_SESSIONS,
        tolerance: float = DEFAULT_TOLERANCE,
        scale: float = 1.0,
    ) -> None:
        self.folder = Path(folder)
        self.machine_id = machine_id
        self.sessions = sessions
        self.tolerance = tolerance
        self.scale = scale
        self._history: History | None = None

    @property
    def history(self) -> History:
        """This machine's sessions, read on first use (every process reads them itself)."""
        if self._history is None:
            self._history = load_history(self.folder, machine=self.machine_id)
        return self._history

    def after_run(self, test_id: str, result: PerfResult, settings: Settings) -> PerfResult:
        if result.capacity is not None:  # a search is compared only with the baseline file
            return result
        if self.scale != 1.0:
            scaled = f"scaled by --agentperf-scale={self.scale:g}: not compared"
            return replace(result, comparison=not_compared(scaled))
        tolerance = settings.tolerance if settings.tolerance is not None else self.tolerance
        key = (test_id, result.name)
        past = [(s, s.runs[key]) for s in self.history.sessions if key in s.runs]
        comparison = compare_with_history(result, past, sessions=self.sessions, tolerance=tolerance)
        return replace(result, comparison=comparison)


_COUNTED = (
    (Status.REGRESSED, "regressed"),
    (Status.IMPROVED, "improved"),
    (Status.INCONCLUSIVE, "inconclusive"),
    (Status.NEW, "new"),
)


def summary_lines(gate: HistoryGate, records: Sequence[RunRecord], shown: str) -> list[str]:
    """Lines under the table: unreadable files, what changed and why, and the counts.
    ``shown`` is how the history folder is named."""
    lines = [f"WARNING: {problem}" for problem in gate.history.problems]
    counts = dict.fromkeys((label for _, label in _COUNTED), 0)
    for r in records:
        comp = r.comparison
        if comp is None or comp.reference is None:
            continue
        for status, label in _COUNTED:
            if comp.status is status:
                counts[label] += 1
        if comp.status in (Status.REGRESSED, Status.INCONCLUSIVE, Status.IMPROVED):
            lines += [
                f"{r.label}: {m.text}" for m in comp.metrics.values() if m.status is comp.status
            ]
    parts = ", ".join(f"{counts[label]} {label}" for _, label in _COUNTED)
    lines.append(
        f"history {shown} (machine {gate.machine_id}, last {gate.sessions} sessions): {parts}"
    )
    return lines
