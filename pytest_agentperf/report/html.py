"""``--agentperf-html``: one self-contained HTML dashboard of the session's runs.

The page is a Jinja2 template (the optional extra ``[html]``, imported only here, autoescape
on) with uPlot (vendored in ``html_assets/vendor``, MIT) and a small script of ours inlined:
it opens offline, makes no network request and loads no font. Figures are read from the
records and written as text by the template; what the charts draw is put in the page once,
as JSON in a ``<script type="application/json">`` element with every ``<``, ``>`` and ``&``
written as a ``\\u`` escape, so a string from a test can neither close the element nor open a
tag. A Content-Security-Policy forbids every request, should anything try.

Chart data is prepared here, not in the browser, to keep the page small: histograms are
counted into bins, a CDF is at most ``CDF_POINTS`` quantiles, and the calls drawn against
their start time are cut to ``MAX_POINTS`` (every failed call kept), which the page says.
Without the per-call table (a JSON report written without an output that reads each call)
the page shows what the statistics hold and says which charts need the calls.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import FileKind, write_atomic
from ..errors import AgentPerfError
from ..redact import redact
from ..units import Unit, format_seconds, format_usd, format_value
from .protocol import ReportContext

if TYPE_CHECKING:
    from jinja2 import Template

    from ..record import RunRecord
    from ..results import CallTable, PerfResult, Stats

UPLOT_VERSION = "1.6.32"
"""The vendored uPlot (``html_assets/vendor``)."""
MAX_POINTS = 20_000
"""Calls drawn per run against their start time; beyond that an even sample of the successful
calls (every failed call is kept)."""
CDF_POINTS = 400
"""Quantiles a CDF is drawn through."""
HISTOGRAM_BINS = 40
LOG_SPREAD = 20.0
"""A histogram gets log-spaced bins (and a log axis) when max/min of its samples exceeds this."""
MARKER = "<!-- pytest-agentperf html report -->"
"""Starts every page: marks a file as ours (only such a file is replaced)."""
STATUS_NAMES = ("ok", "error", "timeout")
"""``CallTable.status`` codes by index."""


def _is_page(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(len(MARKER) + 64).lstrip(b"\xef\xbb\xbf")
    return head.startswith(b"<!DOCTYPE html>\n" + MARKER.encode())


KIND = FileKind("pytest-agentperf HTML report", _is_page)
"""Only such a file (or none, or an empty one) is replaced by ``--agentperf-html``."""


class HtmlUnavailable(AgentPerfError):
    """Jinja2 (the ``[html]`` extra) is not installed."""


# --------------------------------------------------------------------------- chart data


def _rounded(values: Any, digits: int) -> list[float | None]:
    """Floats rounded to ``digits`` decimals (short JSON), None for NaN or infinity."""
    a = np.round(np.asarray(values, dtype=np.float64), digits)
    return [v if math.isfinite(v) else None for v in a.tolist()]


def histogram(samples: Any) -> dict[str, Any] | None:
    """Bin edges and counts of ``samples`` (log-spaced edges when they span a wide range, so a
    long tail and the body both show); None without samples."""
    a = np.asarray(samples, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    low, high = float(a.min()), float(a.max())
    log = low > 0 and high / low > LOG_SPREAD
    if high <= low:
        high = low + max(abs(low) * 0.01, 1e-6)
    if log:
        edges = np.geomspace(low, high, HISTOGRAM_BINS + 1)
    else:
        edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(a, bins=edges)
    return {
        "edges": _rounded(edges, 7),
        "counts": [int(c) for c in counts.tolist()],
        "log": bool(log),
    }


def cdf(samples: Any) -> dict[str, Any] | None:
    """The empirical CDF through at most ``CDF_POINTS`` quantiles; None without samples."""
    a = np.sort(np.asarray(samples, dtype=np.float64))
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    if a.size > CDF_POINTS:
        p = np.linspace(0.0, 1.0, CDF_POINTS)
        x = np.quantile(a, p)
    else:
        x = a
        p = np.arange(1, a.size + 1) / a.size
    return {"x": _rounded(x, 7), "p": _rounded(p, 4)}


def _distribution(stats: Stats) -> dict[str, Any] | None:
    if stats.n == 0 or stats.samples.size == 0:
        return None
    return {"hist": histogram(stats.samples), "cdf": cdf(stats.samples)}


def _sample_rows(calls: CallTable) -> tuple[np.ndarray[Any, Any], bool]:
    """The rows drawn against start time: all up to ``MAX_POINTS``, else every failed call
    and an even sample of the others (True: cut)."""
    n = len(calls)
    if n <= MAX_POINTS:
        return np.arange(n), False
    failed = np.flatnonzero(calls.status != 0)
    ok = np.flatnonzero(calls.status == 0)
    room = max(MAX_POINTS - failed.size, 0)
    if ok.size > room:
        ok = ok[np.linspace(0, ok.size - 1, room).astype(np.int64)] if room else ok[:0]
    return np.sort(np.concatenate([failed, ok])), True


def _calls_data(calls: CallTable) -> dict[str, Any]:
    """The per-call series of a run: latency, TTFT, tokens and cost against start time."""
    rows, cut = _sample_rows(calls)
    start = calls.start[rows]
    latency = calls.end[rows] - start
    status = calls.status[rows]
    tokens_in = calls.input_tokens[rows].astype(np.float64)
    tokens_out = calls.output_tokens[rows].astype(np.float64)
    tokens_in[tokens_in < 0] = np.nan
    tokens_out[tokens_out < 0] = np.nan
    return {
        "n": len(calls),
        "shown": int(rows.size),
        "cut": cut,
        "start": _rounded(start, 4),
        "latency": _rounded(latency, 6),
        "status": [int(s) for s in status.tolist()],
        "ttft": _rounded(calls.ttft[rows], 6),
        "input_tokens": _rounded(tokens_in, 0),
        "output_tokens": _rounded(tokens_out, 0),
        "cost": [
            None if not math.isfinite(c) else float(f"{c:.4g}") for c in calls.cost[rows].tolist()
        ],
    }


MIN_WINDOWS = 4
"""Fewer windows than this from the run (a short run): count windows from the calls instead."""
CALL_WINDOWS = 30
"""Windows counted from the per-call table: the run cut into this many."""


def _windows_data(result: PerfResult) -> dict[str, Any] | None:
    """Throughput, errors and RSS per time window: the run's own windows, else (a run too short
    for several) ``CALL_WINDOWS`` windows counted from the per-call table by end time."""
    w = result.windows
    rss = [math.nan if x.rss_mb is None else x.rss_mb for x in w]
    rss_data: dict[str, list[float | None] | None] = {
        "rss_mid": _rounded([(x.start + x.end) / 2 for x in w], 4),
        "rss_mb": _rounded(rss, 2),
    }
    if sum(math.isfinite(v) for v in rss) < 2:
        rss_data = {"rss_mid": None, "rss_mb": None}
    calls = result.calls
    if len(w) >= MIN_WINDOWS or calls is None or len(calls) == 0:
        if not w:
            return None
        return {
            "source": "run",
            "mid": _rounded([(x.start + x.end) / 2 for x in w], 4),
            "throughput": _rounded([x.throughput for x in w], 3),
            "errors": [x.errors for x in w],
            **rss_data,
        }
    end = calls.end[np.isfinite(calls.end)]
    span = float(end.max()) if end.size else 0.0
    width = span / CALL_WINDOWS if span > 0 else 1.0
    edges = np.arange(CALL_WINDOWS + 1) * width
    edges[-1] = max(edges[-1], span)  # the last call's end falls inside the last window
    done, _ = np.histogram(end, bins=edges)
    failed, _ = np.histogram(calls.end[calls.status != 0], bins=edges)
    return {
        "source": "calls",
        "mid": _rounded(edges[:-1] + width / 2, 4),
        "throughput": _rounded(done / width, 3),
        "errors": [int(x) for x in failed.tolist()],
        **rss_data,
    }


def _capacity_data(result: PerfResult) -> dict[str, Any] | None:
    """A capacity search's curve (``agentperf.capacity``): latency percentiles and throughput
    per offered rate, the SLO's latency limit (the line) and the knee (``max_rate``)."""
    cap = result.capacity
    if cap is None or not cap.points:
        return None
    from ..budgets import BUDGETS

    curve = cap.curve
    latency_limits = [
        (name, limit) for name, limit in cap.slo.items() if BUDGETS[name].unit is Unit.SECONDS
    ]
    return {
        "rate": _rounded([p.rate for p in curve], 4),
        "p50": _rounded([math.nan if p.p50 is None else p.p50 for p in curve], 6),
        "p95": _rounded([math.nan if p.p95 is None else p.p95 for p in curve], 6),
        "p99": _rounded([math.nan if p.p99 is None else p.p99 for p in curve], 6),
        "throughput": _rounded([p.throughput for p in curve], 3),
        "held": [p.held for p in curve],
        "slo": [{"name": n, "limit": v} for n, v in latency_limits],
        "knee": cap.max_rate,
    }


