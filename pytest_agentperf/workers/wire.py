"""What a worker sends back: its raw call log as plain data, and the controller's ``CallLog``
rebuilt from it.

The one place where a worker's measurements cross the process boundary: every call's times,
status, TTFT, gaps between chunks (with the rows they belong to), usage and tool counts (and,
when a report reads each call, its detail), never a statistic. Arrays travel as bytes (execnet
sends bytes as they are).
"""

from __future__ import annotations

import dataclasses
from array import array
from collections import Counter
from typing import Any

import numpy as np

from ..engine.log import CallDetail, CallLog
from ..engine.run import RawRun
from ..usage import ToolCall, UsageAccumulator, UsageRecord

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(UsageRecord))


def _bytes(values: np.ndarray[Any, Any] | None) -> bytes | None:
    return None if values is None else np.ascontiguousarray(values).tobytes()


def _floats(data: bytes) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.frombuffer(data, dtype=np.float64)


def _ints(data: bytes) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.frombuffer(data, dtype=np.int64)


def _detail(detail: CallDetail) -> tuple[Any, ...]:
    records = (
        None
        if detail.records is None
        else [tuple(getattr(r, name) for name in _RECORD_FIELDS) for r in detail.records]
    )
    tools = None if detail.tools is None else [tuple(t) for t in detail.tools]
    return (records, tools, detail.given, detail.returned)


def pack_run(raw: RawRun, cpu_seconds: float) -> dict[str, Any]:
    """A worker's run as plain data (times in seconds since the worker's own start)."""
    log = raw.log
    return {
        "start": _bytes(log.start),
        "end": _bytes(log.end),
        "status": _bytes(log.status),
        "ttft": _bytes(log.ttft),
        "itl": _bytes(log.itl),
        "itl_rows": _bytes(log.itl_rows),
        "itl_counts": _bytes(log.itl_counts),
        "actual": _bytes(log.actual),
        "llm_rows": _bytes(log.llm_rows),
        "llm_calls": _bytes(log.llm_calls),
        "llm_tokens": _bytes(log.llm_tokens),
        "tool_rows": _bytes(log.tool_rows),
        "tool_calls": _bytes(log.tool_calls),
        "error_rows": _bytes(log.error_rows),
        "error_types": list(log.error_types),
        "cpu_per_call": log.cpu_per_call,
        "detail": log.detail,
        "detail_rows": _bytes(log.detail_rows),
        "details": [_detail(d) for d in log.details],
        "t0_perf": log.t0,
        "t0_unix": raw.t0_unix,
        "usage": raw.usage.to_plain(),
        "error_counts": dict(raw.error_types),
        "error_messages": list(raw.error_messages),
        "duration": raw.duration,
        "late_starts": raw.late_starts,
        "aborted": raw.aborted,
        "issued": raw.issued,
        "target": raw.target,
        "cpu_seconds": cpu_seconds,
    }


def _shift_detail(row: Any, moved: float) -> CallDetail:
    """A call's detail with its perf_counter times moved by ``moved`` seconds."""
    records_in, tools_in, given, returned = row
    records = None
    if records_in is not None:
        records = []
        for values in records_in:
            record = UsageRecord(**dict(zip(_RECORD_FIELDS, values, strict=True)))
            if record.start is not None:
                record.start += moved
            if record.end is not None:
                record.end += moved
            records.append(record)
    tools: list[ToolCall] | None = None
    if tools_in is not None:
        tools = [(str(n), float(s), bool(ok), float(end) + moved) for n, s, ok, end in tools_in]
    return CallDetail(records, tools, given, returned)


def unpack_log(payload: dict[str, Any], shift: float, t0: float) -> CallLog:
    """The worker's calls as a ``CallLog`` of the merged run: times ``shift`` seconds later
    than the worker's (its start after the common start), relative to the common start; the
    perf_counter times in the details move onto ``t0``, the merged log's start."""
    log = CallLog(int(payload["detail"]))
    start = _floats(payload["start"])
    end = _floats(payload["end"])
    if shift:
        start, end = start + shift, end + shift
    log.start = array("d", start.tobytes())
    log.end = array("d", end.tobytes())
    if payload["actual"] is not None:
        actual = _floats(payload["actual"])
        log.actual = array("d", (actual + shift if shift else actual).tobytes())
    status = np.frombuffer(payload["status"], dtype=np.int8)
    failed = _ints(payload["error_rows"])
    log.failed_rows = array("q", failed.tobytes())
    log.failed_status = array("b", status[failed].tobytes())
    log.failed_types = [str(t) for t in payload["error_types"]]
    ttft = _floats(payload["ttft"])
    gap_rows = _ints(payload["itl_rows"])
    # every stream with gaps has a TTFT; the union only guards against a log that breaks that
    streamed = np.union1d(np.flatnonzero(~np.isnan(ttft)), gap_rows).astype(np.int64)
    counts = np.zeros(streamed.size, dtype=np.int64)
    counts[np.searchsorted(streamed, gap_rows)] = _ints(payload["itl_counts"])
    log.ttft_rows = array("q", streamed.tobytes())
    log.itl = array("d", payload["itl"])
    log.itl_counts = array("q", counts.tobytes())
    log.ttft_values = array("d", ttft[streamed].tobytes())
    log.llm_rows = array("q", payload["llm_rows"])
    log.llm_calls = array("q", payload["llm_calls"])
    log.llm_tokens = array("q", payload["llm_tokens"])
    log.tool_rows = array("q", payload["tool_rows"])
    log.tool_calls = array("q", payload["tool_calls"])
    log.error_types = Counter({str(k): int(v) for k, v in payload["error_counts"].items()})
    log.usage = UsageAccumulator.from_plain(payload["usage"])
    per_call = payload["cpu_per_call"]
    if per_call is not None:
        log.add_cpu(float(per_call) * len(start), len(start))
    if log.detail:
        moved = t0 + shift - float(payload["t0_perf"])
        log.detail_rows = array("q", payload["detail_rows"])
        log.content = [_shift_detail(row, moved) for row in payload["details"]]
    return log
