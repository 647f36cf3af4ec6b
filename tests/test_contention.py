"""The contention sampler and the CPU time per call: parsing, arithmetic, and real runs."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

import pytest_agentperf.observers.contention as contention
from pytest_agentperf.engine import arun_load, run_load
from pytest_agentperf.engine.log import ERROR, OK, MergedLog
from pytest_agentperf.observers.contention import (
    ContentionSampler,
    CpuTimes,
    contention_between,
    cpu_time_of,
    parse_proc_stat,
)
from pytest_agentperf.settings import parse_settings

PROC_STAT = """cpu  1000 50 250 5000 100 20 30 40 0 0
cpu0 500 25 125 2500 50 10 15 20 0 0
cpu1 500 25 125 2500 50 10 15 20 0 0
intr 123456
ctxt 98765
"""


def test_proc_stat_aggregate_line_is_read_as_seconds() -> None:
    t = parse_proc_stat(PROC_STAT, ticks_per_second=100)
    assert t is not None
    assert t.busy == pytest.approx((1000 + 50 + 250 + 20 + 30) / 100)  # user nice system irq soft
    assert t.idle == pytest.approx((5000 + 100) / 100)  # idle + iowait
    assert t.steal == pytest.approx(0.40)
    assert t.total == pytest.approx(t.busy + t.idle + t.steal)


def test_proc_stat_of_an_old_kernel_or_garbage() -> None:
    old = parse_proc_stat("cpu 100 0 50 800\n", ticks_per_second=100)  # four fields only
    assert old == CpuTimes(busy=1.5, idle=8.0, steal=0.0)
    assert parse_proc_stat("cpu0 1 2 3 4\n") is None  # no aggregate line
    assert parse_proc_stat("cpu 1 x 3 4\n") is None
    assert parse_proc_stat("cpu 1 2\n") is None
    assert parse_proc_stat("") is None


def test_other_processes_are_busy_time_minus_our_own() -> None:
    # 2 cores for 10 s: 20 CPU-seconds; the machine was busy 13 s, 3 of them ours, 1 s stolen
    start = CpuTimes(busy=100.0, idle=500.0, steal=5.0)
    end = CpuTimes(busy=113.0, idle=506.0, steal=6.0)
    other, steal, own = contention_between(start, end, 3.0, cores=2, interval=10.0)
    assert other == pytest.approx(10 / 20)
    assert steal == pytest.approx(1 / 20)
    assert own == pytest.approx(3 / 20)


def test_contention_figures_are_clipped_and_need_a_long_enough_window() -> None:
    start = CpuTimes(busy=100.0, idle=500.0, steal=0.0)
    end = CpuTimes(busy=101.0, idle=500.0, steal=0.0)
    # our own CPU counted in finer units than the ticks can exceed the machine's busy time
    other, _, own = contention_between(start, end, 1.2, cores=2, interval=1.0)
    assert other == 0.0 and own == 1.0
    assert contention_between(start, end, 0.0, cores=2, interval=0.05) == (None, None, None)
    assert contention_between(start, start, 0.0, cores=2, interval=1.0) == (None, None, None)


class FakeMachine:
    """Stands in for /proc/stat and the process clock: others use ``others`` of 2 cores."""

    def __init__(self, others: float, steal: float = 0.0) -> None:
        self.others = others
        self.steal = steal
        self.t0 = time.perf_counter()

    def cpu_times(self) -> tuple[CpuTimes, str]:
        wall = time.perf_counter() - self.t0
        busy = 2 * wall * self.others + time.process_time()
        steal = 2 * wall * self.steal
        return CpuTimes(busy=busy, idle=2 * wall - busy - steal + 1000.0, steal=steal), "fake"


def test_sampler_reports_what_other_processes_used(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeMachine(others=0.6, steal=0.05)
    monkeypatch.setattr(contention, "read_cpu_times", fake.cpu_times)
    settings = parse_settings({"requests": 24, "concurrency": 2, "warmup": 0})
    sampler = ContentionSampler()
    raw = run_load(lambda: time.sleep(0.025), None, settings, observers=[sampler])
    c = sampler.contention()
    assert c.interval is not None and c.interval >= 0.25
    assert c.other_cpu == pytest.approx(0.6, abs=0.1)
    assert c.steal == pytest.approx(0.05, abs=0.02)
    assert c.level == pytest.approx(0.65, abs=0.1)
    assert c.source == "fake"
    assert c.cores is not None and c.cores >= 1
    assert c.loop_lag_p50 is None  # a sync run has no event loop to watch
    assert len(raw.log) == 24


def test_async_runs_measure_the_event_loop_lag() -> None:
    async def agent() -> None:
        await asyncio.sleep(0.01)

    async def blocker() -> None:
        for _ in range(6):  # hold the loop for 30 ms, six times: the lag ticks fire late
            await asyncio.sleep(0.04)
            time.sleep(0.03)

    async def main() -> ContentionSampler:
        sampler = ContentionSampler()
        task = asyncio.create_task(blocker())
        settings = parse_settings({"requests": 40, "concurrency": 2, "warmup": 0})
        await arun_load(agent, None, settings, observers=[sampler])
        await task
        return sampler

    c = asyncio.run(main()).contention()
    assert c.loop_lag_max is not None and c.loop_lag_max >= 0.01
    assert c.loop_lag_p50 is not None and c.loop_lag_p95 is not None
    assert 0 <= c.loop_lag_p50 <= c.loop_lag_p95 <= c.loop_lag_max


def spin_cpu(seconds: float = 0.02) -> None:
    """Burn ``seconds`` of this thread's CPU time (robust on a loaded machine)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_time_of_a_busy_agent_is_close_to_its_wall_time() -> None:
    settings = parse_settings({"requests": 10, "concurrency": 1, "warmup": 0})
    sampler = ContentionSampler()
    raw = run_load(spin_cpu, None, settings, observers=[sampler])
    cpu = sampler.cpu_time(raw.log)
    assert cpu.source == "thread"
    assert cpu.per_call == pytest.approx(0.02, rel=0.2)
    assert cpu.p50 is None  # measured per worker thread, not per call
    lat50 = float(np.median(raw.log.latency))
    assert cpu.per_call <= lat50 * 1.05  # CPU time never exceeds the call's wall time
    assert cpu.share is not None and cpu.share > 0.15  # and is a visible share of it


