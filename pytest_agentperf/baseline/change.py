"""One metric of a run against its baseline run: the verdict words and the ``MetricChange``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from ..units import Unit, format_value

CONFIDENCE = 0.95
"""Two-sided confidence of the intervals; REGRESSED needs the lower 2.5 % bound above the limit."""


class Status(str, Enum):
    """Outcome of a comparison, for a metric or a whole run."""

    REGRESSED = "REGRESSED"
    INCONCLUSIVE = "INCONCLUSIVE"
    IMPROVED = "IMPROVED"
    UNCHANGED = "UNCHANGED"
    NEW = "NEW"
    NOT_COMPARABLE = "NOT COMPARABLE"

    def __str__(self) -> str:
        return self.value

    @property
    def severity(self) -> int:
        """Order of the verdicts of compared metrics: the run takes its worst metric's."""
        return _SEVERITY.get(self, 0)


_SEVERITY = {Status.REGRESSED: 3, Status.INCONCLUSIVE: 2, Status.IMPROVED: 1}


class ChangeKind(str, Enum):
    """How a change is measured: now / baseline, or now - baseline (for rates)."""

    RATIO = "ratio"
    DIFFERENCE = "difference"
    BRACKET = "bracket"
    """A capacity search's bracket against the baseline's (``baseline.capacity``): the change
    is the ratio of the max rates, the verdict whether the brackets overlap, ``note`` says
    both brackets."""


@dataclass(frozen=True)
class MetricChange:
    """One metric now against the baseline.

    ``change`` is now / baseline for a ``RATIO``, now - baseline for a ``DIFFERENCE``;
    ``low``/``high`` bound it with ``CONFIDENCE`` (None without an interval).
    """

    key: str
    """The metric's key in ``Comparison.metrics`` ("p95", "tokens", ...)."""
    name: str
    """What it is, in words ("p95 latency", "tokens per call")."""
    kind: ChangeKind
    unit: Unit
    """How its values are written (seconds, a percentage, dollars, a count)."""
    baseline: float
    current: float
    change: float
    low: float | None
    high: float | None
    status: Status
    limit: float
    note: str | None = None
    """Why the status is what it is when a rule beyond the interval decided (e.g. busy)."""

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("text", "change_text")

    @property
    def text(self) -> str:
        """One line for a failure message: baseline vs now, change, interval, verdict."""
        base, cur = format_value(self.baseline, self.unit), format_value(self.current, self.unit)
        if self.kind is ChangeKind.BRACKET:  # no interval, no tolerance: the brackets decide
            return f"{self.name} {base} -> {cur} ({self.note}): {self.status.value}"
        text = f"{self.name} {base} -> {cur}: {format_change(self)}"
        if self.low is not None and self.high is not None:
            low, high = _fmt(self.kind, self.low), _fmt(self.kind, self.high)
            text += f" ({CONFIDENCE:.0%} CI {low} to {high})"
        text = f"{text} {self.status.value}, tolerance {_tolerance_text(self)}"
        return f"{text} ({self.note})" if self.note else text

    @property
    def change_text(self) -> str:
        """The change with its interval, short, for tables: "+12% [+5%, +20%]"."""
        return format_change(self, interval=True)


def _fmt(kind: ChangeKind, value: float) -> str:
    if kind is ChangeKind.DIFFERENCE:
        return f"{round(value * 100, 1) + 0.0:+.1f} pp"
    if not math.isfinite(value):
        return "+inf%"
    return f"{round((value - 1) * 100):+d}%" if value < 2 else f"x{value:.3g}"


def _tolerance_text(m: MetricChange) -> str:
    if m.kind is ChangeKind.DIFFERENCE:
        return f"+-{m.limit * 100:g} pp"
    return f"+-{m.limit * 100:g}%"


def format_change(m: MetricChange | None, *, interval: bool = False) -> str:
    """Short text of a change for tables: "+12%", "x2.5", "+1.5 pp"; "-" when absent."""
    if m is None:
        return "-"
    text = _fmt(m.kind, m.change)
    if interval and m.low is not None and m.high is not None:
        text += f" [{_fmt(m.kind, m.low)}, {_fmt(m.kind, m.high)}]"
    return text


def difference_status(diff: float, low: float, high: float, limit: float) -> Status:
    """The verdict of a difference (an error rate's) against ``limit``: REGRESSED when the
    whole interval lies above it, INCONCLUSIVE when only the estimate does, IMPROVED when the
    whole interval lies below ``-limit``, else UNCHANGED."""
    if low > limit:
        return Status.REGRESSED
    if diff > limit:
        return Status.INCONCLUSIVE
    if high < -limit:
        return Status.IMPROVED
    return Status.UNCHANGED


def ratio_status(estimate: float, low: float | None, high: float | None, limit: float) -> Status:
    """The verdict of a ratio against ``1 + limit``: REGRESSED when the whole interval lies
    above it, INCONCLUSIVE when only the estimate does, IMPROVED when the whole interval lies
    below ``1 / (1 + limit)`` (the mirror image on a log scale), else UNCHANGED. Without an
    interval the estimate alone decides."""
    low = estimate if low is None else low
    high = estimate if high is None else high
    if low > 1.0 + limit:
        return Status.REGRESSED
    if estimate > 1.0 + limit:
        return Status.INCONCLUSIVE
    if high < 1.0 / (1.0 + limit):
        return Status.IMPROVED
    return Status.UNCHANGED
