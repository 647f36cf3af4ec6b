"""The capacity table: each capacity search's latency-versus-load curve, one row per step,
shared by the terminal summary and the Markdown summary (``agentperf.capacity``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from ..units import Unit, format_seconds, format_value

if TYPE_CHECKING:
    from ..record import RunRecord
    from ..results import Capacity

HEADERS = ("capacity search", "rate", "thru", "p50", "p95", "p99", "err", "SLO")


def _rate(value: float | None) -> str:
    return "-" if value is None else format_value(value, Unit.PER_SECOND)


def _seconds(value: float | None) -> str:
    return "-" if value is None else format_seconds(value)


def found_line(label: str, cap: Capacity) -> str:
    """One line saying what the search found, e.g. ``max rate 47.6/s (fails at 56.6/s)``."""
    slo = ", ".join(
        f"{name} <= {format_value(limit, _unit(name))}" for name, limit in cap.slo.items()
    )
    if cap.max_rate is None:
        found = f"no rate held (the start {_rate(cap.first_failing)} failed)"
    elif cap.first_failing is None:
        found = f"max rate >= {_rate(cap.max_rate)} (no step failed; stopped at the limit)"
    else:
        found = f"max rate {_rate(cap.max_rate)} (first failing {_rate(cap.first_failing)})"
    return f"{label}: {found} for {slo}; stopped: {cap.stopped}"


def against_baseline(record: RunRecord) -> str:
    """What the comparison with the baseline's search said, e.g. ``against the baseline:
    REGRESSED, capacity 47.6/s -> 30.1/s (baseline bracket 47.6-52.4/s, now 28.7-30.1/s)``;
    "" when the search was not compared."""
    comp = record.comparison
    if comp is None:
        return ""
    change = comp.get("capacity")
    if change is not None:
        return f"against the baseline: {change.text}"
    reasons = "; ".join(comp.messages)
    return f"against the baseline: {comp.status.value}" + (f" ({reasons})" if reasons else "")


def found_text(record: RunRecord) -> str:
    """``found_line`` of the record's search, then what the baseline comparison said."""
    assert record.result.capacity is not None
    line = found_line(record.label, record.result.capacity)
    verdict = against_baseline(record)
    return f"{line}; {verdict}" if verdict else line


def _unit(name: str) -> Unit:
    from ..budgets import BUDGETS

    return BUDGETS[name].unit


def rows(records: Sequence[RunRecord]) -> list[list[str]]:
    """A row per step of every capacity search, in rate order; the knee (``max_rate``) is
    marked ``<- knee``."""
    out = []
    for r in records:
        cap = r.result.capacity
        if cap is None:
            continue
        for i, p in enumerate(cap.curve):
            verdict = "held" if p.held else "broken"
            if not p.decided:
                verdict += " (point estimate)"
            if cap.max_rate is not None and p.rate == cap.max_rate:
                verdict += " <- knee"
            out.append(
                [
                    r.label if i == 0 else "",
                    _rate(p.rate),
                    _rate(p.throughput),
                    _seconds(p.p50),
                    _seconds(p.p95),
                    _seconds(p.p99),
                    f"{p.errors}/{p.requests}",
                    verdict,
                ]
            )
    return out


def render(records: Sequence[RunRecord]) -> str:
    """The terminal's capacity table and a line per search with what it found; "" without
    a capacity search."""
    table = rows(records)
    if not table:
        return ""
    lines = [tabulate(table, headers=HEADERS, tablefmt="simple", disable_numparse=True)]
    lines += [found_text(r) for r in records if r.result.capacity is not None]
    return "\n".join(lines)
