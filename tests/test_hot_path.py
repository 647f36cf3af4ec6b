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


def _pool_with_one_worker(timeout: float) -> tuple[Any, Any]:
    from pytest_agentperf.engine.log import CallLog
    from pytest_agentperf.engine.plan import Plan, RunState
    from pytest_agentperf.engine.target import make_target
    from pytest_agentperf.engine.thread_exec import _Pool, _Worker

    plan = Plan.measured(
        make_target(lambda: None, None), parse_settings({"requests": 10, "timeout": timeout})
    )
    state = RunState(plan)
    state.stopping = True  # no replacement thread is started by the monitor
    pool = _Pool(plan, state, True)
    worker = _Worker(CallLog())
    pool.workers.append(worker)
    pool.active = 1
    return pool, worker


def test_the_monitor_abandons_an_expired_call_and_its_worker_sees_it() -> None:
    """The worker hands a call back with one dict.pop; when the monitor took the call first,
    the worker learns under the lock that it was abandoned (recorded once, as a timeout)."""
    pool, worker = _pool_with_one_worker(timeout=1.0)
    worker.flight[0] = 10.0  # a call started at t=10
    pool.check_timeouts(10.5)  # not expired: left alone
    assert worker.flight == {0: 10.0} and not worker.abandoned
    pool.check_timeouts(11.5)  # expired: taken and abandoned
    assert worker.flight == {} and worker.abandoned
    assert len(pool.state.extra) == 1 and list(pool.state.extra.failed_status) == [2]  # TIMEOUT
    assert worker.flight.pop(0, None) is None and not pool._reclaim(worker)
    pool.check_timeouts(20.0)  # an abandoned worker is not counted twice
    assert len(pool.state.extra) == 1


def test_a_call_ended_before_the_monitor_looked_is_the_workers() -> None:
    pool, worker = _pool_with_one_worker(timeout=1.0)
    worker.flight[0] = 10.0
    assert worker.flight.pop(0, None) == 10.0  # the worker took its call back
    pool.check_timeouts(11.5)
    assert not worker.abandoned and len(pool.state.extra) == 0


def test_a_new_call_taken_by_the_monitor_by_mistake_is_given_back() -> None:
    """The monitor saw an expired start, but by the time it took the call out a new call had
    started: that one is not expired, so it goes back and nothing is abandoned."""

    class Racy(dict[int, float]):
        def get(self, key: int, default: Any = None) -> Any:
            return 0.0  # what the monitor read a moment ago: the previous, expired call

    pool, worker = _pool_with_one_worker(timeout=1.0)
    worker.flight = Racy({0: 11.4})
    pool.check_timeouts(11.5)
    assert dict(worker.flight) == {0: 11.4} and not worker.abandoned
    assert len(pool.state.extra) == 0
