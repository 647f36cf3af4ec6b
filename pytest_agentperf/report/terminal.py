"""The terminal summary: one table of every run."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from tabulate import tabulate

from ..baseline.comparison import BUSY_FLAG, BUSY_MARGIN
from ..baseline.metrics import METRICS
from ..record import RunRecord, RunStatus
from ..redact import redact
from ..results import LoadShape, Memory, PerfResult, Stats
from ..units import format_seconds
from .protocol import ReportContext


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0%"
    return f"{value * 100:.2g}%" if value < 0.1 else f"{value * 100:.3g}%"


def _load(shape: LoadShape) -> str:
    if shape.rate is not None:
        text = f"{shape.rate:g}/s"
        return text + (f" ≤{shape.concurrency}" if shape.concurrency else "")
    return f"c={shape.concurrency or 1}"


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(value)))  # three significant digits, no 1e-05
    whole, _, frac = f"{value:.{decimals}f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def _rate(value: float) -> str:
    return f"{value:,.0f}/s" if value >= 100 else f"{value:.3g}/s"


def _tokens(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _memory(memory: Memory) -> tuple[str, str]:
    """Peak RSS growth during the run and the leak slope (MB per 1,000 calls)."""
    delta, slope = memory.rss_delta_mb, memory.per_1k_calls
    growth = "-" if delta is None else f"{_mb(delta)} MB"
    return growth, "-" if slope is None else _mb(slope)


def _mb(value: float) -> str:
    if abs(value) < 0.005:
        return "0"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _with_count(stats: Stats, latency: Stats) -> str:
    """A p95 with its sample count beside it when that differs from latency's, so a TTFT
    from 1 stream of 8 calls cannot pass for one from all 8."""
    text = format_seconds(stats.p95)
    n = stats.n
    return f"{text} (n={n})" if n and n != latency.n else text


def _label(record: RunRecord, multi: set[str]) -> str:
    path, sep, rest = record.nodeid.partition("::")
    short = path.rsplit("/", 1)[-1] + sep + rest  # parameters may hold slashes: keep them
    return f"{short} [{record.name}]" if record.nodeid in multi else short


def _status(record: RunRecord) -> str:
    text = record.status.value
    if record.status is RunStatus.FAIL:
        text += " " + ", ".join(record.broken)
    comp = record.comparison
    if comp is not None and comp.busy:
        text += " (busy)"  # measured under clearly more contention than the baseline
    return text


def _cpu(record: RunRecord) -> str:
    """CPU time per call, and its share of the p50 latency when it is large enough to matter."""
    cpu = record.result.cpu
    if cpu.per_call is None:
        return "-"
    text = format_seconds(cpu.per_call)
    share = cpu.share
    return f"{text} ({share:.0%})" if share is not None and share >= 0.1 else text


def _has_memory_budget(record: RunRecord) -> bool:
    return any(b.name.startswith("memory") for b in record.result.budgets)


def _monthly_cost(record: RunRecord) -> str:
    projection = record.cost_projection
    return _money(projection.monthly_cost if projection else None)


def _change_column(key: str) -> Cell:
    def cell(record: RunRecord) -> str:
        comp = record.comparison
        return comp.change_text(key) if comp is not None else "-"

    return cell


Cell = Callable[[RunRecord], str]


def _columns(records: Sequence[RunRecord]) -> list[tuple[str, Cell]]:
    """The table's columns; optional ones only when some run has something to show in them."""

    def any_(pred: Callable[[PerfResult], bool]) -> bool:
        return any(pred(r.result) for r in records)

    monthly = _monthly_calls(records)
    cols: list[tuple[str, Cell]] = [
        ("n", lambda r: str(r.result.requests)),
        ("load", lambda r: _load(r.result.shape)),
        ("p50", lambda r: format_seconds(r.result.latency.p50)),
        ("p95", lambda r: format_seconds(r.result.latency.p95)),
        ("p99", lambda r: format_seconds(r.result.latency.p99)),
    ]
    if any_(lambda res: bool(res.ttft.n)):
        cols.append(("TTFT p95", lambda r: _with_count(r.result.ttft, r.result.latency)))
    cols += [
        ("thru", lambda r: _rate(r.result.throughput)),
        ("err", lambda r: _pct(r.result.error_rate)),
    ]
    if any_(lambda res: res.usage.total_tokens is not None):
        cols += [
            ("tok/call", lambda r: _tokens(r.result.usage.per_call.total_tokens)),
            ("$/call", lambda r: _money(r.result.cost.per_call)),
        ]
    if monthly:
        cols.append((f"$/month @{_count(monthly)}", _monthly_cost))
    cols.append(("RSS+", lambda r: _memory(r.result.memory)[0]))
    if any_(lambda res: res.cpu.per_call is not None):
        cols.append(("cpu/call", _cpu))
    if any(_has_memory_budget(r) for r in records):
        cols.append(("MB/1k", lambda r: _memory(r.result.memory)[1]))
    for metric in METRICS:  # one column per gated metric some run was compared on
        compared = any(
            r.comparison is not None and metric.key in r.comparison.metrics for r in records
        )
        if metric.column and compared:
            cols.append((metric.column, _change_column(metric.key)))
    cols.append(("status", _status))
    return cols


