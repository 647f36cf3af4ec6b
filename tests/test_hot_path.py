"""The engine's per-call path: where the timestamps sit, and detection of what a call returns.

The clock is a fake that advances by exactly 1 on every read from the thread reading it, so
"the two timestamps sit right around the agent call" is a count of reads, not a timing.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf import record_usage
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
    """The worker hands a call back by clearing ``start`` and reading ``claim``; when the
    monitor claimed the call first, the worker learns under the lock that it was abandoned
    (recorded once, as a timeout)."""
    pool, worker = _pool_with_one_worker(timeout=1.0)
    worker.start = 10.0  # a call started at t=10
    pool.check_timeouts(10.5)  # not expired: left alone
    assert worker.start == 10.0 and worker.claim is None and not worker.abandoned
    pool.check_timeouts(11.5)  # expired: claimed and abandoned
    assert worker.claim == 10.0 and worker.abandoned
    assert len(pool.state.extra) == 1 and list(pool.state.extra.failed_status) == [2]  # TIMEOUT
    assert not pool._hand_back(worker)  # the worker finds its call claimed and abandoned
    pool.check_timeouts(20.0)  # an abandoned worker is not counted twice
    assert len(pool.state.extra) == 1


def test_a_call_ended_before_the_monitor_looked_is_the_workers() -> None:
    pool, worker = _pool_with_one_worker(timeout=1.0)
    worker.start = 10.0
    assert pool._hand_back(worker)  # the worker took its call back
    pool.check_timeouts(11.5)
    assert not worker.abandoned and worker.claim is None and len(pool.state.extra) == 0


def test_an_abandoned_workers_earlier_rows_are_handed_over_by_the_monitor() -> None:
    """A worker keeps the rows of plain calls in lists for a few ms; when its call hangs, the
    monitor moves them to the log, as the worker may never return to do it."""
    pool, worker = _pool_with_one_worker(timeout=1.0)
    worker.starts.extend([1.0, 2.0])
    worker.ends.extend([1.5, 2.5])
    worker.start = 10.0
    pool.check_timeouts(11.5)
    assert worker.abandoned and worker.starts == [] and worker.ends == []
    assert list(worker.log.start) == [1.0, 2.0] and list(worker.log.end) == [1.5, 2.5]


def _racy_worker(pool: Any, after_first_read: float | None) -> Any:
    """A worker whose ``start`` reads as an expired call (t=0) the first time, as if the
    monitor looked just before the call ended, and as ``after_first_read`` after that."""
    from pytest_agentperf.engine.log import CallLog
    from pytest_agentperf.engine.thread_exec import _Worker

    class Racy(_Worker):
        __slots__ = ("reads",)

        @property  # type: ignore[override]
        def start(self) -> float | None:
            self.reads += 1
            return 0.0 if self.reads == 1 else after_first_read

        @start.setter
        def start(self, value: float | None) -> None:
            self.reads = 0

    worker = Racy(CallLog())
    pool.workers[:] = [worker]
    return worker


@pytest.mark.parametrize("now_in_flight", [None, 11.4])
def test_a_call_that_ended_while_the_monitor_claimed_it_is_given_back(
    now_in_flight: float | None,
) -> None:
    """The monitor saw an expired start, but by the time it claimed the call the call had
    ended (and maybe a new one, not expired, started): the claim is withdrawn, nothing is
    abandoned, and the worker, seeing no claim, records its call itself."""
    pool, _ = _pool_with_one_worker(timeout=1.0)
    worker = _racy_worker(pool, now_in_flight)
    pool.check_timeouts(11.5)
    assert worker.claim is None and not worker.abandoned
    assert len(pool.state.extra) == 0 and pool._hand_back(worker)


@pytest.mark.parametrize("locked", [False, True], ids=["gil", "free-threaded"])
def test_a_racing_monitor_and_worker_never_both_own_a_call(
    locked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stress the hand-off: the monitor judges every call expired at once and races the
    worker's hand-back, with thread switches forced every microsecond. Each call is the
    worker's or abandoned (recorded by the monitor), never both: the abandoned call is the
    worker's last, and not among those it kept. ``locked``: the free-threaded variant."""
    import sys

    from pytest_agentperf.engine import thread_exec

    monkeypatch.setattr(thread_exec, "LOCKED_HAND_OFF", locked)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    abandoned_rounds = 0
    try:
        for _ in range(30):
            pool, worker = _pool_with_one_worker(timeout=1e-9)
            kept: list[float] = []

            def work(w: Any = worker, p: Any = pool, kept: list[float] = kept) -> None:
                for _ in range(2000):
                    w.start = start = time.perf_counter()
                    sum(range(20))  # the call: long enough for the monitor to look at it
                    if not p._hand_back(w):
                        return  # abandoned: the monitor records this call
                    kept.append(start)

            thread = threading.Thread(target=work)
            thread.start()
            while thread.is_alive():
                pool.check_timeouts(time.perf_counter())
            thread.join()
            extra = pool.state.extra
            assert len(extra) == worker.abandoned  # at most one call abandoned, once
            if worker.abandoned:
                abandoned_rounds += 1
                assert extra.start[0] not in kept and len(kept) < 2000
                assert all(s < extra.start[0] for s in kept)
            else:
                assert len(kept) == 2000
    finally:
        sys.setswitchinterval(old)
    assert abandoned_rounds > 0  # the race was exercised


