"""Series of one figure of one run across sessions, with their change points and trend."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..record import run_label
from ..units import Unit, format_value
from .changepoints import (
    DEFAULT_MIN_CHANGE,
    DEFAULT_P,
    DEFAULT_WINDOW,
    ChangePoint,
    change_points,
)
from .store import History, HistorySession, RunKey


@dataclass(frozen=True)
class HistoryMetric:
    """A figure whose change points are looked for: its key in the history file, its name,
    its unit, and whether a rise is bad (a fall of throughput is)."""

    key: str
    name: str
    unit: Unit
    higher_is_worse: bool = True


METRICS: tuple[HistoryMetric, ...] = (
    HistoryMetric("p50", "p50 latency", Unit.SECONDS),
    HistoryMetric("p95", "p95 latency", Unit.SECONDS),
    HistoryMetric("ttft_p95", "TTFT p95", Unit.SECONDS),
    HistoryMetric("error_rate", "error rate", Unit.FRACTION),
    HistoryMetric("throughput", "throughput", Unit.PER_SECOND, higher_is_worse=False),
    HistoryMetric("tokens_per_call", "tokens per call", Unit.COUNT),
    HistoryMetric("cost_per_call", "cost per call", Unit.USD),
)
"""The metrics of ``agentperf history`` and of the session's change-point lines, in order."""
METRIC_KEYS = tuple(m.key for m in METRICS)


def metric(key: str) -> HistoryMetric:
    """The metric named ``key``; ``ValueError`` listing the valid names otherwise."""
    for m in METRICS:
        if m.key == key:
            return m
    raise ValueError(f"unknown metric {key!r}: choose from {', '.join(METRIC_KEYS)}")


@dataclass(frozen=True)
class Point:
    """One session's value of a series."""

    created: datetime
    commit: str | None
    value: float


@dataclass(frozen=True)
class Detection:
    """How change points are looked for: the t-test's threshold, the least relative change,
    the split step's window."""

    p: float = DEFAULT_P
    min_change: float = DEFAULT_MIN_CHANGE
    window: int = DEFAULT_WINDOW


@dataclass(frozen=True)
class Series:
    """One metric of one run on one machine (or on all, when asked), oldest first."""

    machine: str
    test: str
    run: str
    metric: HistoryMetric
    points: tuple[Point, ...]
    change_points: tuple[ChangePoint, ...] = ()

    @property
    def label(self) -> str:
        return run_label(self.test, self.run)

    @property
    def latest(self) -> Point:
        return self.points[-1]

    def values(self) -> list[float]:
        return [p.value for p in self.points]

    def fmt(self, value: float) -> str:
        """A value of this series as text, in its unit."""
        return format_value(value, self.metric.unit)

    @property
    def trend(self) -> float | None:
        """The relative change from the first level to the latest (the means before the
        first change point and after the last); None without a change point."""
        if not self.change_points:
            return None
        first, last = self.change_points[0], self.change_points[-1]
        if first.before == 0.0:
            return None if last.after == 0.0 else math.inf
        return last.after / first.before - 1.0

    def sparkline(self, width: int = 20) -> str:
        """The last ``width`` values as block characters, lowest to highest."""
        values = self.values()[-width:]
        low, high = min(values), max(values)
        bars = "▁▂▃▄▅▆▇█"
        if high - low <= abs(high) * 1e-9:
            return bars[3] * len(values)
        return "".join(bars[round((v - low) / (high - low) * (len(bars) - 1))] for v in values)


def change_text(cp: ChangePoint) -> str:
    """A change point's relative change: "+31%", "-12%", "from 0"."""
    if math.isinf(cp.change):
        return "from 0"
    return f"{cp.change * 100:+.1f}%"


def describe(series: Series, cp: ChangePoint) -> str:
    """One line for a change point: where, before -> after, change, p-value."""
    at = series.points[cp.index]
    commit = f"commit {at.commit[:10]}" if at.commit else "commit unknown"
    worse = (cp.after > cp.before) == series.metric.higher_is_worse
    word = "worse" if worse else "better"
    return (
        f"{series.metric.name} {series.fmt(cp.before)} -> {series.fmt(cp.after)} "
        f"({change_text(cp)}, {word}, p={cp.p_value:.2g}) at {commit}, "
        f"{at.created.strftime('%Y-%m-%d %H:%M')} UTC"
    )


def _points(
    sessions: Iterable[HistorySession], key: RunKey, metric_key: str, since: datetime | None
) -> tuple[Point, ...]:
    out = []
    for s in sessions:
        run = s.runs.get(key)
        if run is None or (since is not None and s.created < since):
            continue
        value = run.figures.get(metric_key)
        if value is not None and math.isfinite(value):
            out.append(Point(s.created, s.commit, value))
    return tuple(out)


def build_series(
    history: History,
    *,
    metrics: Sequence[str] = METRIC_KEYS,
    test: str | None = None,
    since: datetime | None = None,
    all_machines: bool = False,
    detection: Detection | None = None,
) -> list[Series]:
    """Every series of ``history`` (per machine unless ``all_machines``), with change points.

    ``test`` keeps the runs whose label (``nodeid [run]``) contains it; ``since`` drops older
    sessions; ``metrics`` are ``METRICS`` keys. Series with no value are left out.
    """
    how = detection or Detection()
    groups: dict[str, list[HistorySession]] = {}
    for s in history.sessions:
        groups.setdefault("all" if all_machines else s.machine_id, []).append(s)
    out: list[Series] = []
    for machine, sessions in groups.items():
        keys = sorted({k for s in sessions for k in s.runs})
        for key in keys:
            if test and test not in run_label(*key):
                continue
            for metric_key in metrics:
                points = _points(sessions, key, metric_key, since)
                if not points:
                    continue
                found = change_points(
                    [p.value for p in points],
                    p=how.p,
                    min_change=how.min_change,
                    window=how.window,
                )
                out.append(
                    Series(machine, key[0], key[1], metric(metric_key), points, tuple(found))
                )
    return out


def completed_by_last(values: Sequence[float], detection: Detection) -> list[ChangePoint]:
    """The change points that the last value of ``values`` makes: found with it and not
    without it. Only the last two windows are searched (a session's end stays quick)."""
    tail = list(values[-2 * detection.window :])
    offset = len(values) - len(tail)
    p, min_change, window = detection.p, detection.min_change, detection.window
    before = {
        cp.index for cp in change_points(tail[:-1], p=p, min_change=min_change, window=window)
    }
    now = change_points(tail, p=p, min_change=min_change, window=window)
    return [
        ChangePoint(
            cp.index + offset, cp.before, cp.after, cp.stdev_before, cp.stdev_after, cp.p_value
        )
        for cp in now
        if cp.index not in before
    ]
