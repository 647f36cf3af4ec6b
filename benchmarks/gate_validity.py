"""How often the regression gate fails unchanged code, and how often it catches a slowdown.

Simulates pairs of runs (baseline, current) of an agent with lognormal latencies on a machine
whose speed drifts from run to run, and puts each pair through the plugin's own code path: the
current run becomes a PerfResult, the baseline run is stored the way the baseline file stores it
(sorted, capped, rounded to microseconds) and ``baseline.comparison.compare`` decides.

Drift models (per run, one speed factor multiplies every latency of that run):
  uniform   factor uniform in [0.95, 1.05]: "the machine is up to 5 % slower or faster"
  gaussian  factor exp(N(0, 0.05)): 5 % is the standard deviation, so about 1 run in 20 is
            10 % off (a stress case: such a machine needs a larger tolerance)

Printed per drift model and n: false failures (REGRESSED on unchanged code), INCONCLUSIVE on
unchanged code, detection (REGRESSED) of +25 % and 2x slowdowns, and for contrast how often a
Mann-Whitney U test at p < 0.05 flags unchanged code (needs scipy).

    python benchmarks/gate_validity.py            # 1000 trials per cell, seed 20261127
    python benchmarks/gate_validity.py --trials 200 --sigma 0.8
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from pytest_agentperf.baseline import Environment, Machine, run_from_result
from pytest_agentperf.baseline.comparison import DEFAULT_TOLERANCE, Status, compare
from pytest_agentperf.results import LoadShape, PerfResult, Stats
from pytest_agentperf.stats import summarize

SLOWDOWNS = (1.0, 1.25, 2.0)
SIZES = (60, 200, 500)
_ENV = Environment(Machine(), None, "bench")


def _result(latencies: np.ndarray[Any, np.dtype[np.float64]]) -> PerfResult:
    n = int(latencies.size)
    shape = LoadShape(n, 1, None, "closed", None, 1, 30.0)
    return PerfResult(
        name="default",
        shape=shape,
        requests=n,
        errors=0,
        timeouts=0,
        error_rate=0.0,
        error_types={},
        error_messages=(),
        throughput=1.0,
        duration=float(latencies.sum()),
        latency=summarize(latencies),
        ttft=Stats(),
        itl=Stats(),
    )


def _drift(rng: np.random.Generator, model: str, size: float) -> float:
    if model == "uniform":
        return float(rng.uniform(1.0 - size, 1.0 + size))
    return float(np.exp(rng.normal(0.0, size)))


def run(trials: int, sigma: float, drift: float, tolerance: float, seed: int) -> None:
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:  # pragma: no cover - optional contrast column
        mannwhitneyu = None
    print(
        f"lognormal latencies (median 1 s, sigma {sigma}), drift {drift:.0%} per run, "
        f"tolerance {tolerance:.0%}, {trials} trials per cell, seed {seed}"
    )
    header = (
        f"{'drift':9} {'n':>4}  {'false fail':>10} {'inconcl.':>8}  {'+25% caught':>11} "
        f"{'2x caught':>9}  {'MWU flags':>9}"
    )
    for model in ("uniform", "gaussian"):
        print(header)
        for n in SIZES:
            rng = np.random.default_rng([seed, n, 0 if model == "uniform" else 1])
            counts: dict[float, dict[Status, int]] = {s: {} for s in SLOWDOWNS}
            mwu = 0
            for t in range(trials):
                for slow in SLOWDOWNS:
                    base = rng.lognormal(0.0, sigma, n) * _drift(rng, model, drift)
                    cur = rng.lognormal(0.0, sigma, n) * _drift(rng, model, drift) * slow
                    entry = run_from_result("t", _result(base), _ENV)
                    c = compare(_result(cur), entry, tolerance=tolerance, seed=t)
                    counts[slow][c.status] = counts[slow].get(c.status, 0) + 1
                    if slow == 1.0 and mannwhitneyu is not None:
                        mwu += mannwhitneyu(cur, base).pvalue < 0.05
            ff = counts[1.0].get(Status.REGRESSED, 0) / trials
            inc = counts[1.0].get(Status.INCONCLUSIVE, 0) / trials
            d25 = counts[1.25].get(Status.REGRESSED, 0) / trials
            d2 = counts[2.0].get(Status.REGRESSED, 0) / trials
            mw = f"{mwu / trials:9.1%}" if mannwhitneyu is not None else f"{'-':>9}"
            print(
                f"{model:9} {n:>4}  {ff:10.1%} {inc:8.1%}  {d25:11.1%} {d2:9.1%}  {mw}",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=1000)
    p.add_argument("--sigma", type=float, default=0.5, help="lognormal sigma of latencies")
    p.add_argument("--drift", type=float, default=0.05, help="per-run machine drift")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    p.add_argument("--seed", type=int, default=20261127)
    a = p.parse_args()
    start = time.perf_counter()
    run(a.trials, a.sigma, a.drift, a.tolerance, a.seed)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
