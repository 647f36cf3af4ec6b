"""Per-worker logs of measured calls, kept in flat arrays so a million calls stay small."""

from __future__ import annotations

import struct
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from ..redact import redact
from ..results import CONTENT_LIMIT, FloatArray, StatusArray
from ..usage import CallScope, ToolCall, UsageAccumulator, UsageRecord, read_usage
from .spend import SpendMeter
from .streams import StreamTimes

OK, ERROR, TIMEOUT = 0, 1, 2
KEEP_CALLS, KEEP_CONTENT = 1, 2
"""``CallLog.detail``: keep each call's usage and tools; also its input and output text."""
_NAN = float("nan")


class CallDetail(NamedTuple):
    """What ``CallLog`` keeps of one call when it keeps detail (a tuple: made once per call,
    on the measuring thread, so it must be cheap)."""

    records: list[UsageRecord] | None
    tools: list[ToolCall] | None
    given: str | None = None
    returned: str | None = None


def _text(value: Any) -> str | None:
    """``value`` as text for the per-call log: redacted, cut to ``CONTENT_LIMIT``."""
    if value is None:
        return None
    try:
        text = value if isinstance(value, str) else repr(value)
    except Exception as exc:  # a repr that raises must not fail the call
        text = f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
    return redact(text[:CONTENT_LIMIT])


MAX_ERROR_MESSAGES = 5
T = TypeVar("T", bound=np.generic)
U = TypeVar("U")


