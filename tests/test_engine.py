"""The load engine with fake agents; timing asserted only with generous bounds."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from pytest_agentperf import record_usage
from pytest_agentperf.engine import RawRun, arun_load, run_load
from pytest_agentperf.errors import UsageError
from pytest_agentperf.settings import parse_settings


def _run(fn: Any, inputs: Any = None, **settings: Any) -> RawRun:
    return run_load(fn, inputs, parse_settings({"warmup": 0, **settings}))


class Counter:
    """A thread-safe call counter that also tracks the peak number of calls in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0
        self.in_flight = 0
        self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


def test_sync_closed_loop_counts_and_concurrency() -> None:
    c = Counter()

    def agent(x: int) -> int:
        c.enter()
        time.sleep(0.01)
        c.leave()
        return x

    raw = _run(agent, [1, 2, 3], requests=40, concurrency=4)
    assert len(raw.log) == 40 and c.calls == 40
    assert 2 <= c.peak <= 4  # capped at the concurrency; >= 2 even on a starved machine
    assert np.all(raw.log.status == 0)
    assert np.all(raw.log.latency >= 0.009)


@pytest.mark.asyncio
async def test_async_closed_loop_from_a_coroutine() -> None:
    c = Counter()

    async def agent() -> None:
        c.enter()
        await asyncio.sleep(0.005)
        c.leave()

    raw = await arun_load(agent, None, parse_settings({"requests": 30, "concurrency": 5}))
    assert len(raw.log) == 30
    assert c.calls == 31  # one warmup call, not measured
    assert 2 <= c.peak <= 5


def test_inputs_are_cycled() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def agent(x: str) -> None:
        with lock:
            seen.append(x)

    _run(agent, ["a", "b", "c"], requests=7)
    assert seen == ["a", "b", "c", "a", "b", "c", "a"]
    single: list[object] = []
    _run(single.append, "one prompt", requests=2)
    assert single == ["one prompt", "one prompt"]


def test_warmup_is_not_measured() -> None:
    c = Counter()

    def agent() -> None:
        c.enter()
        c.leave()

    raw = run_load(agent, None, parse_settings({"requests": 5, "warmup": 3}))
    assert c.calls == 8 and len(raw.log) == 5


def test_errors_counted_by_type_with_first_messages() -> None:
    def agent(x: int) -> int:
        if x % 3 == 0:
            raise ValueError(f"bad {x}")
        if x % 3 == 1:
            raise KeyError("missing")
        return x

    raw = _run(agent, list(range(9)), requests=9, concurrency=3)
    assert raw.error_types == {"ValueError": 3, "KeyError": 3}
    assert len(raw.error_messages) <= 5
    assert any(m.startswith("ValueError: bad") for m in raw.error_messages)
    assert int(np.count_nonzero(raw.log.status == 0)) == 3


def test_hung_sync_call_is_abandoned_and_run_does_not_wait() -> None:
    release = threading.Event()

    def agent(x: int) -> int:
        if x == 1:
            release.wait(30)
        return x

    t0 = time.perf_counter()
    raw = _run(agent, [0, 1, 0, 0], requests=8, concurrency=2, timeout="0.3s")
    elapsed = time.perf_counter() - t0
    release.set()
    assert raw.error_types == {"Timeout": 2}
    assert raw.timeouts == 2
    assert len(raw.log) == 8
    assert elapsed < 10  # generous: the hung calls would have held the run for 30 s


def test_async_timeout_cancels_the_call() -> None:
    cancelled = []

    async def agent(x: int) -> int:
        try:
            await asyncio.sleep(30 if x else 0)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        # asyncio's own timeouts still work inside later calls
        await asyncio.wait_for(asyncio.sleep(0), 1)
        return x

    raw = _run(agent, [0, 1], requests=6, concurrency=2, timeout="0.2s")
    assert raw.error_types == {"Timeout": 3}
    assert cancelled == [1, 1, 1]
    assert int(np.count_nonzero(raw.log.status == 0)) == 3


def test_agent_raising_timeout_error_is_an_error_not_a_timeout() -> None:
    async def agent() -> None:
        raise TimeoutError("the provider timed out")

    raw = _run(agent, requests=3)
    assert raw.error_types == {"TimeoutError": 3}
    assert raw.timeouts == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_keyboard_interrupt_stops_the_run_and_propagates(mode: str) -> None:
    calls = Counter()

    def sync_agent(x: int) -> None:
        calls.enter()
        if x == 3:
            raise KeyboardInterrupt
        time.sleep(0.001)

    async def async_agent(x: int) -> None:
        calls.enter()
        if x == 3:
            raise KeyboardInterrupt
        await asyncio.sleep(0.001)

    agent = sync_agent if mode == "sync" else async_agent
    with pytest.raises(KeyboardInterrupt):
        _run(agent, list(range(1000)), requests=1000)
    assert calls.calls < 1000


