"""The plugin's own cost per call, as ratios against baselines measured in the same run.

Run: .venv/bin/python benchmarks/per_call.py [--quick]

Figures (issue targets in brackets):
1. per-call cost of a run (the engine behind ``agentperf.run``) with a no-op sync agent at
   concurrency 1, against a bare loop that times each call into a list, and against
   pytest-benchmark's reported median for the same no-op (a subprocess run of pytest-benchmark,
   if installed); with the cost of a pair of ``time.thread_time()`` reads, for information
   (a sync run reads it twice per worker thread, not per call)                 [<= 600 ns]
2. closed-loop throughput, no-op async agent, 100k calls at concurrency 100, against 100
   long-lived worker coroutines that time each call into a list                [>= 0.5x]
3. reported latency of a no-op call (bias): engine p50 minus the bare loop's p50 [<= 0.3 us]
4. RSS growth for 1M calls through the fixture object (run, result, record), in a fresh
   process                                                                      [<= 48 MB]
5. open-loop p99 of a 50 ms sleeper at concurrency 1000 against a bare loop   [within 2 %]

Figures 1, 2, 3 and 5 run the engine (``run_load``) directly: the fixture adds the result's
statistics, a per-run cost that is not the per-call hot path. Figure 4 goes through the fixture
object, as a test does. Each figure is the median (throughput: the best) of several
interleaved repeats, so a noisy neighbour hurts both sides alike; compare figures from one run
only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil


def _noop_sync() -> None:
    return None


async def _noop_async() -> None:
    return None


def _run(fn: Any, **settings: Any) -> Any:
    """One engine run of ``fn`` (no warmup); returns its ``RawRun``."""
    from pytest_agentperf.engine import run_load
    from pytest_agentperf.settings import parse_settings

    return run_load(fn, None, parse_settings({"warmup": 0, **settings}))


def _thread_time_pair() -> float:
    """Seconds two ``time.thread_time()`` reads take (a system call on Linux; a sync run makes
    two per worker thread for its CPU time, none per call)."""
    t = time.thread_time
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        t()
        t()
    return (time.perf_counter() - t0) / n


def _bare_sync(n: int) -> list[float]:
    """The leanest sync measurement: time each call, append to a list."""
    perf = time.perf_counter
    lat: list[float] = []
    append = lat.append
    fn = _noop_sync
    for _ in range(n):
        t0 = perf()
        fn()
        append(perf() - t0)
    return lat


async def bare_workers(n: int, concurrency: int) -> list[float]:
    """``concurrency`` long-lived worker coroutines, each timing its calls into one list."""
    lat: list[float] = []
    perf = time.perf_counter
    remaining = iter(range(n))

    async def worker() -> None:
        for _ in remaining:
            t0 = perf()
            await _noop_async()
            lat.append(perf() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat


async def _bare_open_loop(n: int, rate: float, seconds: float) -> list[float]:
    """Constant-rate arrivals, each a task timed from its intended start."""
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    perf = time.perf_counter
    t0 = perf()

    async def one(t_int: float) -> None:
        await asyncio.sleep(seconds)
        lat.append(perf() - t_int)

    # only the calls in flight are kept: a gather over all 10k tasks at the end would block
    # the loop for tens of ms while the last calls' timers are due, inflating the bare p99
    tasks: set[asyncio.Task[None]] = set()
    for i in range(n):
        t_int = t0 + i / rate
        delay = t_int - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(t_int))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return lat


def _timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _pytest_benchmark_mean() -> float | None:
    """pytest-benchmark's mean for a no-op, from its JSON; None when it is not installed."""
    try:
        import pytest_benchmark  # noqa: F401
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        test = os.path.join(tmp, "test_noop.py")
        out = os.path.join(tmp, "bench.json")
        with open(test, "w") as f:
            f.write("def noop():\n    return None\n\ndef test_noop(benchmark):\n")
            f.write("    benchmark(noop)\n")
        subprocess.run(
            [sys.executable, "-m", "pytest", test, "-q", "-p", "no:agentperf", "-p", "no:xdist",
             "-p", "no:cacheprovider", f"--benchmark-json={out}", "-o", "addopts="],
            check=True, capture_output=True, cwd=tmp,
        )  # fmt: skip
        with open(out) as f:
            return float(json.load(f)["benchmarks"][0]["stats"]["median"])