class CallLog:
    """Completed calls of one worker (one writer; readers on other threads may copy it).

    A row is two floats, its intended start and its end, as the writer's clock read them
    (``merge`` and ``snapshot`` subtract the run's start): a successful call that did not
    stream appends nothing else (the executors append those two themselves on their hot path,
    ``log.start.append`` then ``log.end.append``). The rare parts are kept sparse, as (row, value)
    pairs: the status of a call that failed (``failed_rows``, ``failed_status``), the TTFT
    of a stream (``ttft_rows``, ``ttft_values``) with its number of gaps between chunks
    (``itl_counts``), the LLM requests and total tokens of a call that recorded usage
    (``llm_rows``, ``llm_calls``, ``llm_tokens``) and the tool calls of a call that recorded
    tools (``tool_rows``, ``tool_calls``). A row's sparse pairs are appended row first, before
    its start and end, and ``end`` last: readers take ``len(end)`` as the number of complete
    rows.

    The gaps of the streams follow each other in ``itl``, stream after stream, in the order of
    ``ttft_rows``; ``itl_counts`` says which are whose. A gap costs its 8-byte value only, a
    stream 8 bytes more for its count; a call that does not stream costs nothing more.

    Open loop, the executors also append each call's actual start to ``actual`` (before
    ``end``); closed loop, a call starts when it is meant to, and ``actual`` stays empty.

    ``detail`` (``KEEP_CALLS``, ``KEEP_CONTENT``) keeps more of each call that goes through
    ``record``, for the outputs that read each call (``results.CallTable``): its usage records
    and tool calls, and with ``KEEP_CONTENT`` its input and output as text (then every call
    goes through ``record``).
    """

    __slots__ = (
        "actual",
        "content",
        "cpu",
        "detail",
        "detail_rows",
        "end",
        "error_types",
        "failed_rows",
        "failed_status",
        "failed_types",
        "itl",
        "itl_counts",
        "llm_calls",
        "llm_rows",
        "llm_tokens",
        "meter",
        "start",
        "tool_calls",
        "tool_rows",
        "ttft_rows",
        "ttft_values",
        "usage",
    )

    def __init__(self, detail: int = 0, meter: SpendMeter | None = None) -> None:
        self.meter = meter
        """The run's spend guard, told the usage of each call recorded here (None: no spend
        budget)."""
        self.start = array("d")
        self.actual = array("d")
        self.end = array("d")
        self.failed_rows = array("q")
        self.failed_status = array("b")
        self.failed_types: list[str] = []
        self.ttft_rows = array("q")
        self.ttft_values = array("d")
        self.itl = array("d")
        self.itl_counts = array("q")
        self.llm_rows = array("q")
        self.llm_calls = array("q")
        self.llm_tokens = array("q")
        self.tool_rows = array("q")
        self.tool_calls = array("q")
        self.error_types: Counter[str] = Counter()
        self.usage = UsageAccumulator()
        self.cpu: tuple[float, int] = (0.0, 0)
        """Thread CPU seconds of this log's worker and the calls they cover (sync agents)."""
        self.detail = detail
        self.detail_rows = array("q")
        self.content: list[CallDetail] = []
        """What ``detail`` keeps of each call in ``detail_rows``."""

    def __len__(self) -> int:
        return len(self.end)

    def extend(self, starts: list[float], ends: list[float]) -> None:
        """Append the rows of plain calls kept in two lists (as the hot path's appends would,
        ``end`` last) and empty the lists.

        A sync closed-loop worker gathers rows in lists and hands them over every few ms: a
        list append costs a third of an ``array("d")`` append, which parses its argument, and
        ``struct.pack`` converts a batch at a few ns a float.
        """
        n = len(ends)
        if n:
            self.start.frombytes(struct.pack(f"{n}d", *starts))
            self.end.frombytes(struct.pack(f"{n}d", *ends))
            starts.clear()
            ends.clear()

    def add_cpu(self, seconds: float, calls: int) -> None:
        """Count ``seconds`` of this worker thread's CPU time over ``calls`` calls."""
        if calls > 0:
            total, n = self.cpu
            self.cpu = (total + seconds, n + calls)  # one assignment: readers see both or none

    def record(
        self,
        t_int: float,
        end: float,
        status: int,
        error: str | None,
        stream: StreamTimes | None,
        scope: CallScope | None,
        value: Any,
        model: str | None,
        actual: float | None = None,
        given: Any = None,
    ) -> None:
        """Append one measured call with what it recorded in ``scope`` (None: nothing);
        ``actual``: when it started, open loop; ``given``: its input (kept with
        ``KEEP_CONTENT``).

        Usage recorded during a failed call still counts (those tokens were billed); usage is
        read from the return value only for a successful call that recorded none.

        Usage is read before any row is appended: when reading it raises
        (``UsageExtractionError``), nothing is recorded and the caller records the call as
        failed instead. Each usage record is one LLM request of the call.
        """
        records: list[UsageRecord] | None = None if scope is None else scope.records
        row = len(self.end)
        if status == OK:
            if not records and value is not None:
                records = read_usage(value)
            if stream is not None:
                # row, gaps, count, then TTFT last: a reader that sees the TTFT sees the rest
                self.ttft_rows.append(row)
                gaps = stream.gaps
                self.itl.extend(gaps)
                self.itl_counts.append(len(gaps))
                self.ttft_values.append(stream.first)
        else:
            kind = "Timeout" if status == TIMEOUT else error or "Error"
            self.failed_types.append(kind)  # before its row: the row is the pair's last part
            self.failed_rows.append(row)
            self.failed_status.append(status)
            self.error_types[kind] += 1
        if records:
            self.llm_rows.append(row)
            self.llm_calls.append(len(records))
            self.llm_tokens.append(sum(r.input_tokens + r.output_tokens for r in records))
        tools = None if scope is None else scope.tools
        if tools:
            self.tool_rows.append(row)
            self.tool_calls.append(len(tools))
        if self.detail:
            if self.detail == KEEP_CONTENT:
                detail = CallDetail(
                    records or None,
                    tools or None,
                    _text(given),
                    _text(value) if status == OK else None,
                )
            else:
                detail = CallDetail(records or None, tools or None)
            self.content.append(detail)
            self.detail_rows.append(row)
        self.start.append(t_int)
        if actual is not None:
            self.actual.append(actual)
        self.end.append(end)
        if records:
            self.usage.add_call(records, model)
            if self.meter is not None:  # after the row: the call that crosses a limit counts
                self.meter.add(records, model)
        if tools:
            self.usage.add_tools(tools)


IntArray = npt.NDArray[np.int64]


