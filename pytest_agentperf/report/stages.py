"""The stages table: each stage of a ramped run (``stages=``) on its own row, shared by the
terminal summary and the Markdown summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tabulate import tabulate

from ..units import format_seconds

if TYPE_CHECKING:
    from ..record import RunRecord
    from ..results import PerfResult

HEADERS = ("stages", "#", "time", "target", "calls", "thru", "p50", "p95", "p99", "err", "budgets")


def _level(value: float, result: PerfResult) -> str:
    return f"{value:g}/s" if result.shape.rate is not None else f"{value:g} workers"


def _seconds(value: float | None) -> str:
    return "-" if value is None else format_seconds(value)


def rows(records: Sequence[RunRecord]) -> list[list[str]]:
    """A row per stage of every ramped run."""
    out = []
    for r in records:
        result = r.result
        for s in result.stages:
            if s.target_from == s.target_to:
                target = _level(s.target_to, result)
            else:
                target = f"{s.target_from:g} -> {_level(s.target_to, result)}"
            broken = [b.name for b in s.budgets if not b.passed]
            verdict = ("broken: " + ", ".join(broken)) if broken else ("held" if s.budgets else "")
            out.append(
                [
                    r.label if s.index == 0 else "",
                    str(s.index),
                    f"{s.start:g}-{s.end:g} s",
                    target,
                    str(s.calls),
                    f"{s.throughput:.3g}/s",
                    _seconds(s.p50),
                    _seconds(s.p95),
                    _seconds(s.p99),
                    str(s.errors),
                    verdict,
                ]
            )
    return out


def render(records: Sequence[RunRecord]) -> str:
    """The terminal's stages table; "" without a ramped run."""
    table = rows(records)
    if not table:
        return ""
    return tabulate(table, headers=HEADERS, tablefmt="simple", disable_numparse=True)
