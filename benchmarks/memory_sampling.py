"""Does the RSS sampler disturb the timed calls? p50 latency with and without it, same run.

Run: .venv/bin/python benchmarks/memory_sampling.py [--quick]

Three fixed agents, each run alternately without and with the sampler (A B A B ..., so a
machine that drifts hurts both sides alike); the sampler at its densest (5 ms interval):
1. asyncio.sleep(5 ms), 16 calls in flight
2. time.sleep(5 ms) on the plugin's threads, 4 in flight
3. ~1 ms of pure-Python work per call (holds the GIL, where a sampler thread would show most)
Printed: median over repeats of each side's p50, and the ratio with / without  [target <= 1.02].
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
from pytest_agentperf.observers.memory import MIN_INTERVAL, MemorySampler
from pytest_agentperf.settings import parse_settings


async def _async_sleep() -> None:
    await asyncio.sleep(0.005)


def _thread_sleep() -> None:
    time.sleep(0.005)


def _busy() -> int:
    total = 0
    for i in range(20_000):
        total += i * i
    return total


def _p50(fn: Callable[[], Any], settings: Any, sampled: bool) -> tuple[float, int]:
    sampler = MemorySampler(interval=MIN_INTERVAL) if sampled else None
    raw = run_load(fn, None, settings, observers=[sampler] if sampler else ())
    ok = raw.log.status == 0
    return float(np.percentile(raw.log.latency[ok], 50)), sampler.count if sampler else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    cases: list[tuple[str, Callable[[], Any], dict[str, Any]]] = [
        ("asyncio.sleep(5 ms), c=16", _async_sleep, {"requests": 800, "concurrency": 16}),
        ("time.sleep(5 ms), c=4", _thread_sleep, {"requests": 400, "concurrency": 4}),
        ("1 ms pure Python, c=1", _busy, {"requests": 400, "concurrency": 1}),
    ]
    print(f"{'agent':28} {'p50 without':>12} {'p50 with':>12} {'ratio':>7} {'samples':>8}")
    for label, fn, raw_settings in cases:
        if args.quick:
            raw_settings = {**raw_settings, "requests": raw_settings["requests"] // 4}
        settings = parse_settings({**raw_settings, "warmup": 5})
        without: list[float] = []
        with_: list[float] = []
        samples = 0
        for _ in range(repeats):
            without.append(_p50(fn, settings, False)[0])
            p50, n = _p50(fn, settings, True)
            with_.append(p50)
            samples = max(samples, n)
        a, b = statistics.median(without), statistics.median(with_)
        print(f"{label:28} {a * 1e3:10.3f}ms {b * 1e3:10.3f}ms {b / a:7.3f} {samples:8d}")


if __name__ == "__main__":
    main()