def _no_ints() -> IntArray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class MergedLog:
    """All measured calls of a run, sorted by intended start; times in seconds since run start."""

    start: FloatArray
    end: FloatArray
    status: StatusArray
    ttft: FloatArray
    itl: FloatArray
    """The gaps between the chunks of every successful stream, stream by stream in row order
    (each stream's gaps in the order they came)."""
    cpu_per_call: float | None = None
    """Mean CPU seconds per call of the worker threads (sync agents): each thread's CPU time
    over the calls it made, summed, over those calls. None when not measured (async agents)."""
    llm_rows: IntArray = field(default_factory=_no_ints)
    """The rows (sorted order, as ``start``) of the calls that recorded usage, ascending; sparse,
    as most runs of a plain agent have none."""
    llm_calls: IntArray = field(default_factory=_no_ints)
    """LLM requests (usage records) of each call in ``llm_rows``."""
    llm_tokens: IntArray = field(default_factory=_no_ints)
    """Total tokens (input + output) of each call in ``llm_rows``."""
    tool_rows: IntArray = field(default_factory=_no_ints)
    """The rows of the calls that recorded tool calls, ascending."""
    tool_calls: IntArray = field(default_factory=_no_ints)
    """Tool calls of each call in ``tool_rows``."""
    actual: FloatArray | None = None
    """When each call started (open loop); None: as ``start`` (closed loop)."""
    error_rows: IntArray = field(default_factory=_no_ints)
    """The rows of the calls that failed, ascending."""
    error_types: tuple[str, ...] = ()
    """The error type of each call in ``error_rows`` ("Timeout" for a timeout)."""
    detail: int = 0
    """The logs' ``detail`` (0: nothing more kept)."""
    detail_rows: IntArray = field(default_factory=_no_ints)
    """The rows of the calls in ``details``, ascending."""
    details: tuple[CallDetail, ...] = ()
    t0: float = 0.0
    """The run's start (``time.perf_counter``), subtracted from every time above."""
    itl_rows: IntArray = field(default_factory=_no_ints)
    """The rows of the streams with at least one gap, ascending; sparse as ``llm_rows``."""
    itl_counts: IntArray = field(default_factory=_no_ints)
    """The number of gaps in ``itl`` of each row in ``itl_rows`` (they sum to ``itl.size``).
    Kept per stream, not per gap: a gap costs only its 8-byte value, a stream 16 bytes more."""

    @property
    def latency(self) -> FloatArray:
        return self.end - self.start

    def __len__(self) -> int:
        return int(self.start.size)

    def gap_rows(self) -> IntArray:
        """The row of each gap in ``itl`` (made on demand: 8 bytes a gap while it lives)."""
        return np.repeat(self.itl_rows, self.itl_counts)


