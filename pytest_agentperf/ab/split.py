"""One interleaved run cut back into one ``RawRun`` per arm, and the per-call figures the
paired statistics read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from ..calls import call_table
from ..engine import RawRun
from ..engine.log import OK, MergedLog
from ..engine.plan import LATE_AFTER
from ..pricing import PriceTable
from ..results import FloatArray, IntArray
from ..usage import UsageAccumulator
from .schedule import Call

MATCH_SLACK = 1e-6
"""Seconds a mark may precede its row's start by rounding alone (start is stored relative to
the run's start and added back)."""


def rows_to_calls(log: MergedLog, marks: Sequence[tuple[float, int]]) -> IntArray:
    """The schedule index of each row of ``log`` (-1 for a row no mark claims).

    A row's start (closed loop) or actual start (open loop) is read by the engine right
    before it calls the dispatcher, which notes its mark first thing: so a call's mark is the
    first mark at or after its start. Marks are taken in time order, each claiming the latest
    row that started before it and is not claimed yet. On one event loop nothing runs between
    the two readings, so this is exact; with threads, two calls would have to start within
    the same microseconds on two threads, with a thread switch in between, to be confused.
    """
    n = len(log)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or not marks:
        return out
    key = log.start if log.actual is None else log.actual
    starts = key + log.t0
    order = np.argsort(starts, kind="stable").tolist()
    sorted_starts = starts[order].tolist()
    waiting: list[int] = []  # rows started before the current mark, unclaimed, oldest first
    p = 0
    for t, i in sorted(marks):
        while p < n and sorted_starts[p] <= t + MATCH_SLACK:
            waiting.append(order[p])
            p += 1
        if waiting:
            out[waiting.pop()] = i
    return out


def _subset(log: MergedLog, rows: IntArray, detail: int) -> MergedLog:
    """The rows ``rows`` (ascending) of ``log`` as a log of their own; ``detail``: what the
    subset keeps of each call beyond its times (the run's own ``detail``)."""
    n = len(log)
    keep = np.zeros(n, dtype=bool)
    keep[rows] = True
    new_row = np.cumsum(keep) - 1

    def sparse(at: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        sel = keep[at] if at.size else np.zeros(0, dtype=bool)
        return new_row[at[sel]].astype(np.int64), sel

    llm_rows, llm_sel = sparse(log.llm_rows)
    tool_rows, tool_sel = sparse(log.tool_rows)
    error_rows, error_sel = sparse(log.error_rows)
    detail_rows, detail_sel = sparse(log.detail_rows)
    itl_rows, itl_sel = sparse(log.itl_rows)
    own_gaps = np.repeat(itl_sel, log.itl_counts)  # a stream's gaps go where its call goes
    return MergedLog(
        start=log.start[rows],
        end=log.end[rows],
        status=log.status[rows],
        ttft=log.ttft[rows],
        itl=log.itl[own_gaps],
        cpu_per_call=log.cpu_per_call,
        llm_rows=llm_rows,
        llm_calls=log.llm_calls[llm_sel],
        llm_tokens=log.llm_tokens[llm_sel],
        tool_rows=tool_rows,
        tool_calls=log.tool_calls[tool_sel],
        actual=None if log.actual is None else log.actual[rows],
        error_rows=error_rows,
        error_types=tuple(t for t, s in zip(log.error_types, error_sel.tolist(), strict=True) if s),
        detail=detail,
        detail_rows=detail_rows if detail else np.zeros(0, dtype=np.int64),
        details=tuple(d for d, s in zip(log.details, detail_sel.tolist(), strict=True) if s)
        if detail
        else (),
        t0=log.t0,
        itl_rows=itl_rows,
        itl_counts=log.itl_counts[itl_sel],
    )


@dataclass(frozen=True)
class ArmCalls:
    """Per-call figures of one arm, in start order, for the paired statistics."""

    block: IntArray
    latency: FloatArray
    ok: npt.NDArray[np.bool_]
    ttft: FloatArray
    """NaN for a call that did not stream (or failed)."""
    tokens: FloatArray
    """Total tokens per call (0 for a call that recorded none; all NaN when none did)."""
    cost: FloatArray
    """Cost per call in USD (0 for a call without usage; NaN where a price is unknown)."""


def split(
    raw: RawRun,
    calls: Sequence[Call],
    marks: Sequence[tuple[float, int]],
    messages: Sequence[Sequence[str]],
    arms: int,
    *,
    detail: int,
    model: str | None,
    prices: PriceTable | None,
) -> list[tuple[RawRun, ArmCalls]]:
    """``raw`` (the interleaved run, logged with ``KEEP_CALLS`` or more) cut into one raw run
    per arm, with each arm's per-call figures. ``detail``: what each arm's log keeps (the
    session's ``--agentperf-log`` and friends)."""
    log = raw.log
    index = rows_to_calls(log, marks)
    known = index >= 0
    arm_of = np.full(len(log), -1, dtype=np.int64)
    block_of = np.full(len(log), -1, dtype=np.int64)
    if calls:
        arm_table = np.array([c.arm for c in calls], dtype=np.int64)
        block_table = np.array([c.block for c in calls], dtype=np.int64)
        arm_of[known] = arm_table[index[known]]
        block_of[known] = block_table[index[known]]
    table = call_table(log, t0_unix=raw.t0_unix, model=model, prices=prices)
    with_usage = table.input_tokens >= 0
    tokens = np.where(with_usage, table.input_tokens + table.output_tokens, 0).astype(np.float64)
    cost = np.where(with_usage, table.cost, 0.0)
    out = []
    for a in range(arms):
        rows = np.flatnonzero(arm_of == a)
        sub = _subset(log, rows, detail)
        usage = UsageAccumulator()
        for row, d in zip(log.detail_rows.tolist(), log.details, strict=True):
            if arm_of[row] == a:
                usage.add_call(d.records or (), model)
                usage.add_tools(d.tools or ())
        late = 0
        if sub.actual is not None:
            late = int(np.count_nonzero(sub.actual - sub.start > LATE_AFTER))
        arm_raw = replace(
            raw,
            log=sub,
            usage=usage,
            error_types=dict(Counter(sub.error_types).most_common()),
            error_messages=tuple(messages[a]),
            late_starts=late,
            issued=None,
        )
        arm_tokens = tokens[rows] if bool(with_usage[rows].any()) else np.full(rows.size, np.nan)
        figures = ArmCalls(
            block=block_of[rows],
            latency=sub.latency,
            ok=sub.status == OK,
            ttft=np.where(sub.status == OK, sub.ttft, np.nan),
            tokens=arm_tokens,
            cost=cost[rows] if bool(with_usage[rows].any()) else np.full(rows.size, np.nan),
        )
        out.append((arm_raw, figures))
    return out