def test_sync_timeouts_are_recorded_once_while_calls_straddle_the_timeout() -> None:
    """Calls that end around the timeout, on two threads: every call is in the log exactly
    once, either as a success or as a timeout, and the run made exactly ``requests`` calls."""
    rng = iter(np.random.default_rng(3).uniform(0.0, 0.04, 1000).tolist())
    lock = threading.Lock()

    def agent() -> None:
        with lock:
            pause = next(rng)
        time.sleep(pause)

    raw = _run(agent, requests=60, concurrency=2, timeout=0.02)
    assert raw.issued == 60 and len(raw.log) == 60
    assert 0 < raw.timeouts < 60


@pytest.mark.parametrize("inputs", [None, [1, 2, 3]])
def test_sync_requests_n_makes_exactly_n_calls(inputs: Any) -> None:
    """Rows kept in lists and handed over in batches: the log still has each call once, in
    the order of its index."""
    seen: list[Any] = []

    def agent(*x: Any) -> None:
        seen.append(x)

    for requests, concurrency in [(1, 1), (7, 1), (20_001, 1), (5_003, 3)]:
        seen.clear()
        raw = _run(agent, inputs, requests=requests, concurrency=concurrency)
        assert len(seen) == requests == len(raw.log) == raw.issued
        if inputs is not None and concurrency == 1:
            assert [x for (x,) in seen] == [inputs[i % 3] for i in range(requests)]


def test_rows_before_a_failed_call_keep_their_places() -> None:
    """A failed call goes through ``CallLog.record``, which numbers its status by the log's
    length: the plain rows kept in the lists are handed over first, so the error sits on the
    row of the call that failed."""
    calls = 0

    def agent() -> None:
        nonlocal calls
        calls += 1
        if calls % 10 == 0:
            raise ValueError("every tenth")

    raw = _run(agent, requests=100)
    failed = np.flatnonzero(raw.log.status == 1)
    assert failed.tolist() == list(range(9, 100, 10))


def test_observers_see_the_rows_of_a_fast_sync_run_while_it_runs() -> None:
    """The rows are handed to the log every few ms: a run of a no-op agent shows its calls
    to an observer before it ends."""
    from pytest_agentperf.engine.observer import LiveView, RunObserver

    counts: list[int] = []

    class Reader(RunObserver):
        def on_tick(self, view: LiveView) -> str | None:
            counts.append(view.done)
            return None

    run_load(
        lambda: None, None, parse_settings({"warmup": 0, "duration": 0.5}), observers=[Reader()]
    )
    # a tick during the run saw calls (not only the first: a busy machine may start the
    # worker thread late)
    assert any(c > 0 for c in counts)


def test_an_aborted_sync_run_keeps_the_rows_of_the_calls_it_made() -> None:
    """On an abort the workers between two calls hand their rows over before the merge: the
    log holds every call that ended before the abort (none lost in the lists)."""
    from pytest_agentperf.engine.observer import LiveView, RunObserver

    class AbortAtOnce(RunObserver):
        def on_tick(self, view: LiveView) -> str | None:
            return "stop" if view.done > 0 else None

    ended: list[float] = []

    def agent() -> None:
        ended.append(time.perf_counter())

    raw = run_load(
        agent, None, parse_settings({"warmup": 0, "duration": 5.0}), observers=[AbortAtOnce()]
    )
    assert raw.aborted is not None and len(ended) > 1000
    # the call in flight at the abort, if any, is left behind: at most one is missing
    assert len(ended) - 1 <= len(raw.log) <= len(ended)