def render(records: Sequence[RunRecord]) -> str:
    """The summary table; empty when no perf test ran."""
    if not records:
        return ""
    multi = _multi_run_tests(records)
    cols = _columns(records)
    headers = ["test", *(name for name, _ in cols)]
    rows = [[_label(r, multi), *(cell(r) for _, cell in cols)] for r in records]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _multi_run_tests(records: Sequence[RunRecord]) -> set[str]:
    counts: dict[str, int] = {}
    for r in records:
        counts[r.nodeid] = counts.get(r.nodeid, 0) + 1
    return {t for t, c in counts.items() if c > 1}


def _monthly_calls(records: Sequence[RunRecord]) -> int | None:
    for r in records:
        if r.cost_projection is not None and r.cost_projection.monthly_calls:
            return r.cost_projection.monthly_calls
    return None


def _count(n: int) -> str:
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:,}"


def render_whatif(records: Sequence[RunRecord]) -> str:
    """The cost what-if table (``--agentperf-cost-whatif``): each run's cost per call (and per
    month with ``agentperf_monthly_calls``) had the same tokens gone to other models."""
    models: list[str] = []
    for r in records:
        for m in r.cost_projection.whatif if r.cost_projection else {}:
            if m not in models:
                models.append(m)
    if not models:
        return ""
    monthly = _monthly_calls(records)
    multi = _multi_run_tests(records)

    def cell(per_call: float | None) -> str:
        if per_call is None or not monthly:
            return _money(per_call)
        return f"{_money(per_call)} ({_money(per_call * monthly)}/mo)"

    headers = ["cost what-if (same tokens)", "now $/call", *[f"{m} $/call" for m in models]]
    rows = []
    for r in records:
        whatif = r.cost_projection.whatif if r.cost_projection else {}
        rows.append(
            [
                _label(r, multi),
                cell(r.result.cost.per_call),
                *[cell(whatif.get(m)) for m in models],
            ]
        )
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def failure_lines(records: Sequence[RunRecord]) -> list[str]:
    """One line per broken budget or aborted run, for under the table."""
    lines = []
    for r in records:
        res = r.result
        lines += [f"{r.label}: {b.message}" for b in res.budgets if not b.passed]
        if res.aborted:
            lines.append(f"{r.label}: {res.aborted}")
        if res.errors and res.error_messages:
            lines.append(f"{r.label}: first error: {res.error_messages[0]}")
        busy = _busy_without_baseline(r)
        if busy:
            lines.append(f"{r.label}: note: {busy}")
    return lines


def _busy_without_baseline(record: RunRecord) -> str | None:
    """A busy machine is worth a note even when there is no baseline to compare with (with
    one, the gate's own line says it)."""
    if record.comparison is not None:
        return None
    level = record.result.contention.level
    if level is None or level < BUSY_MARGIN:
        return None
    return f"{BUSY_FLAG}: other processes used {level:.0%} CPU during the run"


def section(
    records: Sequence[RunRecord], gate_lines: Sequence[str], notes: Sequence[str]
) -> list[str]:
    """Every line of the summary section: the tables, what broke, the gate's lines and the
    plugin's notes (e.g. where the baseline was saved). Empty when there is nothing to say.
    Every line passes through ``redact``: an error message may quote a key."""
    return [redact(line) for line in _section(records, gate_lines, notes)]


def _section(
    records: Sequence[RunRecord], gate_lines: Sequence[str], notes: Sequence[str]
) -> list[str]:
    if not records:
        return [f"agentperf: {line}" for line in [*gate_lines, *notes]]
    lines = [render(records)]
    whatif = render_whatif(records)
    if whatif:
        lines += ["", whatif]
    lines += failure_lines(records)
    lines += gate_lines
    lines += [f"agentperf: {note}" for note in notes]
    return lines


class TerminalWriter:
    """The summary section of pytest's terminal report: the table, what broke, the gate's
    lines and the plugin's notes, written through ``ReportContext.echo``."""

    label = "terminal summary"
    target = "terminal"

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> None:
        for line in section(records, context.summary, context.notes):
            context.echo(line)


def create(value: str | None) -> TerminalWriter:
    """The terminal writer (always on; it takes no value)."""
    return TerminalWriter()
