"""Per-worker logs of measured calls, kept in flat arrays so a million calls stay small."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..results import FloatArray, StatusArray
from ..usage import CallScope, UsageAccumulator, UsageRecord, read_usage
from .streams import StreamTimes

OK, ERROR, TIMEOUT = 0, 1, 2
_NAN = float("nan")
MAX_ERROR_MESSAGES = 5


class CallLog:
    """Completed calls of one worker; rows are appended start, end, status, cpu, ttft in that
    order (ttft last: readers take its length as the number of complete rows)."""

    __slots__ = ("_appends", "cpu", "end", "error_types", "itl", "start", "status", "ttft", "usage")

    def __init__(self) -> None:
        self.start = array("d")
        self.end = array("d")
        self.status = array("b")
        self.cpu = array("d")
        self.ttft = array("d")
        self.itl = array("d")
        self.error_types: Counter[str] = Counter()
        self.usage = UsageAccumulator()
        # bound once: calling a stored bound method skips a method lookup per append
        self._appends = (
            self.start.append,
            self.end.append,
            self.status.append,
            self.cpu.append,
            self.ttft.append,
        )

    def __len__(self) -> int:
        return len(self.ttft)

    def record(
        self,
        t_int: float,
        end: float,
        status: int,
        error: str | None,
        stream: StreamTimes | None,
        scope: CallScope,
        value: Any,
        model: str | None,
        cpu: float = _NAN,
    ) -> None:
        """Append one measured call; ``cpu`` is its thread CPU time (NaN when not measured).

        Usage recorded during a failed call still counts (those tokens were billed); usage is
        read from the return value only for a successful call that recorded none.

        Usage is read before any row is appended: when reading it raises
        (``UsageExtractionError``), nothing is recorded and the caller records the call as
        failed instead.
        """
        # the hot path: a plain successful call that recorded nothing and returned None
        # costs five appends and three truth tests
        records: list[UsageRecord] | None
        add_start, add_end, add_status, add_cpu, add_ttft = self._appends
        if status == OK:
            records = scope.records
            if not records and value is not None:
                records = read_usage(value)
            add_start(t_int)
            add_end(end)
            add_status(OK)
            add_cpu(cpu)
            if stream is None:
                add_ttft(_NAN)
            else:
                add_ttft(stream.first)
                self.itl.extend(stream.gaps)
        else:
            records = scope.records
            add_start(t_int)
            add_end(end)
            add_status(status)
            add_cpu(cpu)
            add_ttft(_NAN)
            self.error_types["Timeout" if status == TIMEOUT else error or "Error"] += 1
        if records:
            self.usage.add_call(records, model)
        if scope.tools:
            self.usage.add_tools(scope.tools)


@dataclass(frozen=True)
class MergedLog:
    """All measured calls of a run, sorted by intended start; times in seconds since run start."""

    start: FloatArray
    end: FloatArray
    status: StatusArray
    ttft: FloatArray
    itl: FloatArray
    cpu: FloatArray = field(default_factory=lambda: _EMPTY)
    """Each call's thread CPU time in seconds (NaN where not measured: async calls, timeouts)."""

    @property
    def latency(self) -> FloatArray:
        return self.end - self.start

    def __len__(self) -> int:
        return int(self.start.size)


def _copy(values: array[Any], n: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """The first ``n`` values as a numpy array.

    The slice is copied under the GIL first: a numpy view of the live array would export its
    buffer, and a worker appending to it at that moment would fail with BufferError.
    """
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(values[:n], dtype=dtype)


def snapshot(logs: Iterable[CallLog]) -> tuple[FloatArray, FloatArray, StatusArray]:
    """start, end and status of the calls completed so far (safe while workers append)."""
    starts, ends, statuses = [], [], []
    for log in list(logs):
        n = len(log.ttft)  # the last column appended: every other column has at least n rows
        starts.append(_copy(log.start, n, np.float64))
        ends.append(_copy(log.end, n, np.float64))
        statuses.append(_copy(log.status, n, np.int8))
    if not starts:
        return _EMPTY, _EMPTY, _EMPTY_B
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(statuses)


_EMPTY: FloatArray = np.zeros(0, dtype=np.float64)
_EMPTY_B = np.zeros(0, dtype=np.int8)


def merge(logs: Sequence[CallLog]) -> MergedLog:
    """One sorted log of every worker's calls."""
    start, end, status = snapshot(logs)
    ttft = (
        np.concatenate([_copy(log.ttft, len(log), np.float64) for log in logs]) if logs else _EMPTY
    )
    itl = (
        np.concatenate([_copy(log.itl, len(log.itl), np.float64) for log in logs])
        if logs
        else _EMPTY
    )
    cpu = np.concatenate([_copy(log.cpu, len(log), np.float64) for log in logs]) if logs else _EMPTY
    order = np.argsort(start, kind="stable")
    return MergedLog(start[order], end[order], status[order], ttft[order], itl, cpu[order])


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
