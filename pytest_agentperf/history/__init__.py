"""Run history: every session's results kept per machine, change points, the history gate.

``store`` (the folder and its files), ``changepoints`` (E-Divisive means with a t-test),
``series`` (one metric of one run across sessions), ``gate`` (``--agentperf-compare=history``),
``recorder`` (the session's end), ``view`` and ``page`` (what ``agentperf history`` prints and
draws). See docs/history.md.
"""

from __future__ import annotations

from .changepoints import ChangePoint, change_points
from .gate import HistoryGate, compare_with_history
from .series import METRICS, Detection, HistoryMetric, Series, build_series
from .store import History, HistoryRun, HistorySession, load_history, machine_id, write_session

__all__ = [
    "METRICS",
    "ChangePoint",
    "Detection",
    "History",
    "HistoryGate",
    "HistoryMetric",
    "HistoryRun",
    "HistorySession",
    "Series",
    "build_series",
    "change_points",
    "compare_with_history",
    "load_history",
    "machine_id",
    "write_session",
]
