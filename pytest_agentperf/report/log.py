"""``--agentperf-log=PATH``: every measured call of the session as one JSON object a line.

Written once, after the session, from each run's call table (``PerfResult.calls``), so it adds
nothing to a measured call. Warmup calls are not measured and not logged. Prompt and answer
text are left out unless ``--agentperf-log-content`` is given; every string written has passed
through ``redact``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import FileKind, write_atomic
from ..record import RunRecord
from ..redact import redact
from ..results import CallTable
from .protocol import ReportContext

STATUS_WORDS = ("ok", "error", "timeout")
"""``status`` of a line, by the table's status code."""

FIELDS = (
    "test",
    "run",
    "i",
    "intended_start",
    "start",
    "end",
    "latency",
    "ttft",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cost",
    "model",
    "llm_calls",
    "tool_calls",
    "timestamp",
)
"""The keys of every line, in order (``input`` and ``output`` follow with content)."""


def _recognise(path: Path) -> bool:
    """A per-call log of ours: its first line is an object with our first keys."""
    with open(path, "rb") as f:
        first = f.readline(64 * 1024)
    try:
        obj = json.loads(first.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and list(obj)[:3] == list(FIELDS[:3])


KIND = FileKind("pytest-agentperf per-call log", _recognise)
"""Only such a file (or none, or an empty one) is replaced."""


def _number(x: float, digits: int = 6) -> float | None:
    return round(x, digits) if math.isfinite(x) else None


def lines(record: RunRecord, content: bool) -> Iterator[str]:
    """The lines of one run's calls (none when the run kept no call table)."""
    calls: CallTable | None = record.result.calls
    if calls is None:
        return
    test, run = redact(record.nodeid), redact(record.name)
    errors = calls.error_type()
    counts = _span_counts(calls)
    columns = zip(
        calls.start.tolist(),
        calls.actual.tolist(),
        calls.end.tolist(),
        calls.ttft.tolist(),
        calls.status.tolist(),
        calls.input_tokens.tolist(),
        calls.output_tokens.tolist(),
        calls.cost.tolist(),
        calls.model.tolist(),
        strict=True,
    )
    for i, (start, actual, end, ttft, status, inp, out, cost, model) in enumerate(columns):
        line: dict[str, Any] = {
            "test": test,
            "run": run,
            "i": i,
            "intended_start": _number(start),
            "start": _number(actual),
            "end": _number(end),
            "latency": _number(end - start),
            "ttft": _number(ttft),
            "status": STATUS_WORDS[status],
            "error_type": None if errors[i] is None else redact(errors[i] or ""),
            "input_tokens": None if inp < 0 else inp,
            "output_tokens": None if out < 0 else out,
            "cost": _number(cost, 12),
            "model": None if model < 0 else redact(calls.names[model]),
            "llm_calls": counts[0][i],
            "tool_calls": counts[1][i],
            "timestamp": round(calls.t0_unix + actual, 6),
        }
        if content:
            line["input"] = calls.inputs[i] if calls.inputs else None
            line["output"] = calls.outputs[i] if calls.outputs else None
        yield json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n"


def _span_counts(calls: CallTable) -> tuple[list[int], list[int]]:
    """LLM requests and tool calls of each call."""
    from ..results import CHAT, TOOL

    llm, tools = [0] * len(calls), [0] * len(calls)
    for row, kind in zip(calls.spans.call.tolist(), calls.spans.kind.tolist(), strict=True):
        if kind == CHAT:
            llm[row] += 1
        elif kind == TOOL:
            tools[row] += 1
    return llm, tools


class LogWriter:
    """``--agentperf-log=PATH``: the ``ReportWriter`` of the per-call log."""

    label = "per-call log"

    def __init__(self, path: str, content: bool) -> None:
        self.target = path
        self.content = content

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        parts = (line for record in records for line in lines(record, self.content))
        written = write_atomic(self.target, parts, kind=KIND, root=context.root)
        calls = sum(len(r.result.calls) for r in records if r.result.calls is not None)
        return f"{self.label} written to {written} ({calls} calls)"


def create(value: str | None, options: Mapping[str, Any]) -> LogWriter:
    """The writer of ``--agentperf-log=value`` (``--agentperf-log-content``: with text)."""
    if not value:
        raise ValueError("the per-call log needs a path")
    return LogWriter(value, bool(options.get("agentperf_log_content")))
