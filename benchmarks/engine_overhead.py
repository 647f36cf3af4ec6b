"""Engine overhead against bare loops measured in the same run (issue targets in brackets).

Run: .venv/bin/python benchmarks/engine_overhead.py [--quick]

1. no-op async agent, 100k calls at concurrency 100: engine / bare semaphore loop  [>= 0.8]
2. no-op sync agent, 20k calls at concurrency 8: engine / bare ThreadPoolExecutor   [>= 0.8]
3. asyncio.sleep(50 ms) agent at concurrency 1000: engine p50 / bare p50             [within 5 %]
4. RSS growth for 1M recorded no-op async calls                                      [<= 64 MB]
5. every per-call output on (the run keeps its call table): no-op async throughput
   with the table / without                                                          [>= 0.95]
   and for an agent that records usage each call (information)
Each throughput figure is the best of several repeats, so a noisy neighbour hurts both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil
from per_call import bare_workers  # the same worker-coroutine loop as per_call.py

from pytest_agentperf import record_usage
from pytest_agentperf.engine import KEEP_CALLS, run_load
from pytest_agentperf.settings import parse_settings


async def _noop_async() -> None:
    return None


def _noop_sync() -> None:
    return None


async def _bare_async(n: int, concurrency: int, fn: Callable[[], object]) -> list[float]:
    """A semaphore-bounded task loop that times each call with perf_counter."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    perf = time.perf_counter

    async def one() -> None:
        async with sem:
            t0 = perf()
            await fn()  # type: ignore[misc]
            latencies.append(perf() - t0)

    await asyncio.gather(*(one() for _ in range(n)))
    return latencies


def _bare_threads(n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    perf = time.perf_counter

    def one() -> None:
        t0 = perf()
        _noop_sync()
        latencies.append(perf() - t0)

    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(one) for _ in range(n)]:
            f.result()
    return latencies


async def _usage_async() -> None:
    record_usage(10, 5, model="gpt-4o-mini")


def _interleaved(fns: list[Callable[[], object]], n: int, repeats: int) -> list[float]:
    """The best rate of each of ``fns``, repeated in turn so drift hits each alike."""
    best = [0.0] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            best[i] = max(best[i], n / (time.perf_counter() - t0))
    return best


def _best_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the calls, for a smoke run"
    )
    args = parser.parse_args()
    k = 10 if args.quick else 1
    repeats = 5
    print(
        f"machine: {platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"Python {platform.python_version()}, load avg {psutil.getloadavg()}"
    )

    n = 100_000 // k
    s = parse_settings({"requests": n, "concurrency": 100, "warmup": 0})
    eng = _best_rate(lambda: run_load(_noop_async, None, s), n, repeats)
    bare = _best_rate(lambda: asyncio.run(_bare_async(n, 100, _noop_async)), n, repeats)
    print(
        f"1. async no-op {n} calls c=100: engine {eng:,.0f}/s, bare {bare:,.0f}/s, "
        f"ratio {eng / bare:.2f} (target >= 0.8)"
    )
    lean = _best_rate(lambda: asyncio.run(bare_workers(n, 100)), n, repeats)
    print(
        f"   against a bare worker-pool loop (no timeout, no usage): {lean:,.0f}/s, "
        f"ratio {eng / lean:.2f} (information)"
    )

    n = 20_000 // k
    s = parse_settings({"requests": n, "concurrency": 8, "warmup": 0})
    eng = _best_rate(lambda: run_load(_noop_sync, None, s), n, repeats)
    bare = _best_rate(lambda: _bare_threads(n, 8), n, repeats)
    print(
        f"2. sync no-op {n} calls c=8: engine {eng:,.0f}/s, bare {bare:,.0f}/s, "
        f"ratio {eng / bare:.2f} (target >= 0.8)"
    )

    async def sleep50() -> None:
        await asyncio.sleep(0.05)

    n = 5000 // k
    s = parse_settings({"requests": n, "concurrency": 1000, "warmup": 0})
    eng_p50 = statistics.median(
        statistics.median(run_load(sleep50, None, s).log.latency) for _ in range(3)
    )
    bare_p50 = statistics.median(
        statistics.median(asyncio.run(_bare_async(n, 1000, sleep50))) for _ in range(3)
    )
    print(
        f"3. sleep(50 ms) {n} calls c=1000: engine p50 {eng_p50 * 1e3:.2f} ms, bare p50 "
        f"{bare_p50 * 1e3:.2f} ms, ratio {eng_p50 / bare_p50:.3f} (target 0.95-1.05)"
    )

    n = 1_000_000 // k
    gc.collect()
    proc = psutil.Process()
    before = proc.memory_info().rss
    s = parse_settings({"requests": n, "concurrency": 100, "warmup": 0})
    raw = run_load(_noop_async, None, s)
    after = proc.memory_info().rss
    print(
        f"4. RSS growth for {len(raw.log):,} recorded calls: {(after - before) / 1e6:.1f} MB "
        "(target <= 64 MB)"
    )
    del raw

    n = 100_000 // k
    s = parse_settings({"requests": n, "concurrency": 100, "warmup": 0})
    for label, agent in (("no-op", _noop_async), ("record_usage", _usage_async)):
        plain, kept = _interleaved(
            [
                lambda agent=agent: run_load(agent, None, s),  # type: ignore[misc]
                lambda agent=agent: run_load(agent, None, s, detail=KEEP_CALLS),  # type: ignore[misc]
            ],
            n,
            repeats,
        )
        target = " (target >= 0.95)" if agent is _noop_async else " (information)"
        print(
            f"5. {label} async {n} calls c=100, call table kept / not: {kept:,.0f}/s / "
            f"{plain:,.0f}/s, ratio {kept / plain:.2f}{target}"
        )


if __name__ == "__main__":
    main()