def _capacity_text(record: RunRecord, label: str) -> dict[str, Any] | None:
    """The capacity table's rows and what the search found, for the template."""
    cap = record.result.capacity
    if cap is None:
        return None
    from .capacity import HEADERS, found_line, rows

    return {
        "headers": HEADERS[1:],
        "rows": [row[1:] for row in rows([record])],
        "found": found_line(label, cap),
    }


def _tool_rows(result: PerfResult) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "calls": t.calls,
            "errors": t.errors,
            "mean": format_seconds(t.total_time / t.calls) if t.calls else "-",
            "total": format_seconds(t.total_time),
        }
        for name, t in result.tools.items()
    ]


def _model_rows(result: PerfResult) -> list[dict[str, Any]]:
    rows = []
    for model, u in result.usage.by_model.items():
        rows.append(
            {
                "model": model,
                "calls": u.calls,
                "input": u.input_tokens,
                "output": u.output_tokens,
                "cached": u.cached_input_tokens,
                "cost": format_usd(result.cost.by_model.get(model)),
            }
        )
    return rows


def _comparison_rows(record: RunRecord) -> list[dict[str, Any]]:
    comp = record.comparison
    if comp is None:
        return []
    rows = []
    for m in comp.metrics.values():
        rows.append(
            {
                "name": m.name,
                "baseline": format_value(m.baseline, m.unit),
                "current": format_value(m.current, m.unit),
                "change": m.change_text,
                "status": m.status.value,
                "note": m.note or "",
                # the interval on a ratio axis, for the bar drawn beside it
                "ratio": m.change if m.kind.value == "ratio" else None,
                "low": m.low if m.kind.value == "ratio" else None,
                "high": m.high if m.kind.value == "ratio" else None,
                "limit": m.limit if m.kind.value == "ratio" else None,
            }
        )
    return rows


