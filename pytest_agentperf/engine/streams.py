"""Consuming a streamed response: time to first chunk, gaps between chunks, usage in chunks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..usage import UsageRecord, _current, extract_usage
from .log import CallLog

_NAN = float("nan")


def _keep_usage(found: list[UsageRecord]) -> None:
    """Usage seen in chunks counts only when nothing was recorded during the call."""
    scope = _current.get()
    if scope is not None and not scope.records and found:
        scope.records.extend(found)


async def consume_async(stream: AsyncIterator[Any], t_int: float, t0: float, log: CallLog) -> float:
    perf = time.perf_counter
    first = _NAN
    last = 0.0
    found: list[UsageRecord] = []
    async for chunk in stream:
        now = perf()
        if first != first:  # NaN: first chunk
            first = now - t0 - t_int
        else:
            log.itl.append(now - last)
        last = now
        usage = extract_usage(chunk)
        if usage:
            found.extend(usage)
    _keep_usage(found)
    return first


def consume_sync(stream: Iterable[Any], t_int: float, t0: float, log: CallLog) -> float:
    perf = time.perf_counter
    first = _NAN
    last = 0.0
    found: list[UsageRecord] = []
    for chunk in stream:
        now = perf()
        if first != first:
            first = now - t0 - t_int
        else:
            log.itl.append(now - last)
        last = now
        usage = extract_usage(chunk)
        if usage:
            found.extend(usage)
    _keep_usage(found)
    return first
