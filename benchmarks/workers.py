"""Throughput of one run split over worker processes against the same run in one process.

Run: .venv/bin/python benchmarks/workers.py [--quick] [--repeats N]

1. CPU-bound sync agent (about 5 ms of pure Python per call) at concurrency 8:
   throughput with workers=2 / one process                                      [>= 1.7x]
2. the official openai client (async) against the local test server
   (pytest_agentperf.testing.OpenAIServer, run in a process of its own so that it
   serves both sides alike) at concurrency 32: workers=2 / one process           [>= 1.5x]

Each figure is the median of several alternating repeats. The load average, and the CPU cores
each side's processes got during the run, are printed beside them: on a shared machine other
processes take cores from both sides, and the ratio can only be as high as the cores allow.
The worker processes are started once (as in a pytest session) and their start is not
counted: only the measured run.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
from workers_agents import busy_agent, openai_agent

from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import run_load
from pytest_agentperf.settings import Settings, parse_settings
from pytest_agentperf.workers.controller import POOL, WorkerRun

SERVER = """
import sys, time
from pytest_agentperf.testing import OpenAIServer
with OpenAIServer(output_tokens=16) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()
"""


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def _throughput(
    fn: Any, inputs: Any, settings: Settings, workers: int, server: psutil.Process | None = None
) -> tuple[float, float, float]:
    """Calls per second of one run, the CPU cores its processes got (CPU time over the run's
    duration: on a shared machine it says how much of it the run had), and the cores the
    test server got (0 when there is none)."""
    served = _cpu(server)
    if workers == 1:
        cpu = time.process_time()
        raw = run_load(fn, inputs, settings)
        cores = (time.process_time() - cpu) / raw.duration
    else:
        run = WorkerRun(("popen",) * workers)
        raw = run.run(fn, inputs, settings)
        cores = sum(w.cpu_use for w in run.shards)
    server_cores = (_cpu(server) - served) / raw.duration
    result = build_result("bench", settings, raw)
    if result.errors:
        raise SystemExit(f"{result.errors} calls failed: {result.error_messages}")
    return result.throughput, cores, server_cores


def _case(
    label: str, run: Callable[[int], tuple[float, float, float]], repeats: int, target: float
) -> None:
    one: list[tuple[float, float, float]] = []
    two: list[tuple[float, float, float]] = []
    run(2)  # starts the worker processes once, and warms both sides
    for _ in range(repeats):
        one.append(run(1))
        two.append(run(2))
    a, b = (statistics.median(x[0] for x in side) for side in (one, two))
    ca, cb = (statistics.median(x[1] for x in side) for side in (one, two))
    sa, sb = (statistics.median(x[2] for x in side) for side in (one, two))
    served = f"  server cores {sa:.2f} / {sb:.2f}" if sa or sb else ""
    print(
        f"{label:44} {a:7.0f}/s ({ca:.2f}) {b:7.0f}/s ({cb:.2f}) {b / a:6.2f}x  "
        f"[target >= {target}x]  load {os.getloadavg()[0]:.1f}{served}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 5)
    scale = 0.25 if args.quick else 1.0
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}")
    print("throughput (CPU cores the run's processes got) per side")
    print(f"{'case':44} {'1 process':>16} {'workers=2':>16} {'ratio':>7}")

    busy = parse_settings({"requests": int(1600 * scale), "concurrency": 8, "warmup": 8})
    _case(
        "CPU-bound sync agent (5 ms), c=8",
        lambda n: _throughput(busy_agent, None, busy, n),
        repeats,
        1.7,
    )

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        agent = functools.partial(openai_agent, base_url=base_url)
        serving = psutil.Process(server.pid)
        calls = parse_settings({"requests": int(4000 * scale), "concurrency": 32, "warmup": 32})
        _case(
            "openai client (async) vs test server, c=32",
            lambda n: _throughput(agent, ["hi"], calls, n, serving),
            repeats,
            1.5,
        )
    finally:
        server.terminate()
        server.wait()
        POOL.close()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