def _bar(row: Mapping[str, Any]) -> dict[str, float] | None:
    """Where the ratio, its interval and the limit fall on a 0.5x-2x log axis, in percent."""
    if row["ratio"] is None or row["ratio"] <= 0:
        return None

    def pos(x: float | None) -> float:
        if x is None or x <= 0:
            return 50.0
        return min(100.0, max(0.0, 50 + 50 * math.log2(x)))

    low = row["low"] if row["low"] is not None else row["ratio"]
    high = row["high"] if row["high"] is not None else row["ratio"]
    return {
        "low": pos(low),
        "width": max(pos(high) - pos(low), 0.5),
        "point": pos(row["ratio"]),
        "limit": pos(row["limit"]),
    }


def _arm_view(record: RunRecord) -> dict[str, Any] | None:
    """An A/B arm's ratios against the reference arm, each with its bar (a paired plot: the
    arm's interval on a ratio axis around the reference at 1x)."""
    arm = record.arm
    if arm is None:
        return None
    rows = []
    for ratio in arm.ratios:
        row: dict[str, Any] = {
            "name": ratio.metric,
            "text": ratio.text,
            "verdict": ratio.verdict,
            "ratio": ratio.estimate if ratio.metric != "error_rate" else None,
            "low": ratio.low,
            "high": ratio.high,
            "limit": None,
        }
        row["bar"] = _bar(row)
        rows.append(row)
    return {
        "comparison": arm.comparison,
        "arm": arm.arm,
        "reference": arm.reference,
        "is_reference": arm.is_reference,
        "confidence": f"{arm.confidence:.0%}",
        "seed": arm.seed,
        "blocks": arm.blocks,
        "rows": rows,
    }


