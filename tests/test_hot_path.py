"""The engine's per-call path: where the timestamps sit, and detection of what a call returns.

The clock is a fake that advances by exactly 1 on every read from the thread reading it, so
"the two timestamps sit right around the agent call" is a count of reads, not a timing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from pytest_agentperf.engine import RawRun, run_load
from pytest_agentperf.errors import UsageError
from pytest_agentperf.settings import parse_settings


def _run(fn: Any, inputs: Any = None, **settings: Any) -> RawRun:
    return run_load(fn, inputs, parse_settings({"warmup": 0, **settings}))


class TickClock:
    """``perf_counter`` that returns 1, 2, 3... per thread: each read is one tick."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> float:
        n: float = getattr(self._local, "n", 0.0) + 1.0
        self._local.n = n
        return n


def test_a_sync_call_is_timed_by_two_adjacent_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """No read of the clock (and no bookkeeping that reads it) sits between start and end."""

    def agent(x: int) -> int:
        return x

    monkeypatch.setattr(time, "perf_counter", TickClock())
    raw = _run(agent, [1, 2, 3], requests=20, timeout=1e6)
    assert len(raw.log) == 20
    assert np.all(raw.log.latency == 1.0)


def test_an_async_call_is_timed_by_two_adjacent_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start is taken after the scope is set up and the end before it is reset: a call
    that never suspends spans exactly one tick, closed loop (c=1 and c=4)."""

    async def agent() -> None:
        return None

    monkeypatch.setattr(time, "perf_counter", TickClock())
    for concurrency in (1, 4):
        raw = _run(agent, requests=20, concurrency=concurrency, timeout=1e6)
        assert len(raw.log) == 20
        assert np.all(raw.log.latency == 1.0)


def test_a_target_whose_return_type_changes_is_detected_again() -> None:
    """Stream detection is cached per type: a plain value, then a stream, then plain again are
    each handled as what they are (TTFT only for the streams)."""

    def chunks() -> Iterator[str]:
        yield "a"
        yield "b"

    def agent(x: int) -> Any:
        return chunks() if x % 2 else "plain"

    raw = _run(agent, list(range(6)), requests=6)
    streamed = np.isfinite(raw.log.ttft)
    assert np.all(raw.log.status == 0)
    assert int(streamed.sum()) == 3
    assert raw.log.itl.size == 3  # one gap per two-chunk stream


def test_an_async_target_whose_awaited_type_changes_is_detected_again() -> None:
    async def chunks() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0)
        yield "b"

    async def agent(x: int) -> Any:
        return chunks() if x % 2 else {"answer": x}

    raw = _run(agent, list(range(6)), requests=6)
    assert np.all(raw.log.status == 0)
    assert int(np.isfinite(raw.log.ttft).sum()) == 3


def test_a_sync_agent_returning_a_coroutine_after_plain_values_still_fails() -> None:
    """The cached kind of the first return type does not hide a later awaitable."""
    calls = 0

    async def inner() -> None:
        return None

    def agent() -> Any:
        nonlocal calls
        calls += 1
        return "ok" if calls < 5 else inner()

    with pytest.raises(UsageError, match="returned an awaitable"):
        _run(agent, requests=20)
