"""What ``agentperf history`` prints: a table per machine, change point lines, or JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from .series import Series, change_text, describe


def _trend_text(series: Series) -> str:
    trend = series.trend
    if trend is None:
        return "flat"
    if math.isinf(trend):
        return "from 0"
    return f"{trend * 100:+.0f}%"


def table(all_series: Sequence[Series]) -> str:
    """One table per machine (test and run, metric, sessions, latest value, trend, change
    points), each change point on its own line under it."""
    if not all_series:
        return "no history to show (no session matches)"
    out: list[str] = []
    for machine in dict.fromkeys(s.machine for s in all_series):
        mine = [s for s in all_series if s.machine == machine]
        last = max(p.created for s in mine for p in s.points)
        out.append(f"machine {machine}: latest session {last:%Y-%m-%d %H:%M} UTC")
        rows = [
            [
                s.label,
                s.metric.key,
                len(s.points),
                s.fmt(s.latest.value),
                s.sparkline(),
                _trend_text(s),
                len(s.change_points),
            ]
            for s in mine
        ]
        headers = ["test [run]", "metric", "sessions", "latest", "last 20", "trend", "changes"]
        out.append(tabulate(rows, headers=headers, disable_numparse=True))
        lines = [f"  {s.label}: {describe(s, cp)}" for s in mine for cp in s.change_points]
        if lines:
            out.append("change points:")
            out += lines
        out.append("")
    return "\n".join(out).rstrip("\n")


def as_json(all_series: Sequence[Series]) -> dict[str, Any]:
    """Every series with its points and change points, JSON-ready."""
    return {
        "format": "pytest-agentperf-history-report",
        "series": [
            {
                "machine": s.machine,
                "test": s.test,
                "run": s.run,
                "metric": s.metric.key,
                "unit": s.metric.unit.value,
                "latest": s.latest.value,
                "trend": None if s.trend is None or math.isinf(s.trend) else s.trend,
                "points": [
                    {
                        "created": p.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "commit": p.commit,
                        "value": p.value,
                    }
                    for p in s.points
                ],
                "change_points": [
                    {
                        "index": cp.index,
                        "created": s.points[cp.index].created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "commit": s.points[cp.index].commit,
                        "before": cp.before,
                        "after": cp.after,
                        "change": None if math.isinf(cp.change) else cp.change,
                        "change_text": change_text(cp),
                        "p_value": cp.p_value,
                    }
                    for cp in s.change_points
                ],
            }
            for s in all_series
        ],
    }
