"""The terminal summary: one table of every run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from ..baseline.change import format_change
from ..baseline.comparison import BUSY_FLAG, BUSY_MARGIN
from ..baseline.metrics import METRICS
from ..budgets import p95_drift
from ..record import RunRecord, RunStatus
from ..redact import redact
from ..results import LoadShape, Memory, PerfResult, Stats
from ..units import format_seconds, format_usd
from .capacity import render as render_capacity
from .protocol import ReportContext
from .stages import render as render_stages

DEFAULT_WIDTH = 120
"""The table's width when pytest reports none (no terminal reporter)."""

KEPT = frozenset({"p95"})
"""Columns never left out to fit (beside the test and its status)."""

FOLD_RANK = 17
"""Before leaving out a column ranked below this, the change columns drop their intervals."""

CIS = "95% CIs"
"""How the left-out line names the change columns' intervals."""


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


def achieved_rate(result: PerfResult) -> float:
    """Calls started per second over the run (its measured calls over its duration): in open
    loop, what the offered ``rate`` became."""
    return result.requests / result.duration if result.duration > 0 else 0.0


def mostly_late(result: PerfResult) -> bool:
    """An open-loop run in which more than half the calls started late."""
    return result.shape.rate is not None and 2 * result.late_starts > result.requests


def _achieved(result: PerfResult) -> str:
    return _rate(achieved_rate(result)) if result.shape.rate is not None else "-"


def _late(result: PerfResult) -> str:
    if result.shape.rate is None:
        return "-"
    late = result.late_starts
    if not late or not result.requests:
        return str(late)
    return f"{late} ({_pct(late / result.requests)})"


def _tools(result: PerfResult) -> str:
    """Every tool's calls, errors and time, summed: "12 (1 err) 340 ms"."""
    tools = result.tools.values()
    calls = sum(t.calls for t in tools)
    if not calls:
        return "-"
    errors = sum(t.errors for t in tools)
    time = format_seconds(sum(t.total_time for t in tools))
    return f"{calls} ({errors} err) {time}" if errors else f"{calls} {time}"


def _share(result: PerfResult) -> str:
    """Where the calls' time went, as the integrations timed it: "llm 62% tool 20%"."""
    share = result.time_share
    parts = [
        f"{label} {share_pct}"
        for label, value in (("llm", share.model), ("tool", share.tools))
        if value is not None
        for share_pct in (f"{value:.0%}",)
    ]
    return " ".join(parts) or "-"


def _drift(result: PerfResult) -> str:
    """p95 of the last window over the first's, and the number of windows: "1.31x (6 win)"."""
    if len(result.windows) < 2:
        return "-"
    ratio, windows = p95_drift(result)
    return f"{'-' if ratio is None else f'{ratio:.2f}x'} ({windows} win)"


def unique_paths(nodeids: Sequence[str]) -> dict[str, str]:
    """Each test file's path cut to its shortest suffix that no other file's path shares, so
    two ``test_same.py`` in different folders stay apart: {"a/test_same.py": "a/test_same.py",
    "tests/test_x.py": "test_x.py"}."""
    paths = {n.partition("::")[0] for n in nodeids}
    parts = {p: p.split("/") for p in paths}
    short = {}
    for path, mine in parts.items():
        for k in range(1, len(mine) + 1):
            suffix = mine[-k:]
            if not any(q != path and theirs[-k:] == suffix for q, theirs in parts.items()):
                break
        short[path] = "/".join(suffix)
    return short


def _labels(records: Sequence[RunRecord]) -> list[str]:
    """The test column: the node id with its file path cut to its shortest unique suffix
    (parameters may hold slashes: only the path is cut), and the run's name when its test made
    several runs."""
    short = unique_paths([r.nodeid for r in records])
    multi = _multi_run_tests(records)
    labels = []
    for r in records:
        path, sep, rest = r.nodeid.partition("::")
        text = short[path] + sep + rest
        labels.append(f"{text} [{r.name}]" if r.nodeid in multi else text)
    return labels


def _status(record: RunRecord) -> str:
    text = record.status.value
    if record.status is RunStatus.FAIL:
        text += " " + ", ".join(record.broken)
    comp = record.comparison
    if comp is not None and comp.busy:
        text += " (busy)"  # measured under clearly more contention than the baseline
    if not record.checked and record.status in (RunStatus.FAIL, RunStatus.ERROR):
        text += " (not raised)"  # check=False: the test went on
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
    return format_usd(projection.monthly_cost if projection else None)