def _copy(values: array[Any], n: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The first ``n`` values as a numpy array.

    The slice is copied under the GIL first: a numpy view of the live array would export its
    buffer, and a worker appending to it at that moment would fail with BufferError.
    """
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(values[:n], dtype=dtype)


def _sparse(
    rows: array[Any], values: array[Any], n: int, fill: Any, dtype: type[np.generic]
) -> npt.NDArray[Any]:
    """A column of ``n`` rows: ``fill`` but where ``rows`` / ``values`` pairs say otherwise.

    Pairs are appended row first: the complete ones are the first ``len(values)``; a pair of
    a row not complete yet (``>= n``) is left out.
    """
    out = np.full(n, fill, dtype=dtype)
    k = len(values)
    if k:
        at = _copy(rows, k, np.int64)
        got = _copy(values, k, dtype)
        keep = at < n
        out[at[keep]] = got[keep]
    return out


def _pairs(
    rows: array[Any], columns: Sequence[array[Any]], n: int
) -> tuple[IntArray, list[IntArray]]:
    """The complete (row, values...) tuples of rows below ``n``, as int64 arrays.

    Each tuple is appended row first, then its columns in order: the complete ones are the
    first ``len`` of the last column.
    """
    k = len(columns[-1])
    at = _copy(rows, k, np.int64)
    values = [_copy(c, k, np.int64) for c in columns]
    if k and at[-1] >= n:  # rows ascend: only the last few can belong to rows not complete yet
        keep = at < n
        at, values = at[keep], [v[keep] for v in values]
    return at, values


def _columns(log: CallLog, t0: float) -> tuple[FloatArray, FloatArray, StatusArray, int]:
    n = len(log.end)  # the last column appended: every other one has at least n rows
    start = _copy(log.start, n, np.float64)
    end = _copy(log.end, n, np.float64)
    if t0:  # in place: the copies are this function's own
        start -= t0
        end -= t0
    status = _sparse(log.failed_rows, log.failed_status, n, OK, np.int8)
    return start, end, status, n


def snapshot(
    logs: Iterable[CallLog], t0: float = 0.0
) -> tuple[FloatArray, FloatArray, StatusArray]:
    """start, end (seconds since ``t0``) and status of the calls completed so far (safe while
    workers append)."""
    starts, ends, statuses = [], [], []
    for log in list(logs):
        start, end, status, _ = _columns(log, t0)
        starts.append(start)
        ends.append(end)
        statuses.append(status)
    if not starts:
        return _EMPTY, _EMPTY, _EMPTY_B
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(statuses)


_EMPTY: FloatArray = np.zeros(0, dtype=np.float64)
_EMPTY_B = np.zeros(0, dtype=np.int8)


def _join(parts: list[npt.NDArray[T]]) -> npt.NDArray[T]:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)  # one part: no copy


def merge(logs: Sequence[CallLog], t0: float = 0.0) -> MergedLog:
    """One sorted log of every worker's calls, in seconds since ``t0`` (the run's start)."""
    cpu_seconds, cpu_calls = 0.0, 0
    for log in logs:
        seconds, calls = log.cpu
        cpu_seconds += seconds
        cpu_calls += calls
    detail = max((log.detail for log in logs), default=0)
    logs = [log for log in logs if len(log)]  # fewer parts: often one, then nothing to join
    if not logs:
        return MergedLog(_EMPTY, _EMPTY, _EMPTY_B, _EMPTY, _EMPTY, detail=detail, t0=t0)
    starts, ends, statuses, ttfts, itls, actuals = [], [], [], [], [], []
    streams: list[tuple[IntArray, list[IntArray]]] = []
    llm: list[tuple[IntArray, list[IntArray]]] = []
    tool: list[tuple[IntArray, list[IntArray]]] = []
    error_rows: list[IntArray] = []
    error_types: list[str] = []
    detail_rows: list[IntArray] = []
    details: list[CallDetail] = []
    opened = any(len(log.actual) for log in logs)  # open loop: else no column of its own
    offset = 0
    for log in logs:
        start, end, status, n = _columns(log, t0)
        starts.append(start)
        ends.append(end)
        statuses.append(status)
        if opened:
            actuals.append(_actual(log, start, n, t0))
        ttfts.append(_sparse(log.ttft_rows, log.ttft_values, n, _NAN, np.float64))
        at, counts, gaps = _gaps(log, n)
        itls.append(gaps)
        streams.append((at + offset, [counts]))
        at, values = _pairs(log.llm_rows, (log.llm_calls, log.llm_tokens), n)
        llm.append((at + offset, values))
        at, values = _pairs(log.tool_rows, (log.tool_calls,), n)
        tool.append((at + offset, values))
        at = _rows(log.failed_rows, len(log.failed_status), n)
        error_rows.append(at + offset)
        error_types += log.failed_types[: at.size]
        if detail:
            at = _rows(log.detail_rows, len(log.detail_rows), n)
            detail_rows.append(at + offset)
            details += log.content[: at.size]
        offset += n
    start, end, ttft, itl = (_join(parts) for parts in (starts, ends, ttfts, itls))
    actual = _join(actuals) if opened else None
    status = _join(statuses)
    itl_rows, (itl_counts,) = _join_pairs(streams, 1)
    llm_rows, (llm_calls, llm_tokens) = _join_pairs(llm, 2)
    tool_rows, (tool_calls,) = _join_pairs(tool, 1)
    failed = _join(error_rows)
    kept = _join(detail_rows) if detail_rows else _no_ints()
    if start.size > 1 and not bool(np.all(start[1:] >= start[:-1])):  # else sorted already
        order = np.argsort(start, kind="stable")
        start, end, status, ttft = start[order], end[order], status[order], ttft[order]
        actual = None if actual is None else actual[order]
        new_row = np.empty_like(order)
        new_row[order] = np.arange(order.size)
        # the sparse rows follow their calls
        itl, itl_rows, itl_counts = _move_gaps(itl, itl_rows, itl_counts, new_row)
        llm_rows, (llm_calls, llm_tokens) = _renumber(llm_rows, (llm_calls, llm_tokens), new_row)
        tool_rows, (tool_calls,) = _renumber(tool_rows, (tool_calls,), new_row)
        failed, error_types = _renumber_objects(failed, error_types, new_row)
        kept, details = _renumber_objects(kept, details, new_row)
    cpu = cpu_seconds / cpu_calls if cpu_calls else None
    return MergedLog(
        start,
        end,
        status,
        ttft,
        itl,
        cpu,
        llm_rows,
        llm_calls,
        llm_tokens,
        tool_rows,
        tool_calls,
        actual=actual,
        error_rows=failed,
        error_types=tuple(error_types),
        detail=detail,
        detail_rows=kept,
        details=tuple(details),
        t0=t0,
        itl_rows=itl_rows,
        itl_counts=itl_counts,
    )


def _gaps(log: CallLog, n: int) -> tuple[IntArray, IntArray, FloatArray]:
    """The streams of rows below ``n`` that have gaps: their rows, their numbers of gaps, and
    the gaps (stream after stream).

    A stream's row, gaps and count are appended before its TTFT: the complete streams are the
    first ``len(ttft_values)``, and their gaps the first ``sum`` of their counts.
    """
    k = len(log.ttft_values)
    at = _copy(log.ttft_rows, k, np.int64)
    counts = _copy(log.itl_counts, k, np.int64)
    if k and at[-1] >= n:  # rows ascend: the streams of rows not complete yet are the last
        keep = at < n
        at, counts = at[keep], counts[keep]
    gaps = _copy(log.itl, int(counts.sum()), np.float64)
    some = counts > 0
    return at[some], counts[some], gaps


def _move_gaps(
    itl: FloatArray, rows: IntArray, counts: IntArray, new_row: IntArray
) -> tuple[FloatArray, IntArray, IntArray]:
    """The gaps and their streams' (row, count) pairs moved with their calls by the sort: the
    streams in their calls' new order, each stream's gaps together and in the order they came.

    One gather, linear in the gaps: gap ``p`` of the new layout, the ``p - new_at``-th gap of
    its stream, comes from that stream's old place ``old_at`` plus as much.
    """
    if not rows.size:
        return itl, rows, counts
    moved, order = _moved(rows, new_row)
    old_at = np.cumsum(counts) - counts  # where each stream's gaps start, before the sort
    counts = counts[order]
    new_at = np.cumsum(counts) - counts
    source = np.repeat(old_at[order] - new_at, counts) + np.arange(itl.size)
    return itl[source], moved, counts


def _rows(rows: array[Any], k: int, n: int) -> IntArray:
    """The first ``k`` of ``rows`` (the complete pairs), less those of rows not complete yet
    (``>= n``; rows ascend, so they are the last)."""
    at: IntArray = _copy(rows, k, np.int64)
    return at[at < n] if k and at[-1] >= n else at


def _actual(log: CallLog, start: FloatArray, n: int, t0: float) -> FloatArray:
    """When each of the first ``n`` calls of ``log`` started: ``log.actual`` where the
    executor wrote it (open loop), else the intended start (``start``)."""
    k = min(len(log.actual), n)
    if k == 0:
        return start
    out: FloatArray = start.copy()
    out[:k] = _copy(log.actual, k, np.float64) - t0
    return out


def _join_pairs(
    parts: list[tuple[IntArray, list[IntArray]]], width: int
) -> tuple[IntArray, list[IntArray]]:
    """The sparse pairs of every worker's log as one set (rows already offset per log)."""
    rows = _join([at for at, _ in parts])
    return rows, [_join([values[i] for _, values in parts]) for i in range(width)]