# -- CPU time per worker thread ------------------------------------------------------------


def _spin(seconds: float) -> None:
    """Burn ``seconds`` of this thread's CPU time (robust on a loaded machine)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.mark.parametrize("concurrency", [1, 3])
def test_sync_cpu_time_per_call_is_the_threads_cpu_over_their_calls(concurrency: int) -> None:
    """Read once per worker thread, not per call: the mean still matches what each call
    burned (plus the engine's own microseconds), whatever the concurrency."""
    raw = _run(lambda: _spin(0.004), requests=12, concurrency=concurrency)
    assert raw.log.cpu_per_call is not None
    assert 0.004 <= raw.log.cpu_per_call < 0.004 * 1.5


def test_sync_cpu_time_of_a_waiting_agent_is_near_zero() -> None:
    raw = _run(lambda: time.sleep(0.01), requests=6, concurrency=2)
    assert raw.log.cpu_per_call is not None and raw.log.cpu_per_call < 0.002


def test_sync_open_loop_cpu_time_leaves_out_the_wait_between_calls() -> None:
    raw = _run(lambda: _spin(0.002), requests=10, rate=200, arrival="constant", concurrency=2)
    assert raw.log.cpu_per_call is not None
    assert 0.002 <= raw.log.cpu_per_call < 0.002 * 1.5


def test_async_runs_leave_cpu_time_to_the_process_figure() -> None:
    async def agent() -> None:
        return None

    assert _run(agent, requests=20, concurrency=4).log.cpu_per_call is None


def test_a_timed_out_sync_call_does_not_lose_the_runs_cpu_time() -> None:
    """The first call hangs past the timeout: its thread is abandoned and replaced; the
    calls the replacement makes still carry CPU time."""
    calls = itertools.count()

    def agent() -> None:
        if next(calls) == 0:
            time.sleep(0.3)
        _spin(0.002)

    raw = _run(agent, requests=8, timeout=0.05)
    assert raw.timeouts == 1 and len(raw.log) == 8
    assert raw.log.cpu_per_call is not None and raw.log.cpu_per_call >= 0.002


# -- usage per call, with one scope per worker ---------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_each_call_is_credited_with_its_own_usage(kind: str) -> None:
    """Call i records i tokens (even i), returns usage (odd i), or records and then fails
    (i % 5 == 4): every call's usage is its own, and a call that recorded nothing is read
    from its return value, never from what an earlier call recorded."""
    seen = itertools.count()

    def body() -> Any:
        i = next(seen)
        if i % 5 == 4:
            record_usage(input_tokens=1000, output_tokens=0, model="failed")
            raise RuntimeError("after recording")
        if i % 2 == 0:
            record_usage(input_tokens=10, output_tokens=1, model="recorded")
            return None
        return {"model": "returned", "usage": {"prompt_tokens": 7, "completion_tokens": 2}}

    async def async_agent() -> Any:
        await asyncio.sleep(0)
        return body()

    raw = _run(body if kind == "sync" else async_agent, requests=100, concurrency=3)
    usage = raw.usage.usage(100)
    assert raw.error_types == {"RuntimeError": 20}
    assert usage.calls_with_usage == 100
    by_model = usage.by_model
    assert by_model["failed"].calls == 20 and by_model["failed"].input_tokens == 20_000
    recorded = sum(1 for i in range(100) if i % 5 != 4 and i % 2 == 0)
    assert by_model["recorded"].calls == recorded
    assert by_model["recorded"].input_tokens == 10 * recorded
    assert by_model["returned"].calls == 80 - recorded
    assert by_model["returned"].input_tokens == 7 * (80 - recorded)


def test_tools_are_credited_per_call() -> None:
    from pytest_agentperf.usage import record_tool

    def agent(i: int) -> None:
        if i % 2:
            record_tool("search", 0.5, ok=i % 4 == 1)

    raw = _run(agent, list(range(8)), requests=8, concurrency=2)
    assert raw.usage.tool_stats()["search"].calls == 4
    assert raw.usage.tool_stats()["search"].errors == 2


def test_usage_recorded_after_its_call_ended_counts_toward_the_next_call() -> None:
    """A thread left running by call 0 records while call 1 is in progress: the tokens count
    (toward call 1 of that worker), not lost."""
    recorded = threading.Event()
    go = threading.Event()
    calls = itertools.count()

    def late() -> None:
        go.wait(5)
        record_usage(input_tokens=5, output_tokens=5, model="late")
        recorded.set()

    def agent() -> None:
        i = next(calls)
        if i == 0:
            ctx = contextvars.copy_context()
            threading.Thread(target=ctx.run, args=(late,), daemon=True).start()
        elif i == 1:
            go.set()
            assert recorded.wait(5)

    raw = _run(agent, requests=3)
    usage = raw.usage.usage(3)
    assert usage.by_model["late"].input_tokens == 5 and usage.calls_with_usage == 1


def test_warmup_usage_is_not_counted_nor_carried_into_the_measured_calls() -> None:
    calls = itertools.count()

    def agent() -> None:
        if next(calls) < 3:  # the warmup calls
            record_usage(input_tokens=100, output_tokens=1, model="warm")

    raw = run_load(agent, None, parse_settings({"warmup": 3, "requests": 5}))
    assert raw.usage.usage(5).total_tokens is None


# -- async: every call accounted, on the fast path and off it -------------------------------


class _AsyncCallable:
    """Async by its ``__call__``: not an ``async def`` function, so its returns are checked."""

    async def __call__(self) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize("agent_kind", ["async def", "callable object", "partial"])
@pytest.mark.parametrize("timeout", [1e6, 0.05])
def test_async_closed_loop_accounts_for_every_call(agent_kind: str, timeout: float) -> None:
    """With a timeout far away nothing times out; with a short one the slow calls (every
    tenth) are cancelled and counted as timeouts. Either way every call is in the log."""
    calls = itertools.count()

    async def agent(pause: float = 0.2) -> None:
        if next(calls) % 10 == 9:
            await asyncio.sleep(pause if timeout < 1 else 0.001)
        await asyncio.sleep(0)

    fn: Any = {
        "async def": agent,
        "callable object": _AsyncCallable(),
        "partial": functools.partial(agent, 0.2),
    }[agent_kind]
    raw = _run(fn, requests=200, concurrency=20, timeout=timeout)
    assert len(raw.log) == 200 and raw.issued == 200
    expected_timeouts = 20 if timeout < 1 and agent_kind != "callable object" else 0
    assert raw.timeouts == expected_timeouts
    assert int(np.count_nonzero(raw.log.status == 0)) == 200 - expected_timeouts


def test_which_targets_return_a_coroutine_every_time() -> None:
    from pytest_agentperf.engine.target import make_target

    async def agent() -> None:
        return None

    class Agent:
        async def run(self) -> None:
            return None

    assert make_target(agent, None).coroutine
    assert make_target(functools.partial(agent), None).coroutine
    assert make_target(Agent().run, None).coroutine
    assert not make_target(_AsyncCallable(), None).coroutine  # checked per call instead
    assert not make_target(lambda: None, None).coroutine

    @functools.wraps(agent)
    def wrapper() -> Any:  # a sync function returning an awaitable: not a coroutine function
        return agent()

    assert not make_target(wrapper, None).coroutine


def test_an_aborted_async_run_accounts_for_what_it_issued() -> None:
    """The per-worker claim iterators stop with the run: issued matches what was recorded."""

    class StopAfter:
        def on_start(self, t0: float) -> None: ...

        def on_tick(self, view: Any) -> str | None:
            return "enough" if view.done >= 50 else None

        def on_stop(self) -> None: ...

        def result_fields(self, log: Any, duration: float) -> dict[str, Any]:
            return {}

    async def agent() -> None:
        await asyncio.sleep(0.001)

    settings = parse_settings({"warmup": 0, "duration": 30, "concurrency": 10, "timeout": 5})
    raw = run_load(agent, None, settings, observers=[StopAfter()])
    assert raw.aborted == "enough"
    assert raw.issued is not None and len(raw.log) <= raw.issued <= len(raw.log) + 10


# -- the call log -----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.floats(0, 100, allow_nan=False),
                st.sampled_from([0, 0, 0, 1, 2]),
                st.one_of(st.none(), st.floats(0, 1, allow_nan=False)),
            ),
            max_size=30,
        ),
        max_size=4,
    )
)
def test_merge_matches_a_plain_sort_of_every_row(workers: list[list[Any]]) -> None:
    """Rows recorded across logs, with sparse statuses and TTFTs, merge into the same table a
    plain sort of all rows gives (stable, so equal starts keep their log order)."""
    from pytest_agentperf.engine.log import CallLog, merge
    from pytest_agentperf.engine.streams import StreamTimes

    logs = []
    rows = []
    for w in workers:
        log = CallLog()
        for start, status, ttft in w:
            stream = None
            if ttft is not None and not status:
                stream = StreamTimes(0.0)
                stream.first = ttft
            log.record(start, start + 1, status, "E" if status else None, stream, None, None, None)
            rows.append((start, status, np.nan if stream is None else ttft))
        logs.append(log)
    merged = merge(logs)
    rows.sort(key=lambda r: r[0])
    assert len(merged) == len(rows)
    assert merged.start.tolist() == [r[0] for r in rows]
    assert merged.end.tolist() == [r[0] + 1 for r in rows]
    assert merged.status.tolist() == [r[1] for r in rows]
    np.testing.assert_array_equal(merged.ttft, np.array([r[2] for r in rows], dtype=float))


