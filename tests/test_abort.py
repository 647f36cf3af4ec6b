"""Early abort: decision rules on fixed data and the monitor driven by a fake live view."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest

from pytest_agentperf.observers.abort import (
    CONFIDENCE,
    AbortMonitor,
    binom_sf,
    exceedances_needed,
    judge,
    wilson_lower,
)
from pytest_agentperf.settings import parse_settings

scipy_stats = pytest.importorskip("scipy.stats")


# statistics against scipy --------------------------------------------------------------------


@pytest.mark.parametrize(("k", "n"), [(0, 10), (1, 20), (5, 40), (57, 137), (300, 1000), (20, 20)])
@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_wilson_lower_matches_scipy(k: int, n: int, confidence: float) -> None:
    # A one-sided bound at c is the lower end of the two-sided interval at 2c - 1.
    ci = scipy_stats.binomtest(k, n).proportion_ci(2 * confidence - 1, method="wilson")
    assert wilson_lower(k, n, confidence) == pytest.approx(ci.low, abs=1e-12)


def test_binom_sf_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(500):
        n = int(rng.integers(1, 5000))
        p = float(rng.uniform(0.001, 0.999))
        k = int(rng.integers(-1, n + 2))
        assert binom_sf(k, n, p) == pytest.approx(scipy_stats.binom.sf(k - 1, n, p), abs=1e-10)


@pytest.mark.parametrize("n", [59, 100, 137, 500, 3000])
@pytest.mark.parametrize("q", [50.0, 90.0, 95.0, 99.0])
def test_exceedances_needed_is_the_smallest_significant_count(n: int, q: float) -> None:
    k = exceedances_needed(n, q, 0.99)
    p = 1 - q / 100
    if k is None:
        assert scipy_stats.binom.sf(n - 1, n, p) > 0.01
        return
    assert scipy_stats.binom.sf(k - 1, n, p) <= 0.01
    assert scipy_stats.binom.sf(k - 2, n, p) > 0.01


def percentile_lower_bound(
    samples: npt.ArrayLike, q: float, confidence: float = CONFIDENCE
) -> float | None:
    """The bound ``judge`` relies on: the k-th largest sample, k from ``exceedances_needed``
    (a percentile above a limit beyond doubt once k samples lie above it)."""
    x = np.asarray(samples, dtype=np.float64)
    k = exceedances_needed(int(x.size), q, confidence)
    if k is None:
        return None
    return float(np.partition(x, x.size - k)[x.size - k])


def test_percentile_lower_bound_covers_the_true_percentile() -> None:
    rng = np.random.default_rng(4)
    true_p95 = math.exp(1.6448536269514722)  # lognormal(0, 1)
    misses = sum(
        (percentile_lower_bound(rng.lognormal(0, 1, 200), 95, 0.95) or 0.0) > true_p95
        for _ in range(2000)
    )
    assert misses / 2000 <= 0.05 + 0.015


def test_percentile_lower_bound_none_when_sample_too_small() -> None:
    assert percentile_lower_bound([1.0, 2.0], 50, 0.99) is None  # 0.25 chance both are above
    assert percentile_lower_bound([1.0, 2.0], 99, 0.99) == 1.0  # two above a p99: proof


# judge on fixed data -------------------------------------------------------------------------


def _log(latency: list[float], status: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    end = np.arange(1, len(latency) + 1, dtype=np.float64)
    return end - np.asarray(latency), end, np.asarray(status, dtype=np.int8)


def test_error_rate_judged_by_wilson_bound() -> None:
    status = [1] * 57 + [0] * 80  # 41.6% of 137
    why = judge("error_rate", 0.05, *_log([0.1] * 137, status), confidence=0.95)
    assert why == "error rate 41.6% > budget 5% (95% lower bound 34.9%)"


def test_error_rate_not_judged_below_min_calls_or_within_doubt() -> None:
    assert judge("error_rate", 0.05, *_log([0.1] * 19, [1] * 19)) is None  # 19 < 20 calls
    # 3 errors in 20 (15%): above 5% as a point estimate, not beyond doubt at 99%.
    assert judge("error_rate", 0.05, *_log([0.1] * 20, [1] * 3 + [0] * 17)) is None
    assert judge("error_rate", 0.05, *_log([0.1] * 20, [1] * 5 + [0] * 15)) is not None


def test_timeout_rate_counts_timeouts_only() -> None:
    status = [1] * 50 + [0] * 50
    assert judge("timeout_rate", 0.05, *_log([0.1] * 100, status)) is None
    status = [2] * 30 + [0] * 70
    why = judge("timeout_rate", 0.05, *_log([0.1] * 100, status))
    assert why is not None and why.startswith("timeout rate 30% > budget 5%")


def test_p95_judged_by_order_statistic() -> None:
    n = 100
    k = exceedances_needed(n, 95)
    assert k is not None and 5 < k < 20
    slow = [0.1] * (n - k) + [2.0] * k
    why = judge("p95", 0.5, *_log(slow, [0] * n))
    assert why is not None
    assert why.startswith("p95 latency 2 s > budget 500 ms (99% lower bound 2 s;")
    assert why.endswith(f"{k} of {n} successful calls slower than 500 ms)")
    one_less = [0.1] * (n - k + 1) + [2.0] * (k - 1)
    assert judge("p95", 0.5, *_log(one_less, [0] * n)) is None


def test_percentile_needs_min_samples_even_when_all_are_slow() -> None:
    assert judge("p95", 0.5, *_log([2.0] * 58, [0] * 58)) is None  # p95 needs 59
    assert judge("p95", 0.5, *_log([2.0] * 59, [0] * 59)) is not None
    assert judge("p50", 0.5, *_log([2.0] * 19, [0] * 19)) is None  # and 20 calls in all
    assert judge("p50", 0.5, *_log([2.0] * 20, [0] * 20)) is not None


def test_latency_rules_use_successful_calls_only() -> None:
    lat = [9.0] * 100 + [0.1] * 100
    status = [1] * 100 + [0] * 100
    for name in ("p50", "p95", "max_latency", "mean_latency"):
        assert judge(name, 1.0, *_log(lat, status)) is None, name


def test_max_latency_is_certain_after_one_call() -> None:
    why = judge("max_latency", 1.0, *_log([1.5], [0]))
    assert why == "max latency 1.5 s > budget 1 s (a call already took longer)"


def test_mean_latency_lower_bound() -> None:
    rng = np.random.default_rng(9)
    lat = list(rng.normal(1.2, 0.2, 30))
    why = judge("mean_latency", 1.0, *_log(lat, [0] * 30))
    assert why is not None and "mean latency" in why and "99% lower bound" in why
    assert judge("mean_latency", 1.15, *_log(lat, [0] * 30)) is None
    assert judge("mean_latency", 1.0, *_log(lat[:29], [0] * 29)) is None  # needs 30


def test_budgets_without_an_early_rule_never_abort() -> None:
    log = _log([5.0] * 100, [1] * 100)
    for name in ("min_throughput", "cost_per_call", "tokens_per_call", "p95_drift", "ttft_p95"):
        assert judge(name, 0.001, *log) is None


# the monitor ---------------------------------------------------------------------------------


@dataclass
class _View:
    latency: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    copies: int = 0

    @property
    def done(self) -> int:
        return len(self.status)

    @property
    def errors(self) -> int:
        return sum(1 for s in self.status if s)

    def add(self, latency: float, status: int = 0) -> None:
        self.latency.append(latency)
        self.status.append(status)
        self.elapsed += 0.01

    def arrays(
        self,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int8]]:
        self.copies += 1
        s, e, st = _log(self.latency, self.status)
        return s, e, st


def _monitor(**settings: object) -> AbortMonitor:
    s = parse_settings(settings)
    return AbortMonitor(s.abort_on, s.budgets)


def test_agent_failing_half_way_is_stopped_early() -> None:
    mon = _monitor(error_rate="5%", abort_on=["error_rate"])
    view = _View()
    mon.on_start(0.0)
    reason = None
    planned = 1000
    for i in range(planned):
        view.add(0.1, 0 if i < 500 else 1)
        reason = mon.on_tick(view)
        if reason:
            break
    mon.on_stop()
    assert reason is not None
    assert view.done < 600  # ~400 of the 1000 calls saved
    assert reason.startswith(f"aborted after {view.done} calls: error rate ")
    assert "> budget 5% (99% lower bound " in reason
    assert mon.on_tick(view) == reason  # sticky


def test_healthy_agent_is_never_stopped() -> None:
    rng = np.random.default_rng(21)
    mon = _monitor(error_rate="5%", p95="1s", abort_on="any")
    view = _View()
    mon.on_start(0.0)
    for _ in range(3000):
        view.add(float(rng.lognormal(-1.5, 0.5)), int(rng.random() < 0.01))
        assert mon.on_tick(view) is None
    assert view.copies == mon.checks
    assert mon.checks < 100  # geometric schedule, not one copy per tick


def test_agent_slowing_down_trips_p95() -> None:
    mon = _monitor(p95="500ms", abort_on=["p95"])
    view = _View()
    reason = None
    for i in range(2000):
        view.add(0.1 if i < 200 else 2.0)
        reason = mon.on_tick(view)
        if reason:
            break
    assert reason is not None and "p95 latency" in reason
    assert view.done < 300


def test_max_latency_aborts_on_the_first_slow_call() -> None:
    mon = _monitor(max_latency="1s", abort_on=["max_latency"])
    view = _View()
    view.add(0.2)
    assert mon.on_tick(view) is None
    view.add(3.0)
    assert (
        mon.on_tick(view)
        == "aborted after 2 calls: max latency 3 s > budget 1 s (a call already took longer)"
    )


@dataclass
class _FakeMemory:
    growth_mb: float | None = None


def test_memory_budget_aborts_when_peak_growth_is_reached() -> None:
    s = parse_settings({"memory": "50MB", "abort_on": ["memory"]})
    mem = _FakeMemory()
    mon = AbortMonitor(s.abort_on, s.budgets, memory=mem)
    view = _View()
    view.add(0.1)
    mem.growth_mb = 49.0
    assert mon.on_tick(view) is None
    mem.growth_mb = 61.5
    assert (
        mon.on_tick(view)
        == "aborted after 1 call: peak RSS growth 61.5 MB > budget 50 MB (already reached)"
    )


def test_any_means_the_budgets_that_can_be_judged_early() -> None:
    mon = _monitor(min_throughput="10/s", error_rate="1%", abort_on="any")
    assert mon.names == ("error_rate",)
    assert mon.ignored == ()


def test_no_abort_on_means_no_checks() -> None:
    mon = _monitor(error_rate="1%")
    view = _View()
    for _ in range(100):
        view.add(0.1, 1)
        assert mon.on_tick(view) is None
    assert view.copies == 0


def test_default_confidence_is_documented_value() -> None:
    assert CONFIDENCE == 0.99


# end to end ----------------------------------------------------------------------------------

ABORT_TESTS = """
import asyncio, re, threading, time
import pytest

