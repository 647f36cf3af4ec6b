"""RSS sampler, Theil-Sen leak slope and the tracemalloc allocation view."""

from __future__ import annotations

import asyncio
import json
import mmap
import threading
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest

from pytest_agentperf.observers.memory import (
    MAX_INTERVAL,
    MIN_INTERVAL,
    MemorySampler,
    _Series,
    aprofile_agent,
    aprofile_allocations,
    interval_for,
    profile_agent,
    profile_allocations,
    theil_sen_slope,
)
from pytest_agentperf.results import Memory

scipy_stats = pytest.importorskip("scipy.stats")


# Theil-Sen -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_theil_sen_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    x = rng.integers(0, 60, size=n).astype(float)  # many ties in x, like calls-done counts
    y = 0.3 * x + rng.standard_t(2, size=n)  # heavy tails
    y[rng.integers(0, n, size=n // 10)] += 50.0  # outliers
    assert theil_sen_slope(x, y) == pytest.approx(scipy_stats.theilslopes(y, x)[0], rel=1e-12)


def test_theil_sen_ignores_a_one_off_jump() -> None:
    x = np.arange(200, dtype=float)
    y = 100.0 + 0.002 * x
    y[50:] += 30.0  # a cache filling once, not a leak
    slope = theil_sen_slope(x, y)
    assert slope is not None
    assert slope < 0.1  # a least-squares fit would give ~0.17
    assert np.polyfit(x, y, 1)[0] > 0.15


def test_theil_sen_thins_long_inputs() -> None:
    rng = np.random.default_rng(5)
    x = np.arange(20_000, dtype=float)
    y = 2.0 * x + rng.normal(0, 5, size=x.size)
    slope = theil_sen_slope(x, y)
    assert slope == pytest.approx(2.0, rel=1e-3)


@pytest.mark.parametrize("x", [[], [1.0], [1.0, 1.0, 2.0, 2.0], [3.0] * 10])
def test_theil_sen_needs_three_distinct_x(x: list[float]) -> None:
    assert theil_sen_slope(x, list(range(len(x)))) is None


# storage -------------------------------------------------------------------------------------


def test_series_decimates_to_a_bounded_even_grid() -> None:
    s = _Series(limit=100)
    for i in range(100_000):
        s.append(float(i), float(i))
    x, y = s.arrays()
    assert 50 <= x.size <= 100
    steps = np.diff(x)
    assert steps.min() == steps.max()  # evenly spaced after decimation
    assert x[-1] > 90_000  # recent samples kept
    np.testing.assert_array_equal(x, y)


def test_interval_grows_with_run_length() -> None:
    assert interval_for(0.0) == MIN_INTERVAL
    assert interval_for(1.0) == MIN_INTERVAL
    assert MIN_INTERVAL < interval_for(30.0) < MAX_INTERVAL
    assert interval_for(3600.0) == MAX_INTERVAL


# sampler with injected RSS and clock ---------------------------------------------------------


class _FakeProcess:
    def __init__(self) -> None:
        self.now = 0.0
        self.rss = 100_000_000

    def clock(self) -> float:
        return self.now

    def read(self) -> int:
        return self.rss


@dataclass
class _View:
    done: int
    elapsed: float
    errors: int = 0


def _manual_sampler(fake: _FakeProcess) -> MemorySampler:
    # An interval of an hour: the thread never fires; the test calls sample() itself.
    return MemorySampler(interval=3600.0, rss=fake.read, clock=fake.clock)


def test_sampler_reports_start_peak_growth_and_slope_from_end_times() -> None:
    fake = _FakeProcess()
    sampler = _manual_sampler(fake)
    sampler.on_start(0.0)
    ends = np.arange(1, 1001) * 0.01  # 1000 calls, one every 10 ms
    for i in range(1, 501):
        fake.now = i * 0.02
        done = int(np.searchsorted(ends, fake.now, side="right"))
        fake.rss = 100_000_000 + 2_000 * done  # 2 kB per call = 2 MB per 1k calls
        if i == 250:
            fake.rss += 40_000_000  # one spike
        sampler.sample()
    fake.now = 10.5
    sampler.on_stop()
    mem = sampler.memory(ends)
    assert mem.rss_start_mb == pytest.approx(100.0)
    assert mem.rss_peak_mb == pytest.approx(100.0 + 40.0 + 2.0 * 0.5, abs=0.01)
    assert mem.rss_delta_mb == pytest.approx(mem.rss_peak_mb - 100.0)
    assert mem.per_1k_calls == pytest.approx(2.0, rel=1e-6)
    assert mem.samples == 502
    log = _Log(start=ends - 0.005, end=ends, status=np.zeros(ends.size, dtype=np.int8))
    fields = sampler.result_fields(log, 10.0)
    assert fields["memory"] == mem
    windows = fields["windows"]
    assert len(windows) == 10 and sum(w.calls for w in windows) == 1000
    assert all(99 <= w.calls <= 101 for w in windows)  # calls ending on an edge go to the next
    assert windows[0].rss_mb == pytest.approx(100.0 + 0.2, abs=0.01)  # RSS peak within window
    assert windows[5].rss_mb == pytest.approx(140.0 + 1.0, abs=0.01)  # the spike at 5.0 s
    assert windows[-1].rss_mb == pytest.approx(100.0 + 2.0, abs=0.01)
    assert sampler.result_fields() == {"memory": sampler.memory()}


@dataclass
class _Log:
    start: np.ndarray
    end: np.ndarray
    status: np.ndarray


def test_sampler_slope_from_engine_ticks_without_a_call_log() -> None:
    fake = _FakeProcess()
    sampler = _manual_sampler(fake)
    sampler.on_start(0.0)
    for i in range(1, 301):
        fake.now = i * 0.1
        sampler.on_tick(_View(done=10 * i, elapsed=fake.now))
        fake.rss = 100_000_000 + 5_000 * 10 * i  # 5 MB per 1k calls
        fake.now += 0.05
        sampler.sample()
    sampler.on_stop()
    mem = sampler.memory()
    assert mem.per_1k_calls == pytest.approx(5.0, rel=1e-6)


def test_flat_rss_gives_zero_slope_and_growth() -> None:
    fake = _FakeProcess()
    sampler = _manual_sampler(fake)
    sampler.on_start(0.0)
    for i in range(1, 50):
        fake.now = i * 0.01
        sampler.sample()
    sampler.on_stop()
    mem = sampler.memory(np.arange(1, 50) * 0.01)
    assert mem.rss_delta_mb == 0.0
    assert mem.per_1k_calls == 0.0


def test_sampler_never_started_reports_unknown() -> None:
    sampler = MemorySampler(rss=lambda: 1)
    assert sampler.memory() == Memory()
    assert sampler.growth_mb is None
    sampler.on_stop()  # harmless


def test_slope_unknown_when_no_calls_completed() -> None:
    fake = _FakeProcess()
    sampler = _manual_sampler(fake)
    sampler.on_start(0.0)
    sampler.on_stop()
    mem = sampler.memory([])
    assert mem.per_1k_calls is None
    assert mem.rss_start_mb == pytest.approx(100.0)


def test_sampler_survives_a_failing_reader() -> None:
    def broken() -> int:
        raise OSError("no /proc")

    sampler = MemorySampler(interval=0.001, rss=broken)
    sampler.on_start(time.perf_counter())
    time.sleep(0.02)
    sampler.on_stop()
    assert sampler.memory() == Memory()


# the real thing ------------------------------------------------------------------------------


def _drive(sampler: MemorySampler, calls: int, leak: list[mmap.mmap] | None) -> list[float]:
    t0 = time.perf_counter()
    sampler.on_start(t0)
    ends = []
    for _ in range(calls):
        if leak is not None:
            # fresh anonymous pages, written: RSS really grows, even when the heap holds memory
            # freed by earlier tests that a bytes object would reuse
            page = mmap.mmap(-1, 100_000)
            page.write(b"x" * 100_000)
            leak.append(page)
        time.sleep(0.001)
        ends.append(time.perf_counter() - t0)
    sampler.on_stop()
    return ends


def test_real_sampler_sees_a_leak() -> None:
    leak: list[mmap.mmap] = []
    sampler = MemorySampler()
    ends = _drive(sampler, 300, leak)
    mem = sampler.memory(ends)
    assert mem.samples >= 10
    assert mem.rss_delta_mb is not None and mem.rss_delta_mb > 15.0  # 30 MB leaked
    assert mem.per_1k_calls is not None and 40.0 < mem.per_1k_calls < 250.0  # 100 MB per 1k
    assert len(leak) == 300


def test_real_sampler_sees_no_leak_in_a_clean_agent() -> None:
    sampler = MemorySampler()
    ends = _drive(sampler, 300, None)
    mem = sampler.memory(ends)
    assert mem.per_1k_calls is not None and abs(mem.per_1k_calls) < 20.0
    assert sampler._thread is None


# tracemalloc pass ----------------------------------------------------------------------------

_LEAK: list[bytes] = []


def _leaky_call() -> None:
    _LEAK.append(b"y" * 50_000)  # the line to find


def _leak_line() -> str:
    import inspect

    lines, first = inspect.getsourcelines(_leaky_call)
    offset = next(i for i, line in enumerate(lines) if "the line to find" in line)
    return f"test_memory.py:{first + offset}"


def test_profile_points_at_the_leaking_line() -> None:
    _LEAK.clear()
    rows = profile_allocations(_leaky_call, 40)
    assert rows, "no allocation found"
    top = rows[0]
    assert top.location.endswith(_leak_line())
    assert top.size_mb == pytest.approx(40 * 50_000 / 1e6, rel=0.1)
    assert top.count >= 40
    assert not tracemalloc.is_tracing()
    _LEAK.clear()


def test_profile_ignores_errors_and_keeps_user_tracing() -> None:
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise RuntimeError("boom")
        _leaky_call()

    _LEAK.clear()
    tracemalloc.start()
    try:
        rows = profile_allocations(flaky, 20, top=3)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
    assert calls == 20
    assert len(rows) <= 3
    assert rows[0].location.endswith(_leak_line())
    _LEAK.clear()


def test_profile_rejects_an_async_callable() -> None:
    async def agent() -> None:
        return None

    with pytest.raises(TypeError, match="aprofile_allocations"):
        profile_allocations(agent, 3)
    assert not tracemalloc.is_tracing()


@pytest.mark.asyncio
async def test_async_profile_points_at_the_leaking_line() -> None:
    async def agent() -> None:
        await asyncio.sleep(0)
        _leaky_call()

    _LEAK.clear()
    rows = await aprofile_allocations(agent, 30)
    assert rows[0].location.endswith(_leak_line())
    assert not tracemalloc.is_tracing()
    _LEAK.clear()


# end to end ----------------------------------------------------------------------------------

LEAKY_TEST = """
import json, time
import pytest

LEAK = []

def leaky(x=None):
    LEAK.append(b"x" * 200_000)  # the leaking line
    time.sleep(0.002)

@pytest.mark.agent_perf(requests=200, memory_per_1k_calls="5MB", memory_profile=True)
def test_leak(agentperf):
    agentperf.run(leaky)

def clean(x=None):
    time.sleep(0.002)

@pytest.mark.agent_perf(requests=200, memory_per_1k_calls="50MB", memory="50MB")
def test_clean(agentperf):
    r = agentperf.run(clean)
    assert r.memory.samples >= 2 and r.memory.rss_peak_mb >= r.memory.rss_start_mb
    assert r.memory.top_allocations == ()  # no profile pass unless asked
"""


def test_leaking_agent_fails_its_memory_budget_end_to_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY_TEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    out = pytester.path / "perf.json"
    result = pytester.runpytest(
        "-p", "no:randomly", f"--agentperf-json={out}", "--agentperf-columns=all"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RSS growth per 1k calls * MB > budget 5 MB (n=200)*",
            "*test*RSS+*MB/1k*status*",
            "*test_leak *FAIL memory_per_1k_calls*",
        ]
    )
    runs = {r["nodeid"]: r["result"] for r in json.loads(out.read_text())["runs"]}
    leak = runs["test_leaky.py::test_leak"]["memory"]
    assert 50.0 < leak["per_1k_calls"] < 500.0  # 200 MB per 1k calls leaked
    assert leak["rss_delta_mb"] > 15.0
    top = leak["top_allocations"][0]
    line = 1 + LEAKY_TEST.strip("\n").splitlines().index(
        '    LEAK.append(b"x" * 200_000)  # the leaking line'
    )
    assert top["location"].endswith(f"test_leaky.py:{line}")
    assert top["count"] >= 20
    assert abs(runs["test_leaky.py::test_clean"]["memory"]["per_1k_calls"]) < 50.0
    assert sum(w["calls"] for w in runs["test_leaky.py::test_clean"]["windows"]) == 200


def test_profile_agent_drains_streams_and_cycles_inputs() -> None:
    seen: list[str] = []

    def streaming(x: str):  # type: ignore[no-untyped-def]
        seen.append(x)
        for _ in range(3):
            yield _leaky_call()

    _LEAK.clear()
    rows = profile_agent(streaming, ["a", "b"], 4)
    assert seen == ["a", "b", "a", "b"]
    assert len(_LEAK) == 12
    assert rows[0].location.endswith(_leak_line())
    _LEAK.clear()


@pytest.mark.asyncio
async def test_aprofile_agent_runs_sync_agents_off_the_loop_and_async_streams() -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()

    def sync_agent() -> None:
        threads.add(threading.get_ident())
        _leaky_call()

    async def async_stream():  # type: ignore[no-untyped-def]
        for _ in range(2):
            await asyncio.sleep(0)
            _leaky_call()
            yield "chunk"

    _LEAK.clear()
    rows = await aprofile_agent(sync_agent, None, 5)
    assert threads and loop_thread not in threads
    assert rows[0].location.endswith(_leak_line())
    rows = await aprofile_agent(async_stream, None, 5, timeout=5.0)
    assert len(_LEAK) == 5 + 10
    assert rows[0].location.endswith(_leak_line())
    _LEAK.clear()


@pytest.mark.asyncio
async def test_aprofile_agent_gives_up_on_a_hung_call() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    began = time.perf_counter()
    rows = await aprofile_agent(hangs, None, 3, timeout=0.05)
    assert all(r.size_mb < 0.1 for r in rows)  # asyncio's own bookkeeping at most
    assert time.perf_counter() - began < 5.0


GENERATOR_INPUTS = """
import pytest

SEEN = []

def agent(x):
    SEEN.append(x)

@pytest.mark.agent_perf(requests=20, warmup=0, memory_profile=True)
def test_generator_inputs(agentperf):
    agentperf.run(agent, (f"q{i}" for i in range(20)))
    assert set(SEEN) == {f"q{i}" for i in range(20)}  # the profile pass reused the run's inputs

@pytest.mark.agent_perf(requests=5, warmup=0, memory_profile=True)
@pytest.mark.asyncio
async def test_async_generator_inputs(agentperf):
    async def aagent(x):
        SEEN.append(x)
    SEEN.clear()
    await agentperf.arun(aagent, iter(["a", "b", "c", "d", "e"]))
    assert set(SEEN) == {"a", "b", "c", "d", "e"}
"""


def test_the_profile_pass_reuses_one_shot_inputs_the_run_read(pytester: pytest.Pytester) -> None:
    """A generator is read once: the allocation pass after the run must not find it used up."""
    pytester.makepyfile(test_gen=GENERATOR_INPUTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