def _moved(rows: IntArray, new_row: IntArray) -> tuple[IntArray, IntArray]:
    """Sparse rows moved to their calls' new rows after the sort, ascending again, and the
    order that puts their values in step."""
    moved = new_row[rows]
    order = np.argsort(moved, kind="stable")
    return moved[order], order


def _renumber(
    rows: IntArray, values: Sequence[IntArray], new_row: IntArray
) -> tuple[IntArray, list[IntArray]]:
    """Sparse (row, value...) pairs moved with their calls by the sort."""
    if not rows.size:
        return rows, list(values)
    moved, order = _moved(rows, new_row)
    return moved, [v[order] for v in values]


def _renumber_objects(
    rows: IntArray, values: Sequence[U], new_row: IntArray
) -> tuple[IntArray, list[U]]:
    """Sparse (row, object) pairs moved with their calls by the sort."""
    if not rows.size:
        return rows, list(values)
    moved, order = _moved(rows, new_row)
    return moved, [values[i] for i in order.tolist()]


def merge_counters(logs: Iterable[CallLog]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for log in logs:
        total.update(log.error_types)
    return dict(total.most_common())


def merge_usage(logs: Iterable[CallLog]) -> UsageAccumulator:
    acc = UsageAccumulator()
    for log in logs:
        acc.merge(log.usage)
    return acc
