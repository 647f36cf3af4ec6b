"""The terminal summary: one table of every run."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, cast

from tabulate import tabulate

from ..compare import BUSY_FLAG, BUSY_MARGIN
from ..redact import redact
from ..units import format_seconds


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0%"
    return f"{value * 100:.2g}%" if value < 0.1 else f"{value * 100:.3g}%"


def _load(shape: dict[str, Any]) -> str:
    if shape.get("rate") is not None:
        cap = shape.get("concurrency")
        text = f"{shape['rate']:g}/s"
        return text + (f" ≤{cap}" if cap else "")
    return f"c={shape.get('concurrency') or 1}"


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


def _memory(memory: dict[str, Any]) -> tuple[str, str]:
    """Peak RSS growth during the run and the leak slope (MB per 1,000 calls)."""
    delta, slope = memory.get("rss_delta_mb"), memory.get("per_1k_calls")
    growth = "-" if delta is None else f"{_mb(delta)} MB"
    return growth, "-" if slope is None else _mb(slope)


def _mb(value: float) -> str:
    if abs(value) < 0.005:
        return "0"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def _with_count(stats: dict[str, Any], latency: dict[str, Any]) -> str:
    """A p95 with its sample count beside it when that differs from latency's, so a TTFT
    from 1 stream of 8 calls cannot pass for one from all 8."""
    text = format_seconds(stats["p95"])
    n = stats["n"]
    return f"{text} (n={n})" if n and n != latency["n"] else text


def _label(record: dict[str, Any], multi: set[str]) -> str:
    test = str(record["test"])
    path, sep, rest = test.partition("::")
    short = path.rsplit("/", 1)[-1] + sep + rest  # parameters may hold slashes: keep them
    return f"{short} [{record['name']}]" if test in multi else short


def _change(record: dict[str, Any], key: str) -> str:
    comp = _comparison(record)
    text = comp.get(key) if comp else None
    return str(text) if text else "-"


def _status(record: dict[str, Any]) -> str:
    comp = _comparison(record)
    status = str(record["status"])
    if status == "PASS" and comp and comp.get("status"):
        status = "PASS" if comp["status"] == "UNCHANGED" else str(comp["status"])
    if comp and comp.get("busy"):
        status += " (busy)"  # measured under clearly more contention than the baseline
    return status


def _cpu(record: dict[str, Any]) -> str:
    """CPU time per call, and its share of the p50 latency when it is large enough to matter."""
    cpu = record["result"].get("cpu") or {}
    per_call = cpu.get("per_call")
    if per_call is None:
        return "-"
    text = format_seconds(per_call)
    share = cpu.get("share")
    return f"{text} ({share:.0%})" if share is not None and share >= 0.1 else text


def _comparison(record: dict[str, Any]) -> dict[str, Any] | None:
    comp = record["result"].get("comparison")
    return comp if isinstance(comp, dict) else None


def _usage_compared(record: dict[str, Any]) -> bool:
    comp = _comparison(record)
    return comp is not None and bool(comp.get("tokens") or comp.get("cost"))


def _has_memory_budget(record: dict[str, Any]) -> bool:
    return any(b["name"].startswith("memory") for b in record["result"]["budgets"])


Cell = Callable[[dict[str, Any]], str]


def _columns(records: Sequence[dict[str, Any]]) -> list[tuple[str, Cell]]:
    """The table's columns; optional ones only when some run has something to show in them."""

    def res(r: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], r["result"])

    def any_(pred: Callable[[dict[str, Any]], bool]) -> bool:
        return any(pred(r) for r in records)

    monthly = _monthly_calls(records)
    cols: list[tuple[str, Cell]] = [
        ("n", lambda r: str(res(r)["requests"])),
        ("load", lambda r: _load(res(r)["shape"])),
        ("p50", lambda r: format_seconds(res(r)["latency"]["p50"])),
        ("p95", lambda r: format_seconds(res(r)["latency"]["p95"])),
        ("p99", lambda r: format_seconds(res(r)["latency"]["p99"])),
    ]
    if any_(lambda r: bool(res(r)["ttft"]["n"])):
        cols.append(("TTFT p95", lambda r: _with_count(res(r)["ttft"], res(r)["latency"])))
    cols += [
        ("thru", lambda r: _rate(res(r)["throughput"])),
        ("err", lambda r: _pct(res(r)["error_rate"])),
    ]
    if any_(lambda r: res(r)["usage"]["total_tokens"] is not None):
        cols += [
            ("tok/call", lambda r: _tokens(res(r)["usage"]["per_call"]["total_tokens"])),
            ("$/call", lambda r: _money(res(r)["cost"]["per_call"])),
        ]
    if monthly:
        cols.append(
            (
                f"$/month @{_count(monthly)}",
                lambda r: _money((r.get("cost_projection") or {}).get("monthly_cost")),
            )
        )
    cols.append(("RSS+", lambda r: _memory(res(r).get("memory") or {})[0]))
    if any_(lambda r: (res(r).get("cpu") or {}).get("per_call") is not None):
        cols.append(("cpu/call", _cpu))
    if any_(_has_memory_budget):
        cols.append(("MB/1k", lambda r: _memory(res(r).get("memory") or {})[1]))
    if any_(lambda r: _comparison(r) is not None):
        cols += [
            ("Δp50 (95% CI)", lambda r: _change(r, "p50_change_text")),
            ("Δp95 (95% CI)", lambda r: _change(r, "p95_change_text")),
        ]
    if any_(lambda r: bool((_comparison(r) or {}).get("cpu"))):
        cols.append(("Δcpu", lambda r: _change(r, "cpu_change_text")))
    if any_(_usage_compared):
        cols += [
            ("Δtok", lambda r: _change(r, "tokens_change_text")),
            ("Δ$", lambda r: _change(r, "cost_change_text")),
        ]
    cols.append(("status", _status))
    return cols