def _fmt_stats(stats: Stats) -> dict[str, str]:
    return {
        k: format_seconds(getattr(stats, k)) for k in ("p50", "p90", "p95", "p99", "max", "mean")
    } | {"n": f"{stats.n:,}"}


def run_view(index: int, record: RunRecord, label: str, cells: Sequence[str]) -> dict[str, Any]:
    """What the template shows of one run (text) and what its charts draw (``data``)."""
    from .terminal import evidence_text

    r = record.result
    calls = r.calls
    streamed = r.ttft.n > 0
    data: dict[str, Any] = {
        "id": f"run{index}",
        "label": label,
        "latency": _distribution(r.latency),
        "ttft": _distribution(r.ttft) if streamed else None,
        "itl": _distribution(r.itl) if r.itl.n else None,
        "calls": _calls_data(calls) if calls is not None and len(calls) else None,
        "windows": _windows_data(r),
        "streamed": streamed,
        "stages": [
            {"start": st.start, "end": st.end, "from": st.target_from, "to": st.target_to}
            for st in r.stages
        ],
        "capacity": _capacity_data(r),
    }
    missing = []
    if calls is None:
        missing.append(
            "the per-call table (latency, TTFT, tokens and cost of each call against its "
            "start time): it is kept only while an output that reads each call is on, such "
            "as --agentperf-html or --agentperf-log"
        )
    rows = _comparison_rows(record)
    for row in rows:
        row["bar"] = _bar(row)
    comp = record.comparison
    return {
        "id": data["id"],
        "label": label,
        "nodeid": record.nodeid,
        "name": record.name,
        "status": record.status.value,
        "status_class": record.status.name.lower(),
        "broken": [b.message for b in r.budgets if not b.passed],
        "budgets": [
            {
                "name": b.name,
                "limit": b.limit,
                "value": b.value,
                "passed": b.passed,
                "message": b.message,
            }
            for b in r.budgets
        ],
        "cells": list(cells),
        "latency": _fmt_stats(r.latency),
        "ttft": _fmt_stats(r.ttft) if streamed else None,
        "itl": _fmt_stats(r.itl) if r.itl.n else None,
        "requests": r.requests,
        "errors": r.errors,
        "timeouts": r.timeouts,
        "error_rate": f"{r.error_rate:.1%}",
        "throughput": f"{r.throughput:.2f}/s",
        "duration": format_seconds(r.duration),
        "aborted": r.aborted,
        "error_types": sorted(r.error_types.items(), key=lambda kv: -kv[1]),
        "error_messages": list(r.error_messages),
        "models": _model_rows(r),
        "cost_total": format_usd(r.cost.total),
        "cost_per_call": format_usd(r.cost.per_call),
        "tools": _tool_rows(r),
        "memory": {
            "start": format_value(r.memory.rss_start_mb, Unit.MEGABYTES),
            "peak": format_value(r.memory.rss_peak_mb, Unit.MEGABYTES),
            "delta": format_value(r.memory.rss_delta_mb, Unit.MEGABYTES),
        },
        "comparison": rows,
        "arm": _arm_view(record),
        "comparison_status": comp.status.value if comp is not None else None,
        "comparison_flags": [f.text for f in comp.flags] if comp is not None else [],
        "findings": [
            {
                "rule": f.rule,
                "severity": f.severity.value,
                "message": f.message,
                "evidence": evidence_text(f.evidence),
                "advice": f.advice,
            }
            for f in record.findings
        ],
        "warnings": list(record.warnings),
        "missing": missing,
        "cut": bool(data["calls"] and data["calls"]["cut"]),
        "shown": data["calls"]["shown"] if data["calls"] else 0,
        "calls_n": data["calls"]["n"] if data["calls"] else 0,
        "capacity": _capacity_text(record, label),
        "data": data,
    }


