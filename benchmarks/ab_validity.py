"""Is an A/B comparison in one run valid on a drifting machine? Real runs, real noise.

Two spinner processes burn CPU while a switch is on; a thread flips the switch at random
(exponential on and off times, mean ``--switch`` seconds), so the machine's speed drifts during
every comparison. The agent is CPU work (a pure-Python loop of about ``--work-ms``), so its
latency follows the drift. Each trial compares arm B with arm A, at ``--calls`` calls per arm,
closed loop, one call in flight:

  interleaved  ``agentperf.compare``'s own path (randomized blocks, paired bootstrap over
               blocks, 99 % interval): the verdicts of the p50, p95 and mean-latency ratios
  sequential   run A, then run B, then the same statistic without pairing: the ratio of the
               two runs' p50 with a bootstrap interval of each run (``stats.ratio_ci``, the
               baseline gate's method), 99 %, the same verdict rule

for A/A (B is A) and for B 20 % slower (1.2x the work). Printed: how often each method says
"worse" and "better"; an A/A "worse" or "better" is a false difference.

    python benchmarks/ab_validity.py            # 100 trials per cell (about 3 minutes here)
    python benchmarks/ab_validity.py --quick    # 15 trials per cell (under a minute here)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from pytest_agentperf.ab import plan_compare
from pytest_agentperf.ab.paired import CONFIDENCE, verdict
from pytest_agentperf.ab.result import summaries
from pytest_agentperf.engine import run_load
from pytest_agentperf.engine.log import OK
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.stats import ratio_ci

SLOWER = 1.2


def _spin(on: Any, stop: Any) -> None:
    """Burn one core while ``on`` is set."""
    while not stop.is_set():
        if on.wait(0.05):
            t = time.perf_counter()
            while on.is_set() and time.perf_counter() - t < 0.05:
                pass


def _switch(on: Any, stop: threading.Event, mean: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        on.set()
        stop.wait(float(rng.exponential(mean)))
        on.clear()
        stop.wait(float(rng.exponential(mean)))


def _calibrate(ms: float) -> int:
    """Loop iterations that take about ``ms`` of CPU on this machine, unloaded."""
    n = 100_000
    t = time.perf_counter()
    for _ in range(n):
        pass
    per = (time.perf_counter() - t) / n
    return max(1000, int(ms / 1000 / per))


def _agent(iterations: int) -> Callable[[], None]:
    def agent() -> None:
        for _ in range(iterations):
            pass

    return agent


def interleaved(a: Any, b: Any, calls: int, seed: int) -> tuple[str, str, str]:
    """The p50, p95 and mean-latency verdicts of ``agentperf.compare``'s path for B
    against A."""
    settings = {"requests": calls, "warmup": 5, "seed": seed}
    plan = plan_compare({"A": a, "B": b}, None, settings, lambda rest: parse_settings(rest))
    raw = plan.run()
    figures = {name: c for name, _, c in plan.split(raw, detail=0, prices=None)}
    arm = summaries("bench", "A", seed, plan.blocks, figures)["B"]
    p50, p95, mean = arm.ratio("p50"), arm.ratio("p95"), arm.ratio("mean_latency")
    assert p50 is not None and p95 is not None and mean is not None
    return p50.verdict, p95.verdict, mean.verdict


def sequential(a: Any, b: Any, calls: int, seed: int) -> str:
    """Run A, then B; the verdict of the unpaired bootstrap ratio of their p50."""
    settings = replace(parse_settings({"requests": calls, "warmup": 5}), seed=seed)
    latencies = []
    for agent in (a, b):
        log = run_load(agent, None, settings).log
        latencies.append(log.latency[log.status == OK])
    _, low, high = ratio_ci(latencies[1], latencies[0], 0.5, confidence=CONFIDENCE, seed=seed)
    return verdict(low, high)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _share(counter: Counter[str], word: str, trials: int) -> str:
    return f"{counter[word]}/{trials} ({counter[word] / trials:.0%})"


def run(trials: int, calls: int, work_ms: float, switch: float, seed: int) -> None:
    iterations = _calibrate(work_ms)
    a = _agent(iterations)
    slow = _agent(int(iterations * SLOWER))
    load = os.getloadavg()
    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average at start "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (the machine is shared)"
    )
    print(
        f"noise: 2 spinner processes switched on and off at random (mean {switch:g} s each "
        f"way); agent: ~{work_ms:g} ms of CPU per call; {calls} calls per arm, "
        f"{trials} trials per cell, seed {seed}, {CONFIDENCE:.0%} intervals",
        flush=True,
    )
    ctx = mp.get_context("spawn")
    on, stop = ctx.Event(), ctx.Event()
    spinners = [ctx.Process(target=_spin, args=(on, stop), daemon=True) for _ in range(2)]
    for p in spinners:
        p.start()
    halt = threading.Event()
    switcher = threading.Thread(target=_switch, args=(on, halt, switch, seed), daemon=True)
    switcher.start()
    results: dict[str, Counter[str]] = {}
    try:
        for label, b in (("A/A", a), (f"B {SLOWER - 1:.0%} slower", slow)):
            p50s: Counter[str] = Counter()
            p95s: Counter[str] = Counter()
            means: Counter[str] = Counter()
            seqs: Counter[str] = Counter()
            for t in range(trials):
                v50, v95, vmean = interleaved(a, b, calls, seed + t)
                p50s[v50] += 1
                p95s[v95] += 1
                means[vmean] += 1
                seqs[sequential(a, b, calls, seed + t)] += 1
            results[f"{label}|interleaved p50"] = p50s
            results[f"{label}|interleaved p95"] = p95s
            results[f"{label}|interleaved mean latency"] = means
            results[f"{label}|sequential p50"] = seqs
            print(f"  {label}: done", flush=True)
    finally:
        halt.set()
        stop.set()
        on.set()  # wake the spinners so they see stop
        for p in spinners:
            p.join(timeout=2)
    print()
    print('| arms | method | "worse" | "better" |')
    print("| :-- | :-- | --: | --: |")
    for key, counter in results.items():
        label, method = key.split("|")
        print(
            f"| {label} | {method} | {_share(counter, 'worse', trials)} | "
            f"{_share(counter, 'better', trials)} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="15 trials per cell")
    p.add_argument("--calls", type=int, default=300, help="calls per arm")
    p.add_argument("--work-ms", type=float, default=1.0, help="CPU work per call (ms)")
    p.add_argument("--switch", type=float, default=0.5, help="mean on / off time of the noise")
    p.add_argument("--seed", type=int, default=20261201)
    a = p.parse_args()
    start = time.perf_counter()
    run(15 if a.quick else a.trials, a.calls, a.work_ms, a.switch, a.seed)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