def test_a_live_snapshot_leaves_out_the_row_being_written() -> None:
    """Sparse pairs are appended before their row: a pair whose row is not complete yet is
    not applied to another row."""
    from pytest_agentperf.engine.log import ERROR, CallLog, snapshot

    log = CallLog()
    log.record(0.0, 1.0, ERROR, "E", None, None, None, None)
    log.failed_rows.append(1)  # the next row's pair, its start and end not appended yet
    log.failed_status.append(ERROR)
    start, end, status = snapshot([log])
    assert (start.tolist(), end.tolist(), status.tolist()) == ([0.0], [1.0], [ERROR])


def test_live_views_and_the_merged_log_are_in_seconds_since_the_run_start() -> None:
    """Rows hold clock readings; both the live view and the merge subtract the run's start."""
    seen: list[tuple[float, float, float]] = []

    class Reader:
        def on_start(self, t0: float) -> None: ...

        def on_tick(self, view: Any) -> None:
            start, end, _ = view.arrays()
            if start.size:
                seen.append((float(start.min()), float(end.max()), view.elapsed))

        def on_stop(self) -> None: ...

        def result_fields(self, log: Any, duration: float) -> dict[str, Any]:
            return {}

    async def agent() -> None:
        await asyncio.sleep(0.01)

    settings = parse_settings({"warmup": 0, "requests": 40, "concurrency": 2})
    raw = run_load(agent, None, settings, observers=[Reader()])
    assert seen
    for first, last, elapsed in seen:
        assert 0.0 <= first <= last <= elapsed
    assert float(raw.log.start.min()) >= 0.0 and float(raw.log.end.max()) < 10.0