def _change_column(key: str, *, interval: bool) -> Cell:
    def cell(record: RunRecord) -> str:
        comp = record.comparison
        if comp is None:
            return "-"
        return comp.change_text(key) if interval else format_change(comp.metrics.get(key))

    return cell


Cell = Callable[[RunRecord], str]


@dataclass(frozen=True)
class Column:
    """One optional column of the table."""

    key: str
    """Its name for ``--agentperf-columns`` (``report.columns.TABLE_COLUMNS``)."""
    header: str
    cell: Cell
    rank: int
    """Importance: the highest rank is left out first when the table does not fit."""
    narrow: tuple[str, Cell] | None = None
    """A shorter header and cell, used before columns ranked below ``FOLD_RANK`` go."""


def _cost_column(records: Sequence[RunRecord]) -> Column:
    """$/call, or $/1k calls when every known per-call cost is below a cent (no "$0.0000745")."""
    known = [c for r in records if (c := r.result.cost.per_call) is not None]
    if known and max(known) < 0.01:
        return Column("cost", "$/1k calls", lambda r: _per_1k(r.result.cost.per_call), 10)
    return Column("cost", "$/call", lambda r: format_usd(r.result.cost.per_call), 10)


def _per_1k(per_call: float | None) -> str:
    return format_usd(None if per_call is None else per_call * 1000)


_METRIC_RANKS = {"p95": 1, "p50": 5, "cost": 12, "tokens": 13, "cpu": 20}


def _columns(records: Sequence[RunRecord]) -> list[Column]:
    """The table's optional columns in display order, each only when some run has something
    to show in it. Ranks: latency, errors and the load first; money and tokens next; memory,
    CPU and the tail of the latency last."""

    def any_(pred: Callable[[PerfResult], bool]) -> bool:
        return any(pred(r.result) for r in records)

    monthly = _monthly_calls(records)
    cols = [
        Column("n", "n", lambda r: str(r.result.requests), 3),
        Column("load", "load", lambda r: _load(r.result.shape), 6),
    ]
    if any_(lambda res: res.shape.rate is not None):
        cols += [
            Column("achieved", "achieved", lambda r: _achieved(r.result), 7),
            Column("late", "late", lambda r: _late(r.result), 8),
        ]
    cols += [
        Column("p50", "p50", lambda r: format_seconds(r.result.latency.p50), 4),
        Column("p95", "p95", lambda r: format_seconds(r.result.latency.p95), 0),
        Column("p99", "p99", lambda r: format_seconds(r.result.latency.p99), 18),
    ]
    if any_(lambda res: bool(res.ttft.n)):
        cols.append(
            Column("ttft", "TTFT p95", lambda r: _with_count(r.result.ttft, r.result.latency), 14)
        )
    cols += [
        Column("thru", "thru", lambda r: _rate(r.result.throughput), 9),
        Column("err", "err", lambda r: _pct(r.result.error_rate), 2),
    ]
    if any_(lambda res: res.usage.total_tokens is not None):
        cols += [
            Column("tok", "tok/call", lambda r: _tokens(r.result.usage.per_call.total_tokens), 11),
            _cost_column(records),
        ]
    if monthly:
        cols.append(Column("month", f"$/month @{_count(monthly)}", _monthly_cost, 21))
    if any_(lambda res: any(t.calls for t in res.tools.values())):
        cols.append(Column("tools", "tools", lambda r: _tools(r.result), 15))
    if any_(lambda res: res.time_share.own is not None):
        cols.append(Column("share", "time in", lambda r: _share(r.result), 15))
    if any_(lambda res: len(res.windows) > 1):  # a soak: a run long enough for windows
        cols.append(Column("drift", "drift", lambda r: _drift(r.result), 16))
    cols.append(Column("rss", "RSS+", lambda r: _memory(r.result.memory)[0], 22))
    if any_(lambda res: res.cpu.per_call is not None):
        cols.append(Column("cpu", "cpu/call", _cpu, 19))
    if any(_has_memory_budget(r) for r in records):
        cols.append(Column("mb1k", "MB/1k", lambda r: _memory(r.result.memory)[1], 17))
    for metric in METRICS:  # one column per gated metric some run was compared on
        compared = any(
            r.comparison is not None and metric.key in r.comparison.metrics for r in records
        )
        if metric.column and compared:
            short = metric.column.split(" (")[0]  # "Δp95 (95% CI)" -> "Δp95"
            cols.append(
                Column(
                    f"d{metric.key}",
                    metric.column,
                    _change_column(metric.key, interval=True),
                    _METRIC_RANKS.get(metric.key, 20),
                    narrow=(short, _change_column(metric.key, interval=False))
                    if short != metric.column
                    else None,
                )
            )
    cols += _arm_columns(records)
    budgeted = {b.name for r in records for b in r.result.budgets}
    return [_promoted(c, budgeted) for c in cols]