_MEMORY_CHILD = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    import psutil
    from pytest_agentperf.fixture import AgentPerf
    from pytest_agentperf.pipeline import RunPipeline
    async def noop():
        return None
    n = int(sys.argv[1])
    fixture = AgentPerf(RunPipeline(), "bench::memory")
    # warm the imports and caches with a tiny run first, so only per-call state is counted
    fixture.run(noop, requests=100, concurrency=100, warmup=0, name="warm")
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss
    result = fixture.run(noop, requests=n, concurrency=100, warmup=0, name="big")
    records = [r.to_dict() for r in fixture.take_new_records()]  # as a test report carries them
    gc.collect()
    after = proc.memory_info().rss
    print(json.dumps({"calls": result.requests, "mb": (after - before) / 1e6}))
    """
)


def _memory_per_calls(n: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(n)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls")
    args = parser.parse_args()
    k = 10 if args.quick else 1
    repeats = 5
    print(
        f"machine: {platform.machine()}, {psutil.cpu_count()} cores, Python "
        f"{platform.python_version()}, load avg {tuple(round(x, 2) for x in os.getloadavg())}"
    )
    # 1. per-call cost, sync no-op, c=1 (wall time of the whole run over its calls)
    n = 200_000 // k
    eng, bare = [], []
    for _ in range(repeats):
        eng.append(_timed(lambda: _run(_noop_sync, requests=n)) / n)
        bare.append(_timed(lambda: _bare_sync(n)) / n)
    e_ns, b_ns = statistics.median(eng) * 1e9, statistics.median(bare) * 1e9
    pb = _pytest_benchmark_mean()
    pb_text = f", pytest-benchmark {pb * 1e9:.0f} ns" if pb is not None else ""
    tt_ns = statistics.median(_thread_time_pair() for _ in range(repeats)) * 1e9
    print(
        f"1. per-call cost, sync no-op c=1, {n:,} calls: engine {e_ns:,.0f} ns, bare loop "
        f"{b_ns:,.0f} ns{pb_text}; engine/bare {e_ns / b_ns:.1f}x (target <= 600 ns, set "
        "against a 157 ns bare loop: 3.8x); "
        f"two thread_time() reads (per worker thread, not per call) {tt_ns:,.0f} ns"
    )

    # 2. closed-loop throughput, async no-op, c=100
    n = 100_000 // k
    eng_rate = bare_rate = 0.0
    for _ in range(repeats):
        t = _timed(lambda: _run(_noop_async, requests=n, concurrency=100))
        eng_rate = max(eng_rate, n / t)
        bare_rate = max(bare_rate, n / _timed(lambda: asyncio.run(bare_workers(n, 100))))
    print(
        f"2. closed-loop throughput, async no-op c=100, {n:,} calls: engine {eng_rate:,.0f}/s, "
        f"worker loop {bare_rate:,.0f}/s, ratio {eng_rate / bare_rate:.2f} (target >= 0.5)"
    )

    # 3. bias of a no-op call's reported latency
    n = 50_000 // k
    eng_p50, bare_p50 = [], []
    for _ in range(repeats):
        eng_p50.append(float(np.median(_run(_noop_sync, requests=n).log.latency)))
        bare_p50.append(float(np.median(_bare_sync(n))))
    bias = (statistics.median(eng_p50) - statistics.median(bare_p50)) * 1e6
    print(
        f"3. no-op latency p50: engine {statistics.median(eng_p50) * 1e6:.2f} us, bare "
        f"{statistics.median(bare_p50) * 1e6:.2f} us, bias {bias:.2f} us (target <= 0.3 us)"
    )

    # 4. memory for 1M calls through the fixture, in a fresh process
    n = 1_000_000 // k
    mem = _memory_per_calls(n)
    print(
        f"4. RSS growth for {int(mem['calls']):,} calls through the fixture (fresh process): "
        f"{mem['mb']:.1f} MB (target <= {48 / k:.1f} MB)"
    )

    # 5. open-loop p99, 50 ms sleeper, c=1000
    async def sleep50() -> None:
        await asyncio.sleep(0.05)

    n, rate = 10_000 // k, 2_000.0
    eng_p99, bare_p99 = [], []
    for _ in range(3):
        res = _run(sleep50, requests=n, rate=rate, arrival="constant", concurrency=1000)
        eng_p99.append(float(np.percentile(res.log.latency, 99)))
        bare_p99.append(float(np.percentile(asyncio.run(_bare_open_loop(n, rate, 0.05)), 99)))
    e99, b99 = statistics.median(eng_p99), statistics.median(bare_p99)
    print(
        f"5. open-loop p99, sleep(50 ms) at {rate:.0f}/s c=1000, {n:,} calls: engine "
        f"{e99 * 1e3:.2f} ms, bare {b99 * 1e3:.2f} ms, ratio {e99 / b99:.3f} (target 0.98-1.02)"
    )


if __name__ == "__main__":
    main()