def test_sync_function_returning_a_coroutine_is_a_clear_error() -> None:
    async def real() -> None:
        return None

    with pytest.raises(UsageError, match="async def"):
        _run(lambda: real(), requests=2)


def test_run_inside_a_running_loop_points_to_arun() -> None:
    async def main() -> None:
        run_load(lambda: None, None, parse_settings())

    with pytest.raises(UsageError, match="arun"):
        asyncio.run(main())


def test_runnable_like_objects_use_ainvoke() -> None:
    class Runnable:
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def invoke(self, x: Any) -> Any:
            raise AssertionError("sync invoke must not be used")

        async def ainvoke(self, x: Any) -> Any:
            self.seen.append(x)
            return {"usage": {"input_tokens": 2, "output_tokens": 3}}

    r = Runnable()
    raw = _run(r, [{"q": 1}], requests=4)
    assert r.seen == [{"q": 1}] * 4
    assert raw.usage.usage(4).total_tokens == 20
    with pytest.raises(UsageError, match="inputs="):
        _run(r, requests=1)


def test_callable_objects_and_partials_are_classified() -> None:
    class AsyncAgent:
        async def __call__(self, x: int) -> int:
            return x

    async def add(a: int, b: int) -> int:
        return a + b

    assert len(_run(AsyncAgent(), [1], requests=3).log) == 3
    assert len(_run(functools.partial(add, 1), [1], requests=3).log) == 3


def test_streams_record_ttft_and_gaps() -> None:
    def sync_stream() -> Iterator[int]:
        time.sleep(0.03)
        for i in range(4):
            time.sleep(0.01)
            yield i

    async def async_stream() -> AsyncIterator[dict[str, Any]]:
        await asyncio.sleep(0.03)
        for i in range(4):
            await asyncio.sleep(0.01)
            yield {"usage": None, "i": i}
        yield {"usage": {"prompt_tokens": 5, "completion_tokens": 4}}

    for agent, gaps_per_call in ((sync_stream, 3), (async_stream, 4)):
        raw = _run(agent, requests=5)
        ttft = raw.log.ttft
        assert np.all(ttft >= 0.035) and np.all(ttft <= raw.log.latency)
        assert raw.log.itl.size == 5 * gaps_per_call
        assert np.all(raw.log.latency >= 0.07)
    assert raw.usage.usage(5).output_tokens == 20


def test_record_usage_wins_over_the_return_value() -> None:
    async def agent() -> dict[str, Any]:
        record_usage(input_tokens=10, output_tokens=1, model="m1")
        await asyncio.gather(
            asyncio.to_thread(record_usage, input_tokens=10, output_tokens=1, model="m1"),
            asyncio.create_task(_nested()),
        )
        return {"usage": {"prompt_tokens": 999, "completion_tokens": 999}}

    async def _nested() -> None:
        record_usage(input_tokens=10, output_tokens=1, model="m2")

    raw = _run(agent, requests=300, concurrency=100)
    usage = raw.usage.usage(300)
    assert usage.input_tokens == 9000 and usage.output_tokens == 900
    assert usage.by_model["m1"].input_tokens == 6000
    assert usage.by_model["m2"].calls == 300
    assert usage.calls_with_usage == 300


def test_no_usage_means_unknown_not_zero() -> None:
    raw = _run(lambda: "plain text", requests=3)
    assert raw.usage.usage(3).total_tokens is None


def test_duration_bounds_the_run() -> None:
    async def agent() -> None:
        await asyncio.sleep(0.01)

    t0 = time.perf_counter()
    raw = _run(agent, duration="0.5s", concurrency=2)
    assert 0.4 < time.perf_counter() - t0 < 5
    assert 10 < len(raw.log) < 200
    both = _run(agent, duration="10s", requests=5)
    assert len(both.log) == 5  # the request count came first


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_open_loop_times_from_the_intended_start(kind: str) -> None:
    """A stalled agent cannot hide its stall: queued calls carry their waiting time."""

    def slow_sync() -> None:
        time.sleep(0.1)

    async def slow_async() -> None:
        await asyncio.sleep(0.1)

    agent = slow_sync if kind == "sync" else slow_async
    # 20 arrivals per second, but only one call in flight: each call waits for the one before
    raw = _run(agent, requests=10, rate=20, arrival="constant", concurrency=1)
    starts = raw.log.start
    assert np.allclose(starts, np.arange(10) / 20)
    lat = np.sort(raw.log.latency)
    assert lat[-1] > 0.4  # the last call waited about 0.5 s behind the others
    assert raw.late_starts >= 5