CALLS = {"n": 0}

def failing_half_way(x=None):
    CALLS["n"] += 1
    time.sleep(0.002)
    if CALLS["n"] > 40:
        raise RuntimeError("backend down")

@pytest.mark.agent_perf(requests=2000, error_rate="5%", abort_on=["error_rate"])
def test_stops_early(agentperf):
    agentperf.run(failing_half_way)

def test_result_says_why(agentperf):
    CALLS["n"] = 0
    r = agentperf.run(
        failing_half_way, requests=2000, error_rate="5%", abort_on="any", check=False
    )
    # the reason counts the calls judged when the abort fired; the call in flight then may
    # still finish and be recorded, so the result can hold one more (concurrency 1)
    judged = int(re.match(r"aborted after (\\d+) calls: error rate ", r.aborted).group(1))
    assert r.requests - 1 <= judged <= r.requests
    assert r.requests < 500 and CALLS["n"] < 500

STUCK = threading.Event()

def hangs_then_fails(x=None):
    CALLS["n"] += 1
    k = CALLS["n"]
    time.sleep(0.002)
    if k in (25, 26):
        STUCK.wait()  # in flight forever (30 s default timeout)
    if k > 20:
        raise RuntimeError("down")

@pytest.mark.agent_perf(requests=5000, concurrency=4, error_rate="5%", abort_on="any")
def test_sync_in_flight(agentperf):
    CALLS["n"] = 0
    try:
        agentperf.run(hangs_then_fails)
    finally:
        STUCK.set()

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=5000, concurrency=4, error_rate="5%", abort_on="any")
async def test_async_in_flight(agentperf):
    stuck = asyncio.Event()
    k = 0

    async def agent(x=None):
        nonlocal k
        k += 1
        mine = k
        await asyncio.sleep(0.002)
        if mine in (25, 26):
            await stuck.wait()
        if mine > 20:
            raise RuntimeError("down")

    await agentperf.arun(agent)
"""


def test_abort_on_stops_the_run_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_abort_e2e=ABORT_TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    began = time.perf_counter()
    result = pytester.runpytest("-p", "no:randomly")
    took = time.perf_counter() - began
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*BudgetExceeded: 1 budget exceeded in run 'default':",
            "*aborted after * calls: error rate * > budget 5% (99% lower bound *)",
            "*error rate * > budget 5% (n=*)",
            "*test_stops_early *ABORTED*",
            "*test_sync_in_flight *ABORTED*",
            "*test_async_in_flight *ABORTED*",
            "*test_result_says_why *ABORTED*",
        ]
    )
    assert took < 20.0  # no in-flight call (30 s timeout) held the runs up
