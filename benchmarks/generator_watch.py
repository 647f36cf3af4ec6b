"""Does the watch on the load generator disturb the timed calls? Latency with and without it.

Run: .venv/bin/python benchmarks/generator_watch.py [--quick]

Three fixed agents, each run alternately without and with the ``GeneratorWatch`` (A B A B ...,
so a machine that drifts hurts both sides alike):
1. asyncio.sleep(5 ms), 16 calls in flight (the lag tick shares the loop with the calls)
2. ~1 ms of pure-Python work per call in an async agent, 1 in flight (the loop is always busy:
   where the lag tick would show most)
3. time.sleep(5 ms) on the plugin's threads, 4 in flight (CPU and thread samples only)
Printed: median over repeats of each side's p50 and mean latency, and the ratio of the p50s
with / without  [target < 1.01]. On a shared machine the means wander by a few percent either
way from run to run, so the script also measures the watch's own cost directly: the CPU it
takes per second of an otherwise idle event loop (its lag ticks) and per CPU/thread sample,
as a share of the time between them: the most it can add to a call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from pytest_agentperf.engine import run_load
from pytest_agentperf.observers.generator import SAMPLE_EVERY, GeneratorWatch
from pytest_agentperf.observers.looplag import LAG_PERIOD
from pytest_agentperf.settings import parse_settings


async def _async_sleep() -> None:
    await asyncio.sleep(0.005)


async def _async_busy() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


def _thread_sleep() -> None:
    time.sleep(0.005)


def _latency(fn: Callable[[], Any], settings: Any, watched: bool) -> tuple[float, float]:
    """p50 and mean latency of the successful calls of one run."""
    observers = [GeneratorWatch()] if watched else []
    raw = run_load(fn, None, settings, observers=observers)
    ok = raw.log.latency[raw.log.status == 0]
    return float(np.percentile(ok, 50)), float(ok.mean())


class _View:
    """The part of the engine's LiveView the watch reads."""

    def __init__(self) -> None:
        self.elapsed = 0.0


def _own_cost() -> tuple[float, float]:
    """(share of one core the lag ticks use on an idle loop, seconds per CPU/thread sample)."""

    async def idle(watched: bool, seconds: float) -> float:
        watch = GeneratorWatch()
        if watched:
            watch.on_start(time.perf_counter())
        cpu0 = time.process_time()
        await asyncio.sleep(seconds)
        used = time.process_time() - cpu0
        if watched:
            watch.on_stop()
        return used

    seconds = 2.0
    base = asyncio.run(idle(False, seconds))
    ticking = asyncio.run(idle(True, seconds))
    watch, view = GeneratorWatch(), _View()
    watch.on_start(time.perf_counter())
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n):
        view.elapsed += SAMPLE_EVERY  # each tick takes a sample
        watch.on_tick(view)  # type: ignore[arg-type]
    per_sample = (time.perf_counter() - t0) / n
    watch.on_stop()
    return max(0.0, ticking - base) / seconds, per_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 9
    cases: list[tuple[str, Callable[[], Any], dict[str, Any]]] = [
        ("asyncio.sleep(5 ms), c=16", _async_sleep, {"requests": 1600, "concurrency": 16}),
        ("async 1 ms pure Python, c=1", _async_busy, {"requests": 600, "concurrency": 1}),
        ("time.sleep(5 ms), c=4", _thread_sleep, {"requests": 400, "concurrency": 4}),
    ]
    head = f"{'agent':30} {'p50 off':>9} {'p50 on':>9} {'mean off':>9} {'mean on':>9}"
    print(f"{head} {'ratio':>7}")
    for label, fn, raw_settings in cases:
        if args.quick:
            raw_settings = {**raw_settings, "requests": raw_settings["requests"] // 4}
        settings = parse_settings({**raw_settings, "warmup": 5})
        off: list[tuple[float, float]] = []
        on: list[tuple[float, float]] = []
        for _ in range(repeats):
            off.append(_latency(fn, settings, False))
            on.append(_latency(fn, settings, True))
        p50_off, p50_on = (statistics.median(x[0] for x in side) for side in (off, on))
        mean_off, mean_on = (statistics.median(x[1] for x in side) for side in (off, on))
        print(
            f"{label:30} {p50_off * 1e3:7.3f}ms {p50_on * 1e3:7.3f}ms "
            f"{mean_off * 1e3:7.3f}ms {mean_on * 1e3:7.3f}ms {p50_on / p50_off:7.3f}"
        )
    ticks, per_sample = _own_cost()
    print(
        f"lag ticks (every {LAG_PERIOD * 1e3:g} ms) on an idle loop: {ticks:.3%} of one core; "
        f"one CPU/thread sample: {per_sample * 1e6:.1f} us every {SAMPLE_EVERY * 1e3:g} ms "
        f"({per_sample / SAMPLE_EVERY:.3%})  [target: together < 1%]"
    )


if __name__ == "__main__":
    main()