def test_open_loop_poisson_is_seeded() -> None:
    a = _run(lambda: None, requests=30, rate=200)
    b = _run(lambda: None, requests=30, rate=200)
    assert np.array_equal(a.log.start, b.log.start)
    c = _run(lambda: None, requests=30, rate=200, seed=7)
    assert not np.array_equal(a.log.start, c.log.start)


def test_one_million_calls_fit_in_flat_arrays() -> None:
    raw = _run(lambda: None, requests=20_000, concurrency=4)
    assert raw.log.start.dtype == np.float64 and len(raw.log) == 20_000


class _Snapshotter:
    """An observer that reads the live arrays as often as it can, as abort and windows do."""

    def __init__(self) -> None:
        self.reads = 0

    def on_start(self, t0: float) -> None:
        pass

    def on_tick(self, view: Any) -> None:
        for _ in range(20):
            view.arrays()
            self.reads += 1

    def on_stop(self) -> None:
        pass

    def result_fields(self, log: Any, duration: float) -> dict[str, Any]:
        return {}


def test_live_reads_never_break_appending_workers() -> None:
    """Regression: numpy views of the live arrays made appends fail with BufferError.

    Bounded by time, not calls: no-op calls are now fast enough that a fixed number of them
    can end before the first monitor tick. One second leaves a starved monitor thread (four
    busy workers, other jobs on the machine) time for several ticks."""
    observer = _Snapshotter()
    raw = run_load(
        lambda: None,
        None,
        parse_settings({"duration": 1.0, "concurrency": 4, "warmup": 0}),
        observers=[observer],
    )
    assert len(raw.log) == raw.issued and len(raw.log) > 100
    assert np.all(raw.log.status == 0)
    assert observer.reads > 0


def test_gaps_of_failed_streams_are_not_kept() -> None:
    def stream(x: int) -> Iterator[int]:
        for i in range(5):
            if x and i == 3:
                raise ConnectionError("stream cut")
            yield i

    raw = _run(stream, [0, 1], requests=4)
    assert raw.error_types == {"ConnectionError": 2}
    assert raw.log.itl.size == 2 * 4  # only the two complete streams, 4 gaps each
    assert int(np.count_nonzero(~np.isnan(raw.log.ttft))) == 2


def test_a_swallowed_cancellation_is_still_a_timeout_and_later_timeouts_work() -> None:
    """An agent that catches the timeout's CancelledError must not disarm later timeouts."""

    async def agent(x: str) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if x == "swallow":
                return "partial answer"
            raise RuntimeError("connection aborted") from None
        return "done"

    t0 = time.perf_counter()
    raw = _run(agent, ["swallow", "convert"], requests=4, concurrency=1, timeout="0.2s")
    assert raw.error_types == {"Timeout": 4}
    assert time.perf_counter() - t0 < 10  # four 30 s calls would take two minutes


def test_cancelling_arun_stops_a_sync_run() -> None:
    calls: list[float] = []

    def agent() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.02)

    async def main() -> int:
        settings = parse_settings({"requests": 10_000, "warmup": 0})
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):  # distinct types on 3.10
            await asyncio.wait_for(arun_load(agent, None, settings), 0.3)
        at_cancel = len(calls)
        await asyncio.sleep(0.5)
        return len(calls) - at_cancel

    assert asyncio.run(main()) <= 2  # at most the call in flight, and one started meanwhile


def test_run_returns_promptly_when_to_thread_work_hangs() -> None:
    release = threading.Event()

    async def agent() -> None:
        await asyncio.to_thread(release.wait, 30)

    t0 = time.perf_counter()
    raw = _run(agent, requests=2, timeout="0.2s")
    elapsed = time.perf_counter() - t0
    release.set()
    assert raw.error_types == {"Timeout": 2}
    assert elapsed < 10


def test_sync_runnable_runs_at_the_requested_concurrency() -> None:
    """ainvoke of a sync Runnable goes to the loop's default executor: it must not cap the run."""
    c = Counter()

    def work(x: Any) -> Any:
        c.enter()
        time.sleep(0.05)
        c.leave()
        return x

    class SyncRunnable:
        def invoke(self, x: Any) -> Any:
            return work(x)

        async def ainvoke(self, x: Any) -> Any:
            return await asyncio.get_running_loop().run_in_executor(None, work, x)

    _run(SyncRunnable(), ["q"], requests=120, concurrency=40)
    assert c.peak > 12  # the stock default executor has min(32, cores + 4) threads: 6 here


