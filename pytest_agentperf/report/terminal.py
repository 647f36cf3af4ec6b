"""The terminal summary: one table of every run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

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


def _label(record: dict[str, Any], multi: set[str]) -> str:
    test = str(record["test"])
    path, sep, rest = test.partition("::")
    short = path.rsplit("/", 1)[-1] + sep + rest  # parameters may hold slashes: keep them
    return f"{short} [{record['name']}]" if test in multi else short


def _change(record: dict[str, Any], key: str = "p95_change_text") -> str:
    comp = record["result"].get("comparison")
    if not isinstance(comp, dict):
        return "-"
    text = comp.get(key)
    return str(text) if text else "-"


def _status(record: dict[str, Any]) -> str:
    comp = record["result"].get("comparison")
    status = str(record["status"])
    if status == "PASS" and isinstance(comp, dict) and comp.get("status"):
        return "PASS" if comp["status"] == "UNCHANGED" else str(comp["status"])
    return status


def _usage_compared(records: Sequence[dict[str, Any]]) -> bool:
    for r in records:
        comp = r["result"].get("comparison")
        if isinstance(comp, dict) and (comp.get("tokens") or comp.get("cost")):
            return True
    return False


def render(records: Sequence[dict[str, Any]]) -> str:
    """The summary table; empty when no perf test ran."""
    if not records:
        return ""
    streaming = any(r["result"]["ttft"]["n"] for r in records)
    compared = any(isinstance(r["result"].get("comparison"), dict) for r in records)
    usage_compared = compared and _usage_compared(records)
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["test"])] = counts.get(str(r["test"]), 0) + 1
    multi = {t for t, c in counts.items() if c > 1}
    headers = ["test", "n", "load", "p50", "p95", "p99"]
    if streaming:
        headers.append("TTFT p95")
    headers += ["thru", "err", "tok/call", "$/call"]
    monthly = _monthly_calls(records)
    if monthly:
        headers.append(f"$/month @{_count(monthly)}")
    headers += ["RSS+", "MB/1k"]
    if compared:
        headers += ["Δp50 (95% CI)", "Δp95 (95% CI)"]
    if usage_compared:
        headers += ["Δtok", "Δ$"]
    headers.append("status")
    rows = []
    for r in records:
        res = r["result"]
        lat = res["latency"]
        row: list[str] = [
            _label(r, multi),
            str(res["requests"]),
            _load(res["shape"]),
            format_seconds(lat["p50"]),
            format_seconds(lat["p95"]),
            format_seconds(lat["p99"]),
        ]
        if streaming:
            row.append(format_seconds(res["ttft"]["p95"]))
        row += [
            _rate(res["throughput"]),
            _pct(res["error_rate"]),
            _tokens(res["usage"]["per_call"]["total_tokens"]),
            _money(res["cost"]["per_call"]),
        ]
        if monthly:
            row.append(_money((r.get("cost_projection") or {}).get("monthly_cost")))
        row += [*_memory(res.get("memory") or {})]
        if compared:
            row += [_change(r, "p50_change_text"), _change(r, "p95_change_text")]
        if usage_compared:
            row += [_change(r, "tokens_change_text"), _change(r, "cost_change_text")]
        row.append(_status(r))
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


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
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["test"])] = counts.get(str(r["test"]), 0) + 1
    multi = {t for t, c in counts.items() if c > 1}

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
    return lines
