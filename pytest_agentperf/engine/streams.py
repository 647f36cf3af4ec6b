"""Consuming a streamed response: time to first chunk, gaps between chunks, usage in chunks."""

from __future__ import annotations

import time
from array import array
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..usage import UsageRecord, _current, combine_records, extract_usage

_NAN = float("nan")


def _keep_usage(found: list[UsageRecord]) -> None:
    """Usage seen in chunks counts only when nothing was recorded during the call; the chunks
    of one stream are one LLM request (summed per model, e.g. Anthropic's start and delta)."""
    scope = _current.get()
    if scope is not None and not scope.records and found:
        scope.records.extend(combine_records(found))


class StreamTimes:
    """Time to first chunk and the gaps between chunks of one streamed response."""

    __slots__ = ("_found", "_last", "_start", "first", "gaps")

    def __init__(self, start: float) -> None:
        self._start = start
        self._last = 0.0
        self._found: list[UsageRecord] = []
        self.first = _NAN
        """Seconds from the call's intended start to its first chunk."""
        self.gaps = array("d")

    def chunk(self, chunk: Any) -> None:
        now = time.perf_counter()
        if self.first != self.first:  # NaN: this is the first chunk
            self.first = now - self._start
        else:
            self.gaps.append(now - self._last)
        self._last = now
        usage = extract_usage(chunk)
        if usage:
            self._found.extend(usage)

    def close(self) -> StreamTimes:
        _keep_usage(self._found)
        return self


async def consume_async(stream: AsyncIterator[Any], start: float) -> StreamTimes:
    """Iterate ``stream`` to its end; ``start`` is the call's intended start (perf_counter)."""
    times = StreamTimes(start)
    async for chunk in stream:
        times.chunk(chunk)
    return times.close()


def consume_sync(stream: Iterable[Any], start: float) -> StreamTimes:
    """Iterate ``stream`` to its end; ``start`` is the call's intended start (perf_counter)."""
    times = StreamTimes(start)
    for chunk in stream:
        times.chunk(chunk)
    return times.close()