def _arm_cell(metric: str, *, interval: bool) -> Cell:
    """An A/B arm's ratio of ``metric`` against the reference arm ("ref" for the reference
    itself, "-" for a run that is no arm)."""

    def cell(record: RunRecord) -> str:
        summary = record.arm
        if summary is None:
            return "-"
        if summary.is_reference:
            return "ref"
        ratio = summary.ratio(metric)
        if ratio is None:
            return "-"
        return ratio.text if interval else ratio.short

    return cell


def _arm_columns(records: Sequence[RunRecord]) -> list[Column]:
    """The A/B columns, when some run is an arm of ``agentperf.compare``: p95 and cost per
    call against the reference arm."""
    arms = [r.arm for r in records if r.arm is not None]
    if not arms:
        return []
    cols = [
        Column(
            "ab",
            "p95 vs ref",
            _arm_cell("p95", interval=False),
            1,
        )
    ]
    costs = (a.ratio("cost_per_call") for a in arms)
    if any(c is not None and c.estimate is not None for c in costs):
        cols.append(Column("abcost", "$ vs ref", _arm_cell("cost_per_call", interval=False), 7))
    return cols


_BUDGETS_OF = {
    "p50": ("p50",),
    "p99": ("p99",),
    "ttft": ("ttft_p50", "ttft_p95", "ttft_p99"),
    "thru": ("min_throughput",),
    "err": ("error_rate", "timeout_rate"),
    "tok": ("tokens_per_call", "output_tokens_per_call"),
    "cost": ("cost_per_call", "total_cost"),
    "rss": ("memory", "memory_per_1k_calls"),
    "mb1k": ("memory_per_1k_calls",),
    "drift": ("p95_drift",),
}
"""The budgets each column shows the value of."""

BUDGETED_RANK = -100
"""Added to the rank of a column whose budget some run set: what the user asked to check is
left out last (after every column nobody set a budget on)."""


def _promoted(column: Column, budgeted: set[str]) -> Column:
    if budgeted.intersection(_BUDGETS_OF.get(column.key, ())):
        return dataclasses.replace(column, rank=column.rank + BUDGETED_RANK)
    return column


@dataclass(frozen=True)
class Table:
    """The rendered table and what was left out of it to fit."""

    text: str
    left_out: tuple[str, ...] = ()
    """Names of the columns left out (``--agentperf-columns`` names), most important first;
    "95% CIs" when the change columns lost their intervals."""


def _cells(
    records: Sequence[RunRecord], labels: Sequence[str], cols: Sequence[Column], folded: bool
) -> tuple[list[str], list[list[str]]]:
    def parts(c: Column) -> tuple[str, Cell]:
        return c.narrow if folded and c.narrow else (c.header, c.cell)

    shown = [parts(c) for c in cols]
    headers = ["test", *(h for h, _ in shown), "status"]
    pairs = zip(records, labels, strict=True)
    rows = [[label, *(cell(r) for _, cell in shown), _status(r)] for r, label in pairs]
    return headers, rows