def script_json(value: Any) -> str:
    """``value`` as JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` and the two
    JavaScript line separators written as ``\\u`` escapes, so no string in it can end the
    element (``</script>``) or start a comment or a tag."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _scrub(value: Any) -> Any:
    """``value`` (JSON-like) with every string redacted (secrets masked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _asset(name: str) -> str:
    return (resources.files(__package__) / "html_assets" / name).read_text(encoding="utf-8")


def chart_assets() -> tuple[str, str]:
    """The vendored uPlot script and style sheet, for another page of ours that draws charts
    (``agentperf history --html``): inline them, the page stays offline."""
    return _asset("vendor/uPlot.iife.min.js"), _asset("vendor/uPlot.min.css")


def _template() -> Template:
    try:
        import jinja2
    except ImportError:
        raise HtmlUnavailable(
            "the HTML report needs Jinja2: pip install 'pytest-agentperf[html]'"
        ) from None
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.from_string(_asset("report.html.j2"))


def render(records: Sequence[RunRecord], *, plugin_version: str, source: str = "") -> str:
    """The page of ``records``. ``source``: where the records came from (a JSON report), said
    under the title. Raises ``HtmlUnavailable`` without Jinja2."""
    template = _template()  # first: it says how to install Jinja2 (and MarkupSafe with it)
    from markupsafe import Markup

    from .markdown import verdict
    from .terminal import table_cells

    headers: list[str] = []
    cells: list[list[str]] = [[] for _ in records]
    if records:
        headers, cells = table_cells(records)
    runs = [
        _scrub(run_view(i, rec, rec.label, row))
        for i, (rec, row) in enumerate(zip(records, cells, strict=True))
    ]
    data = {"runs": [run["data"] for run in runs]}
    page = template.render(
        marker=Markup(MARKER),
        title="Agent performance",
        verdict=verdict(records),
        source=redact(source),
        plugin_version=plugin_version,
        uplot_version=UPLOT_VERSION,
        headers=headers,
        runs=runs,
        # trusted assets of the package, inlined as they are
        uplot_js=Markup(_asset("vendor/uPlot.iife.min.js")),
        uplot_css=Markup(_asset("vendor/uPlot.min.css")),
        app_js=Markup(_asset("report.js")),
        app_css=Markup(_asset("report.css")),
        data=Markup(script_json(data)),
    )
    return page


def write(
    path: str | Path,
    records: Sequence[RunRecord],
    plugin_version: str,
    *,
    root: str | Path | None = None,
    source: str = "",
) -> Path:
    """Write the page atomically; returns the path written. Raises ``HtmlUnavailable``,
    ``OutputPathError`` (not ours to replace) or ``OSError``."""
    text = render(records, plugin_version=plugin_version, source=source)
    return write_atomic(path, text, kind=KIND, root=root)


class HtmlWriter:
    """``--agentperf-html=PATH``: the ``ReportWriter`` of the HTML dashboard."""

    label = "HTML report"

    def __init__(self, path: str) -> None:
        self.target = path

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        written = write(self.target, records, context.plugin_version, root=context.root)
        return f"{self.label} written to {written}"


def create(value: str | None, options: Mapping[str, Any]) -> HtmlWriter:
    """The writer of ``--agentperf-html=value``."""
    if not value:
        raise ValueError("the HTML report needs a path")
    return HtmlWriter(value)