def render(records: Sequence[dict[str, Any]]) -> str:
    """The summary table; empty when no perf test ran."""
    if not records:
        return ""
    multi = _multi_run_tests(records)
    cols = _columns(records)
    headers = ["test", *(name for name, _ in cols)]
    rows = [[_label(r, multi), *(cell(r) for _, cell in cols)] for r in records]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _multi_run_tests(records: Sequence[dict[str, Any]]) -> set[str]:
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["test"])] = counts.get(str(r["test"]), 0) + 1
    return {t for t, c in counts.items() if c > 1}


def _monthly_calls(records: Sequence[dict[str, Any]]) -> int | None:
    for r in records:
        calls = (r.get("cost_projection") or {}).get("monthly_calls")
        if calls:
            return int(calls)
    return None


def _count(n: int) -> str:
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:,}"


def render_whatif(records: Sequence[dict[str, Any]]) -> str:
    """The cost what-if table (``--agentperf-cost-whatif``): each run's cost per call (and per
    month with ``agentperf_monthly_calls``) had the same tokens gone to other models."""
    models: list[str] = []
    for r in records:
        for m in (r.get("cost_projection") or {}).get("whatif") or {}:
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
        whatif = (r.get("cost_projection") or {}).get("whatif") or {}
        rows.append(
            [
                _label(r, multi),
                cell(r["result"]["cost"]["per_call"]),
                *[cell(whatif.get(m)) for m in models],
            ]
        )
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def failure_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """One line per broken budget or aborted run, for under the table."""
    lines = []
    for r in records:
        res = r["result"]
        for b in res["budgets"]:
            if not b["passed"]:
                lines.append(f"{r['test']} [{r['name']}]: {b['message']}")
        if res.get("aborted"):
            lines.append(f"{r['test']} [{r['name']}]: {res['aborted']}")
        if res["errors"] and res.get("error_messages"):
            lines.append(f"{r['test']} [{r['name']}]: first error: {res['error_messages'][0]}")
        busy = _busy_without_baseline(r)
        if busy:
            lines.append(f"{r['test']} [{r['name']}]: note: {busy}")
    return lines


def _busy_without_baseline(record: dict[str, Any]) -> str | None:
    """A busy machine is worth a note even when there is no baseline to compare with (with
    one, the gate's own line says it)."""
    if _comparison(record) is not None:
        return None
    cont = record["result"].get("contention") or {}
    other = cont.get("other_cpu")
    if other is None:
        return None
    level = other + (cont.get("steal") or 0.0)
    if level < BUSY_MARGIN:
        return None
    return f"{BUSY_FLAG}: other processes used {level:.0%} CPU during the run"


def section(
    records: Sequence[dict[str, Any]], gate_lines: Sequence[str], notes: Sequence[str]
) -> list[str]:
    """Every line of the summary section: the tables, what broke, the gate's lines and the
    plugin's notes (e.g. where the baseline was saved). Empty when there is nothing to say.
    Every line passes through ``redact``: an error message may quote a key."""
    return [redact(line) for line in _section(records, gate_lines, notes)]


def _section(
    records: Sequence[dict[str, Any]], gate_lines: Sequence[str], notes: Sequence[str]
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
