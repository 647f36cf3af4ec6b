"""Where a sync no-op call's time goes in the engine's per-call loop.

Run: .venv/bin/python benchmarks/sync_loop_profile.py [--repeats 15] [--calls 200000]

The engine's own per-call loop (``thread_exec._Pool._loop``, read from the installed source)
runs a no-op agent in the main thread, as is and with one part at a time replaced by what the
bare loop does (a ``range`` instead of the run's claims, no timeout hand-off, no check for
usage or tools); the bare loop times each call into a list. Variants are interleaved, repeat
after repeat, so a noisy minute hurts each alike; each line gives the best and the median
ns per call, and what leaving that part out saved against the whole loop (best against best).

This reaches into the engine's private loop on purpose: it is a measuring tool, not an API.
Each part is what a feature costs: the claims let the run stop (abort, cancel, ``requests``)
between any two calls, the hand-off lets a hung call time out without a lock per call, the
check credits each call with the usage and tools it recorded.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import textwrap
import time
from collections.abc import Callable
from typing import Any

import psutil

from pytest_agentperf.engine import thread_exec
from pytest_agentperf.engine.log import CallLog
from pytest_agentperf.engine.plan import Plan, RunState
from pytest_agentperf.engine.target import make_target
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.usage import CallScope

Loop = Callable[..., bool]


def _noop() -> None:
    return None


def _variant(source: str, calls: int, *edits: tuple[str, str]) -> Loop:
    """The loop's source with ``edits`` (old, new) applied, compiled in the module's globals."""
    for old, new in edits:
        if old not in source:
            raise SystemExit(f"the engine's loop changed; update this script: {old!r} not found")
        source = source.replace(old, new)
    scope: dict[str, Any] = {**vars(thread_exec), "CALLS": calls}
    exec(textwrap.dedent(source), scope)
    loop: Loop = scope["_loop"]
    return loop


def _variants(calls: int) -> dict[str, Loop]:
    source = inspect.getsource(thread_exec._Pool._loop)
    hand_back = """            if locked:
                with lock:
                    worker.start = None
            else:
                worker.start = None  # W, then R: see _Worker
            if worker.claim is not None and not self._reclaim(worker):
                return False  # abandoned: the monitor recorded this call as a timeout
"""
    return {
        "engine loop": _variant(source, calls),
        "without the claims": _variant(
            source,
            calls,
            ("indices: Iterable[int] = state.claims(worker.index)", "indices = range(CALLS)"),
        ),
        "without the timeout hand-off": _variant(
            source,
            calls,
            ("worker.start = start = perf()", "start = perf()"),
            (hand_back, ""),
        ),
        "without the usage check": _variant(
            source,
            calls,
            (
                "if value is None and plain and not (scope.records or scope.tools):",
                "if value is None and plain:",
            ),
        ),
    }


def _engine(loop: Loop, calls: int) -> float:
    plan = Plan.measured(make_target(_noop, None), parse_settings({"requests": calls}))
    state = RunState(plan)
    state.start()
    pool = thread_exec._Pool(plan, state, True)
    worker = thread_exec._Worker(CallLog())
    t0 = time.perf_counter()
    loop(pool, worker, None, CallScope())
    elapsed = time.perf_counter() - t0
    worker.flush()
    if len(worker.log) != calls:
        raise SystemExit(f"the loop recorded {len(worker.log)} calls, not {calls}")
    return elapsed / calls


def _bare(calls: int) -> float:
    perf = time.perf_counter
    lat: list[float] = []
    append = lat.append
    fn = _noop
    t0 = perf()
    for _ in range(calls):
        t = perf()
        fn()
        append(perf() - t)
    return (perf() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {psutil.cpu_count()} cores, Python "
        f"{platform.python_version()}, load avg {tuple(round(x, 2) for x in os.getloadavg())}"
    )
    loops = _variants(args.calls)
    times: dict[str, list[float]] = {name: [] for name in [*loops, "bare loop"]}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            times[name].append(_engine(loop, args.calls))
        times["bare loop"].append(_bare(args.calls))
    whole = min(times["engine loop"])
    for name, values in times.items():
        saved = "" if name == "engine loop" else f", saves {(whole - min(values)) * 1e9:+.0f} ns"
        print(
            f"{name:30s} best {min(values) * 1e9:5.0f} ns, median "
            f"{statistics.median(values) * 1e9:5.0f} ns{saved}"
        )
    print(f"load avg at the end {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
