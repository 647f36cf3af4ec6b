"""How often the history gate (``--agentperf-compare=history``) flags unchanged code, and how
often it catches a +25 % step.

Simulates, per trial, 21 sessions of one test on one machine: each session runs ``n`` calls
with lognormal latencies (median 1 s), on a machine whose speed drifts from session to session
(one factor per session multiplies every latency: ``exp(N(0, drift))``), with a 1 % error
rate and about 500 tokens per call. The first 20 sessions become the history (through the
plugin's own code: ``history.store.run_from_result``); the 21st is judged by
``history.gate.compare_with_history``, once unchanged and once with every latency 25 % longer.

Printed per drift: INCONCLUSIVE and REGRESSED on unchanged code (the issue asks for < 5 %
INCONCLUSIVE), and REGRESSED (caught) on the +25 % step (asks for >= 90 %).

    python benchmarks/history_gate.py              # 200 trials, seed 20261201
    python benchmarks/history_gate.py --trials 1000 --n 500
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from pytest_agentperf.baseline.comparison import DEFAULT_TOLERANCE, Status
from pytest_agentperf.baseline.environment import Machine
from pytest_agentperf.history.gate import DEFAULT_SESSIONS, compare_with_history
from pytest_agentperf.history.store import new_session, run_from_result
from pytest_agentperf.results import LoadShape, PerCallUsage, PerfResult, Stats, Usage
from pytest_agentperf.stats import summarize

DRIFTS = (0.0, 0.02, 0.03, 0.05)
"""Standard deviations of the per-session machine speed factor (log scale)."""
STEP = 1.25
_START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _result(rng: np.random.Generator, n: int, factor: float, sigma: float) -> PerfResult:
    latencies = np.exp(rng.normal(0.0, sigma, n)) * factor
    errors = int(rng.binomial(n, 0.01))
    tokens = float(rng.normal(500.0, 5.0))
    return PerfResult(
        name="default",
        shape=LoadShape(n, 1, None, "closed", None, 1, 30.0),
        requests=n,
        errors=errors,
        timeouts=0,
        error_rate=errors / n,
        error_types={},
        error_messages=(),
        throughput=1.0,
        duration=float(latencies.sum()),
        latency=summarize(latencies[: n - errors]),
        ttft=Stats(),
        itl=Stats(),
        usage=Usage(total_tokens=int(tokens * n), per_call=PerCallUsage(total_tokens=tokens)),
    )


def trial(rng: np.random.Generator, n: int, sigma: float, drift: float) -> tuple[Status, Status]:
    """One history of ``DEFAULT_SESSIONS`` sessions, then the verdicts of an unchanged run and
    of a run 25 % slower (each with its own noise)."""
    past: list[Any] = []
    for i in range(DEFAULT_SESSIONS):
        result = _result(rng, n, float(np.exp(rng.normal(0.0, drift))), sigma)
        run = run_from_result("test_agent", result, "PASS")
        session = new_session(
            [run],
            machine=Machine(),
            commit=None,
            plugin_version="bench",
            created=_START + timedelta(hours=i),
        )
        past.append((session, run))
    verdicts = []
    for step in (1.0, STEP):
        current = _result(rng, n, float(np.exp(rng.normal(0.0, drift))) * step, sigma)
        verdicts.append(compare_with_history(current, past, tolerance=DEFAULT_TOLERANCE).status)
    return verdicts[0], verdicts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--n", type=int, default=200, help="calls per session")
    parser.add_argument("--sigma", type=float, default=0.5, help="lognormal sigma of latency")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args()
    print(
        f"history gate: {DEFAULT_SESSIONS} past sessions, {args.n} calls each, lognormal "
        f"latencies (sigma {args.sigma}), tolerance floor {DEFAULT_TOLERANCE:.0%}, "
        f"{args.trials} trials per cell, seed {args.seed}"
    )
    print(
        f"{'drift':>6}  {'unchanged: inconclusive':>23} {'regressed':>9}  "
        f"{'+25%: caught':>12} {'flagged':>7}"
    )
    started = time.perf_counter()
    for drift in DRIFTS:
        rng = np.random.default_rng([args.seed, int(drift * 1000)])
        pairs = [trial(rng, args.n, args.sigma, drift) for _ in range(args.trials)]
        same, slow = [p[0] for p in pairs], [p[1] for p in pairs]
        inconclusive = sum(s is Status.INCONCLUSIVE for s in same) / args.trials
        false_fail = sum(s is Status.REGRESSED for s in same) / args.trials
        caught = sum(s is Status.REGRESSED for s in slow) / args.trials
        flagged = sum(s in (Status.REGRESSED, Status.INCONCLUSIVE) for s in slow) / args.trials
        print(
            f"{drift:>6.0%}  {inconclusive:>23.1%} {false_fail:>9.1%}  {caught:>12.1%} "
            f"{flagged:>7.1%}"
        )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