def test_usage_recorded_before_a_failure_is_counted() -> None:
    def agent(x: int) -> str:
        record_usage(input_tokens=100, output_tokens=10, model="m")
        if x:
            raise RuntimeError("tool failed after the LLM call")
        return "ok"

    raw = _run(agent, [0, 1], requests=10)
    usage = raw.usage.usage(10)
    assert usage.by_model["m"].calls == 10
    assert usage.total_tokens == 1100


def test_base_exception_in_an_async_agent_stops_the_run_at_once() -> None:
    class Stop(BaseException):
        pass

    calls = Counter()

    async def agent(x: int) -> None:
        calls.enter()
        if x == 3:
            raise Stop
        await asyncio.sleep(0.01)

    t0 = time.perf_counter()
    with pytest.raises(Stop):
        _run(agent, list(range(500)), requests=500, concurrency=2)
    assert calls.calls < 50
    assert time.perf_counter() - t0 < 3


class _AbortAfter:
    """An observer that stops the run once ``n`` calls are done, as abort_on does."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_start(self, t0: float) -> None:
        pass

    def on_tick(self, view: Any) -> str | None:
        return f"aborted after {view.done} calls" if view.done >= self.n else None

    def on_stop(self) -> None:
        pass

    def result_fields(self, log: Any, duration: float) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("rate", [None, 200])
def test_an_abort_does_not_wait_out_slow_cleanup_of_cancelled_calls(rate: int | None) -> None:
    async def agent(x: int) -> None:
        try:
            if x == 0:
                await asyncio.sleep(0.002)
                return
            await asyncio.sleep(3600)
        finally:
            if x == 1:
                await asyncio.sleep(20)  # a "graceful close" far longer than anyone should wait

    settings: dict[str, Any] = {"requests": 2000, "concurrency": 4, "warmup": 0}
    if rate:
        settings.update(rate=rate, arrival="constant")
    t0 = time.perf_counter()
    inputs = [1, 1] + [0] * 1000  # two calls hang (and clean up slowly), the rest are quick
    raw = run_load(agent, inputs, parse_settings(settings), observers=[_AbortAfter(10)])
    assert raw.aborted is not None and raw.aborted.startswith("aborted after")
    assert time.perf_counter() - t0 < 10


def test_base_exception_in_an_open_loop_call_propagates_cleanly() -> None:
    class Stop(BaseException):
        pass

    async def agent(x: int) -> None:
        if x == 5:
            raise Stop
        await asyncio.sleep(0.05)

    with pytest.raises(Stop):
        _run(agent, list(range(100)), requests=100, rate=200, arrival="constant")


def test_sync_open_loop_with_a_cap_ends() -> None:
    """Regression: a worker could stay blocked on the call queue and the run never ended."""
    result: list[RawRun] = []

    def go() -> None:
        settings = {"requests": 60, "rate": 200, "arrival": "constant", "concurrency": 50}
        result.append(_run(lambda: time.sleep(0.05), **settings))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the run did not end"
    assert len(result[0].log) == 60


def test_to_thread_agents_are_not_capped_in_an_uncapped_open_loop() -> None:
    c = Counter()

    def work() -> None:
        c.enter()
        time.sleep(0.1)
        c.leave()

    async def agent() -> None:
        await asyncio.to_thread(work)

    _run(agent, requests=60, rate=200, arrival="constant")
    assert c.peak > 12  # at 200/s, about 20 calls of 100 ms are in flight


def test_a_call_that_swallowed_the_cancellation_is_cancelled_again() -> None:
    async def agent() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        await asyncio.sleep(30)  # carries on as if nothing happened

    t0 = time.perf_counter()
    raw = _run(agent, requests=2, timeout="0.2s")
    assert raw.error_types == {"Timeout": 2}
    assert time.perf_counter() - t0 < 10  # each call stopped about 1.2 s in, not after 30 s


def test_cleanup_after_a_timeout_is_not_cut_short() -> None:
    cleaned: list[bool] = []

    async def agent() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.3)  # closing a connection, say
            cleaned.append(True)

    raw = _run(agent, requests=2, timeout="0.1s")
    assert raw.error_types == {"Timeout": 2}
    assert cleaned == [True, True]


def test_a_converted_cancellation_is_reported_as_a_timeout_only() -> None:
    async def agent() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise RuntimeError("connection reset while cancelling") from None

    raw = _run(agent, requests=2, timeout="0.1s")
    assert raw.error_types == {"Timeout": 2}
    assert raw.error_messages == ()


# -- inputs from iterables of unknown length -----------------------------------------------


class _Endless:
    """An endless iterator that counts how many items were taken from it."""

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self) -> _Endless:
        return self

    def __next__(self) -> int:
        self.taken += 1
        return self.taken - 1


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_endless_iterator_is_read_only_as_far_as_the_run_needs(
    kind: str, concurrency: int
) -> None:
    seen: list[int] = []

    def agent(x: int) -> int:
        seen.append(x)
        return x

    async def aagent(x: int) -> int:
        return agent(x)

    inputs = _Endless()
    settings = parse_settings({"requests": 50, "warmup": 3, "concurrency": concurrency})
    t0 = time.perf_counter()
    raw = run_load(agent if kind == "sync" else aagent, inputs, settings)
    assert time.perf_counter() - t0 < 10
    assert len(raw.log) == 50
    assert 50 <= inputs.taken <= 50 + 3 + 1  # at most one read ahead
    assert sorted(seen[3:]) == list(range(50))  # warmup reuses the first inputs


def test_a_generator_shorter_than_the_run_is_cycled() -> None:
    seen: list[str] = []
    raw = _run(seen.append, (c for c in "abc"), requests=7, concurrency=1)
    assert len(raw.log) == 7
    assert "".join(seen) == "abcabca"


def test_an_empty_generator_is_refused_before_the_run() -> None:
    with pytest.raises(UsageError, match="inputs= is empty"):
        _run(lambda x: x, (x for x in ()))


def test_lazy_inputs_are_read_by_one_thread_at_a_time() -> None:
    """A generator raises "already executing" when two threads call next() at once."""

    def slow_gen() -> Iterator[int]:
        for i in itertools.count():
            time.sleep(0.001)
            yield i

    seen: list[int] = []
    raw = _run(seen.append, slow_gen(), requests=200, concurrency=8)
    assert raw.error_types == {}
    assert sorted(seen) == list(range(200))


# -- never more workers than calls ---------------------------------------------------------


@pytest.mark.parametrize("rate", [None, 100])
def test_a_huge_concurrency_with_few_calls_starts_few_threads(rate: float | None) -> None:
    peak: list[int] = []
    before = threading.active_count()

    def agent() -> None:
        peak.append(threading.active_count())

    extra = {} if rate is None else {"rate": rate}
    t0 = time.perf_counter()
    raw = _run(agent, requests=1, concurrency=10**6, **extra)
    assert time.perf_counter() - t0 < 5  # a million threads would take minutes, or fail
    assert len(raw.log) == 1
    assert max(peak) <= before + 5


def test_a_huge_concurrency_with_few_calls_is_quick_for_async_agents() -> None:
    async def agent() -> None:
        await asyncio.sleep(0)

    t0 = time.perf_counter()
    raw = _run(agent, requests=3, concurrency=10**6)
    assert time.perf_counter() - t0 < 5  # a million worker coroutines would take far longer
    assert len(raw.log) == 3


def test_a_sync_run_asking_for_more_threads_than_can_work_is_a_settings_error() -> None:
    from pytest_agentperf.errors import SettingsError

    before = threading.active_count()
    t0 = time.perf_counter()
    with pytest.raises(SettingsError, match=r"concurrency=200000: .* async agent") as info:
        _run(lambda: None, duration="1s", concurrency=200_000)
    assert info.value.key == "concurrency"
    assert time.perf_counter() - t0 < 5
    assert threading.active_count() <= before + 5


# -- open-loop schedules at the edges ------------------------------------------------------


@pytest.mark.parametrize("rate", [1e-300, "1e-300/s", 1e-7, 1e300, "1e12/s"])
def test_a_rate_whose_schedule_cannot_be_kept_is_a_settings_error(rate: object) -> None:
    from pytest_agentperf.errors import SettingsError

    with pytest.raises(SettingsError, match=r"^rate=.*must be between") as info:
        parse_settings({"rate": rate})
    assert info.value.key == "rate"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_broken_schedule_fails_the_run_instead_of_ending_it_short(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_agentperf.engine.plan import Plan

    def arrivals(self: Plan) -> Iterator[tuple[int, float]]:
        yield 0, 0.0
        yield 1, 0.001
        raise OverflowError("timestamp too large")

    monkeypatch.setattr(Plan, "arrivals", arrivals)

    def agent() -> None:
        pass

    async def aagent() -> None:
        pass

    with pytest.raises(OverflowError):
        _run(agent if kind == "sync" else aagent, requests=10, rate=100)