def _tabulate(
    records: Sequence[RunRecord], labels: Sequence[str], cols: Sequence[Column], folded: bool
) -> str:
    headers, rows = _cells(records, labels, cols, folded)
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def table_cells(records: Sequence[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """The table's headers and one row of cells per record, every column that applies (no
    width to fit), as plain text: for outputs that draw the table themselves (Markdown)."""
    return _cells(records, _labels(records), _columns(records), folded=False)


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def table(
    records: Sequence[RunRecord],
    *,
    width: int | None = None,
    columns: Sequence[str] | None = None,
) -> Table:
    """The summary table. ``columns`` (``--agentperf-columns``) picks columns by name, in that
    order; otherwise every column that applies, less the least important ones while the
    table is wider than ``width`` (None: no limit)."""
    labels = _labels(records)
    available = _columns(records)
    if columns is not None:
        by_key = {c.key: c for c in available}
        chosen = [by_key[k] for k in columns if k in by_key]
        return Table(_tabulate(records, labels, chosen, folded=False))
    chosen = list(available)
    folded = False
    dropped: list[str] = []
    text = _tabulate(records, labels, chosen, folded)
    while width is not None and _width(text) > width:
        droppable = [c for c in chosen if c.key not in KEPT]
        worst = max(droppable, key=lambda c: c.rank, default=None)
        can_fold = not folded and any(c.narrow for c in chosen)
        if can_fold and (worst is None or worst.rank < FOLD_RANK):
            folded = True
            dropped.append(CIS)
        elif worst is not None:
            chosen.remove(worst)
            dropped.append(worst.key)
        else:
            break  # only the test, p95 and status are left: a long test id wins
        text = _tabulate(records, labels, chosen, folded)
    # a narrow column left out early may fit in the room a wide one left: take it back
    for key in list(reversed(dropped)):  # most important first
        if width is None or _width(text) > width:
            break
        if key == CIS:
            again = _tabulate(records, labels, chosen, folded=False)
            if _width(again) <= width:
                folded, text = False, again
                dropped.remove(key)
            continue
        keys = {c.key for c in chosen} | {key}
        trial = [c for c in available if c.key in keys]
        again = _tabulate(records, labels, trial, folded)
        if _width(again) <= width:
            chosen, text = trial, again
            dropped.remove(key)
    return Table(text, tuple(reversed(dropped)))


def left_out_line(left_out: Sequence[str], width: int | None) -> str:
    """The one line under the table that says what was left out to fit ``width``, most
    important first: as many names as fit the width, then how many more."""
    head = f"left out to fit {width} columns: "
    tail = "; --agentperf-columns=all shows them"
    names = list(left_out)
    for shown in range(len(names), 0, -1):
        more = len(names) - shown
        listed = ", ".join(names[:shown]) + (f" and {more} more" if more else "")
        line = head + listed + tail
        if width is None or len(line) <= width or shown == 1:
            return line
    return head + tail.lstrip("; ")


def render(records: Sequence[RunRecord], *, width: int | None = None) -> str:
    """The summary table (every column when ``width`` is None); empty when no perf test ran."""
    return table(records, width=width).text if records else ""


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

    def cell(per_call: float | None) -> str:
        if per_call is None or not monthly:
            return format_usd(per_call)
        return f"{format_usd(per_call)} ({format_usd(per_call * monthly)}/mo)"

    headers = ["cost what-if (same tokens)", "now $/call", *[f"{m} $/call" for m in models]]
    rows = []
    for r, label in zip(records, _labels(records), strict=True):
        whatif = r.cost_projection.whatif if r.cost_projection else {}
        rows.append(
            [
                label,
                cell(r.result.cost.per_call),
                *[cell(whatif.get(m)) for m in models],
            ]
        )
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def failure_lines(records: Sequence[RunRecord], *, with_findings: bool = False) -> list[str]:
    """One line per broken budget or aborted run, for under the table. A busy machine is said
    once for all the runs it affected when there are several (a shared CI runner makes every
    run of a session busy: one line each would bury what broke). ``with_findings``: the
    findings are listed too, so a run's late starts are left to its ``late-starts`` finding."""
    busy_levels = [level for r in records if (level := _busy_level(r)) is not None]
    lines = []
    # named as in the table: the shortest path that tells the test files apart
    for r, label in zip(records, _labels(records), strict=True):
        res = r.result
        lines += [f"{label}: {b.message}" for b in res.budgets if not b.passed]
        if res.aborted:
            lines.append(f"{label}: {res.aborted}")
        if res.errors and res.error_messages:
            lines.append(f"{label}: first error: {res.error_messages[0]}")
        level = _busy_level(r)
        if level is not None and len(busy_levels) == 1:
            note = f"{BUSY_FLAG}: other processes used {level:.0%} CPU during the run"
            lines.append(f"{label}: note: {note}")
        said = with_findings and any(f.rule == "late-starts" for f in r.findings)
        if mostly_late(res) and not said:
            lines.append(f"{label}: note: {_late_note(res)}")
    if len(busy_levels) > 1:
        low, high = min(busy_levels), max(busy_levels)
        spread = f"{low:.0%}" if f"{low:.0%}" == f"{high:.0%}" else f"{low:.0%} to {high:.0%}"
        lines.append(
            f"note: {BUSY_FLAG} during {len(busy_levels)} of {len(records)} runs: other "
            f"processes used {spread} CPU"
        )
    return lines


def evidence_text(evidence: Mapping[str, Any]) -> str:
    """A finding's evidence as ``name=value`` pairs, numbers to 3 significant digits."""

    def value(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        if isinstance(v, (list, tuple)):
            return "[" + " ".join(value(x) for x in v) + "]"
        return str(v)

    return ", ".join(f"{k}={value(v)}" for k, v in evidence.items() if v is not None)


def finding_lines(records: Sequence[RunRecord]) -> list[str]:
    """One line per finding, for under the table: ``label: id: what (evidence); what to do``."""
    lines = []
    for r, label in zip(records, _labels(records), strict=True):
        for f in r.findings:
            evidence = evidence_text(f.evidence)
            said = f"{f.message} ({evidence})" if evidence else f.message
            lines.append(f"{label}: {f.rule}: {said}" + (f"; {f.advice}" if f.advice else ""))
    return lines


def _late_note(result: PerfResult) -> str:
    """Why an open-loop run fell behind its rate: it waited for a free slot or for the load
    generator, so its latencies say little about the agent at that rate."""
    cap = result.shape.concurrency
    limit = f"the concurrency cap (concurrency={cap})" if cap else "a full worker pool"
    return (
        f"{result.late_starts} of {result.requests} calls started late "
        f"({_rate(achieved_rate(result))} achieved of {_load(result.shape)} offered): "
        f"{limit} or the load generator, not the agent, was the bottleneck; raise concurrency= "
        "or lower rate="
    )


def _busy_level(record: RunRecord) -> float | None:
    """How busy the machine was during a run measured without a baseline, when that is worth
    a note (with a baseline, the gate's own line says it); else None."""
    if record.comparison is not None:
        return None
    level = record.result.contention.level
    if level is None or level < BUSY_MARGIN:
        return None
    return level


def section(
    records: Sequence[RunRecord],
    gate_lines: Sequence[str],
    notes: Sequence[str],
    *,
    width: int | None = None,
    columns: Sequence[str] | None = None,
    findings: bool = True,
) -> list[str]:
    """Every line of the summary section: the tables, what was left out to fit ``width``,
    what broke, the findings (unless ``findings`` is False), the gate's lines and the plugin's
    notes (e.g. where the baseline was saved). Empty when there is nothing to say. Every line
    passes through ``redact``: an error message may quote a key."""
    lines = _section(records, gate_lines, notes, width=width, columns=columns, findings=findings)
    return [redact(line) for line in lines]


def _section(
    records: Sequence[RunRecord],
    gate_lines: Sequence[str],
    notes: Sequence[str],
    *,
    width: int | None,
    columns: Sequence[str] | None,
    findings: bool = True,
) -> list[str]:
    if not records:
        return [f"agentperf: {line}" for line in [*gate_lines, *notes]]
    summary = table(records, width=width, columns=columns)
    lines = [summary.text]
    if summary.left_out:
        lines.append(left_out_line(summary.left_out, width))
    whatif = render_whatif(records)
    if whatif:
        lines += ["", whatif]
    capacity = render_capacity(records)
    if capacity:
        lines += ["", capacity]
    stages = render_stages(records)
    if stages:
        lines += ["", stages]
    lines += failure_lines(records, with_findings=findings)
    if findings:
        lines += finding_lines(records)
    lines += gate_lines
    lines += [f"agentperf: {note}" for note in notes]
    return lines


class TerminalWriter:
    """The summary section of pytest's terminal report: the table, what broke, the gate's
    lines and the plugin's notes, written through ``ReportContext.echo``."""

    label = "terminal summary"
    target = "terminal"

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> None:
        width = context.width or DEFAULT_WIDTH
        lines = section(
            records,
            context.summary,
            context.notes,
            width=width,
            columns=context.columns,
            findings=context.findings,
        )
        for line in lines:
            context.echo(line)


def create(value: str | None, options: Mapping[str, Any]) -> TerminalWriter:
    """The terminal writer (always on; it takes no value)."""
    return TerminalWriter()