def test_claim_iterators_grant_each_index_once_and_count_only_what_they_granted() -> None:
    from pytest_agentperf.engine.plan import Plan, RunState
    from pytest_agentperf.engine.target import make_target

    plan = Plan.measured(make_target(lambda: None, None), parse_settings({"requests": 10}))
    state = RunState(plan)
    state.start()
    workers = [state.claims() for _ in range(3)]
    granted = [i for group in itertools.zip_longest(*workers) for i in group if i is not None]
    state.finish()
    assert sorted(granted) == list(range(10)) and state.issued == 10

    stopped = RunState(plan)
    stopped.start()
    a, b = stopped.claims(), stopped.claims()
    first = [next(a), next(b), next(a)]
    stopped.stopping = True  # an abort: no worker takes another call
    assert list(a) == [] and list(b) == []
    stopped.finish()
    assert first == [0, 1, 2] and stopped.issued == 3


def test_the_loop_profile_script_still_matches_the_engines_loop() -> None:
    """benchmarks/sync_loop_profile.py edits the engine's loop source to leave out one part at
    a time: it must still find each part, and each variant must still record every call."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "sync_loop_profile.py"
    out = subprocess.run(
        [sys.executable, str(script), "--repeats", "1", "--calls", "2000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    names = ["engine loop", "without the claims", "without the timeout hand-off", "bare loop"]
    assert all(name in out.stdout for name in names), out.stdout