def test_cpu_time_of_a_sleeping_agent_is_near_zero() -> None:
    settings = parse_settings({"requests": 8, "concurrency": 2, "warmup": 0})
    sampler = ContentionSampler()
    raw = run_load(lambda: time.sleep(0.02), None, settings, observers=[sampler])
    cpu = sampler.cpu_time(raw.log)
    assert cpu.source == "thread"
    assert cpu.per_call is not None and cpu.per_call < 0.002
    assert cpu.share is not None and cpu.share < 0.1


def test_async_cpu_time_is_the_process_cpu_over_the_run_per_call() -> None:
    async def agent() -> None:
        spin_cpu(0.01)  # the thread is the loop's: its CPU is the process's
        await asyncio.sleep(0)

    async def main() -> tuple[ContentionSampler, MergedLog]:
        sampler = ContentionSampler()
        settings = parse_settings({"requests": 10, "concurrency": 1, "warmup": 0})
        raw = await arun_load(agent, None, settings, observers=[sampler])
        return sampler, raw.log

    sampler, log = asyncio.run(main())
    cpu = sampler.cpu_time(log)
    assert cpu.source == "process"
    assert cpu.p50 is None
    assert cpu.per_call == pytest.approx(0.01, rel=0.5)  # plus the loop's own work


def test_cpu_time_of_a_fabricated_log() -> None:
    start = np.array([0.0, 0.1, 0.2, 0.3])
    end = start + np.array([0.010, 0.020, 0.030, 0.5])
    status = np.array([OK, OK, OK, ERROR], dtype=np.int8)
    nan = np.full(4, math.nan)
    threads = MergedLog(start, end, status, nan, nan[:0], cpu_per_call=0.005)
    cpu = cpu_time_of(threads, process_cpu=99.0)  # thread times win
    assert (cpu.source, cpu.per_call, cpu.p50) == ("thread", pytest.approx(0.005), None)
    assert cpu.share == pytest.approx(0.005 / 0.020)  # over the successful calls' p50
    process = MergedLog(start, end, status, nan, nan[:0])
    cpu = cpu_time_of(process, process_cpu=0.04)
    assert (cpu.source, cpu.per_call, cpu.p50) == ("process", pytest.approx(0.01), None)
    assert cpu_time_of(process, process_cpu=None).source == "none"
