"""The regression gate: bootstrap ratio interval, Newcombe interval, and every status."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from conftest import make_result, make_shape

from pytest_agentperf.baseline import Environment, Machine, run_from_result
from pytest_agentperf.baseline.comparison import (
    ERROR_RATE_TOLERANCE,
    Comparison,
    Status,
    compare,
    format_change,
    shape_differences,
)
from pytest_agentperf.results import (
    Cost,
    PerCallUsage,
    PerfResult,
    Usage,
)
from pytest_agentperf.stats import (
    bootstrap_quantile,
    proportion_diff_ci,
    ratio_ci,
    wilson_interval,
)

SHAPE = make_shape(requests=200)
MACHINE = Machine(
    cpu="Test CPU", cores=2, os="Linux", arch="x86_64", python="3.11.7", implementation="CPython"
)
ENV = Environment(MACHINE, "0123456789abcdef0123456789abcdef01234567", "0.1.0")


def lognormal(n: int, seed: int, sigma: float = 0.5, scale: float = 0.1) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).lognormal(math.log(scale), sigma, n)


def result_of(
    samples: Any,
    *,
    errors: int = 0,
    tokens: float | None = None,
    cost: float | None = None,
    **kw: Any,
) -> PerfResult:
    """``make_result`` of shape ``SHAPE``, with ``errors`` ValueErrors and, when given, ``tokens``
    and ``cost`` per call (their totals over every request)."""
    fields: dict[str, Any] = {
        "shape": SHAPE,
        "errors": errors,
        "error_types": {"ValueError": errors} if errors else {},
    }
    result = make_result(samples, **{**fields, **kw})
    requests = result.requests
    usage = Usage(
        total_tokens=None if tokens is None else int(tokens * requests),
        calls_with_usage=0 if tokens is None else requests,
        per_call=PerCallUsage(total_tokens=tokens),
    )
    return replace(
        result,
        usage=usage,
        cost=Cost(per_call=cost, total=None if cost is None else cost * requests),
    )


def baseline_of(result: PerfResult, env: Environment = ENV) -> Any:
    return run_from_result("tests/test_x.py::test_agent", result, env)


# --------------------------------------------------------------------------- statistics


def _naive_bootstrap(x: np.ndarray[Any, Any], q: float, b: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(b, x.size))
    return np.quantile(x[idx], q, axis=1)


@pytest.mark.parametrize(("n", "q"), [(7, 0.5), (8, 0.5), (60, 0.95), (201, 0.95), (50, 0.99)])
def test_order_statistic_bootstrap_matches_resampling(n: int, q: float) -> None:
    """The O(B) sampler has the distribution of quantiles of real resamples (two-sample KS)."""
    x = np.sort(lognormal(n, seed=n))
    fast = np.sort(bootstrap_quantile(x, q, 40_000, np.random.default_rng(1)))
    slow = np.sort(_naive_bootstrap(x, q, 40_000, seed=2))
    grid = np.union1d(fast, slow)
    cdf_fast = np.searchsorted(fast, grid, side="right") / fast.size
    cdf_slow = np.searchsorted(slow, grid, side="right") / slow.size
    # Two-sample KS critical value at alpha = 0.001 for 40k + 40k draws is about 0.0138.
    assert np.max(np.abs(cdf_fast - cdf_slow)) < 0.0138
    spread = float(np.std(slow))
    assert abs(fast.mean() - slow.mean()) < 0.03 * spread + 1e-12
    assert abs(fast.std() - slow.std()) < 0.03 * spread + 1e-12


@pytest.mark.parametrize("n", [5, 31, 101])
def test_bootstrap_median_matches_the_exact_distribution(n: int) -> None:
    """Odd n: P(resample median <= x_(j)) = P(Binomial(n, j/n) >= (n+1)/2), exactly."""
    binom = pytest.importorskip("scipy.stats").binom
    x = np.sort(lognormal(n, seed=n))
    reps = bootstrap_quantile(x, 0.5, 100_000, np.random.default_rng(7))
    k = (n + 1) // 2
    for j in range(1, n + 1):
        exact = float(binom.sf(k - 1, n, j / n))
        observed = float(np.mean(reps <= x[j - 1]))
        assert abs(observed - exact) < 0.006, (j, observed, exact)


def test_bootstrap_quantile_values_come_from_the_data() -> None:
    x = np.sort(lognormal(31, seed=3))
    reps = bootstrap_quantile(x, 0.5, 1000, np.random.default_rng(0))  # n odd: no interpolation
    assert set(np.unique(reps)) <= set(x)
    assert (
        bootstrap_quantile(np.array([2.0]), 0.95, 5, np.random.default_rng(0)).tolist() == [2.0] * 5
    )


@pytest.mark.parametrize(
    ("n_cur", "n_base", "q"), [(60, 60, 0.5), (60, 80, 0.95), (500, 500, 0.95)]
)
def test_ratio_ci_agrees_with_scipy_percentile_bootstrap(n_cur: int, n_base: int, q: float) -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    cur = lognormal(n_cur, seed=11) * 1.2
    base = lognormal(n_base, seed=12)

    def statistic(a: Any, b: Any, axis: int = -1) -> Any:
        return np.quantile(a, q, axis=axis) / np.quantile(b, q, axis=axis)

    ref = scipy_stats.bootstrap(
        (cur, base),
        statistic,
        n_resamples=20_000,
        method="percentile",
        paired=False,
        vectorized=True,
        confidence_level=0.95,
        random_state=np.random.default_rng(5),
    ).confidence_interval
    est, low, high = ratio_ci(cur, base, q, resamples=20_000, seed=6)
    assert est == pytest.approx(np.quantile(cur, q) / np.quantile(base, q))
    width = ref.high - ref.low
    assert abs(low - ref.low) < 0.05 * width
    assert abs(high - ref.high) < 0.05 * width
    assert low < est < high


def test_ratio_ci_is_deterministic_and_seeded() -> None:
    cur, base = lognormal(100, 1), lognormal(100, 2)
    assert ratio_ci(cur, base, 0.95, seed=3) == ratio_ci(cur, base, 0.95, seed=3)
    assert ratio_ci(cur, base, 0.95, seed=3) != ratio_ci(cur, base, 0.95, seed=4)


def test_ratio_ci_identical_samples_is_centred_on_one() -> None:
    x = lognormal(300, 9)
    est, low, high = ratio_ci(x, x, 0.5)
    assert est == 1.0
    assert low < 1.0 < high
    assert math.isclose(math.log(low), -math.log(high), rel_tol=0.35)


def _wilson_reference(x: int, n: int, z: float) -> tuple[float, float]:
    """Wilson bounds as the roots of the score equation |p_hat - p| = z sqrt(p(1-p)/n)."""
    from scipy.optimize import brentq

    p_hat = x / n

    def score(p: float) -> float:
        return (p_hat - p) ** 2 - z * z * p * (1 - p) / n

    low = 0.0 if x == 0 else brentq(score, 1e-15, p_hat - 1e-12, xtol=1e-14)
    high = 1.0 if x == n else brentq(score, p_hat + 1e-12, 1 - 1e-15, xtol=1e-14)
    return low, high


@pytest.mark.parametrize(("x", "n"), [(0, 20), (1, 20), (3, 500), (56, 70), (10, 10), (250, 500)])
def test_wilson_matches_score_equation(x: int, n: int) -> None:
    pytest.importorskip("scipy")
    z = 1.959963984540054
    low, high = wilson_interval(x, n)
    ref_low, ref_high = _wilson_reference(x, n, z)
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_matches_published_values(
    x1: int, n1: int, x2: int, n2: int, low: float, high: float
) -> None:
    d, lo, hi = proportion_diff_ci(x1, n1, x2, n2)
    assert d == pytest.approx(x1 / n1 - x2 / n2)
    assert lo == pytest.approx(low, abs=6e-5)
    assert hi == pytest.approx(high, abs=6e-5)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"), [(3, 500, 0, 500), (0, 20, 1, 20), (40, 200, 7, 90)]
)
def test_newcombe_matches_reference_built_from_score_roots(
    x1: int, n1: int, x2: int, n2: int
) -> None:
    pytest.importorskip("scipy")
    z = 1.959963984540054
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = _wilson_reference(x1, n1, z)
    l2, u2 = _wilson_reference(x2, n2, z)
    ref_low = p1 - p2 - math.hypot(p1 - l1, u2 - p2)
    ref_high = p1 - p2 + math.hypot(u1 - p1, p2 - l2)
    _, low, high = proportion_diff_ci(x1, n1, x2, n2)
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)


# --------------------------------------------------------------------------- statuses


def test_new_without_baseline() -> None:
    c = compare(result_of(lognormal(50, 1)), None)
    assert c.status is Status.NEW
    assert not c.regressed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"requests": 100}, "requests"),
        ({"concurrency": 4}, "concurrency"),
        ({"rate": 5.0, "arrival": "poisson"}, "rate"),
        ({"duration": 10.0}, "duration"),
        ({"stages": ((10.0, 50.0),)}, "stages"),
    ],
)
def test_changed_load_shape_is_not_comparable(change: dict[str, Any], field: str) -> None:
    base = baseline_of(result_of(lognormal(200, 1)))
    cur = result_of(lognormal(200, 1) * 3, shape=replace(SHAPE, **change))
    c = compare(cur, base)
    assert c.status is Status.NOT_COMPARABLE
    assert not c.regressed
    assert field in c.messages[0]
    assert c.get("p95") is None


def test_a_changed_stage_list_is_named_with_both_lists() -> None:
    before = replace(SHAPE, stages=((10.0, 50.0), (30.0, 100.0)))
    after = replace(SHAPE, stages=((10.0, 50.0), (30.0, 200.0)))
    assert shape_differences(before, after) == (
        "stages [10s to 50, 30s to 100] -> [10s to 50, 30s to 200]",
    )
    assert shape_differences(before, SHAPE) == ("stages [10s to 50, 30s to 100] -> none",)
    assert shape_differences(before, replace(before)) == ()


def test_warmup_and_timeout_do_not_change_the_shape() -> None:
    assert shape_differences(SHAPE, replace(SHAPE, warmup=5, timeout=1.0)) == ()


def test_unchanged() -> None:
    samples = lognormal(300, 1)
    base = baseline_of(result_of(samples))
    jitter = np.random.default_rng(2).uniform(0.97, 1.03, samples.size)
    c = compare(result_of(samples * jitter), base)
    assert c.status is Status.UNCHANGED
    assert c.get("p50") is not None and c.get("p95") is not None
    assert c.get("p50").low is not None and c.get("p50").high is not None
    assert c.get("p50").low < 1.0 < c.get("p50").high


def test_regressed_latency_message_has_baseline_now_and_interval() -> None:
    base = baseline_of(result_of(lognormal(300, 1)))
    c = compare(result_of(lognormal(300, 2) * 2.0), base)
    assert c.status is Status.REGRESSED
    assert c.regressed
    assert c.get("p50") is not None and c.get("p50").status is Status.REGRESSED
    assert c.get("p50").low is not None and c.get("p50").low > 1.1
    msg = c.failure_message("default")
    assert "run 'default' regressed" in msg
    assert "p50 latency" in msg and "->" in msg and "95% CI" in msg
    assert "commit 0123456789" in msg
    assert "--agentperf-baseline" in msg


def test_inconclusive_when_only_the_point_estimate_exceeds() -> None:
    base_samples = lognormal(20, 4, sigma=0.6)
    base = baseline_of(result_of(base_samples))
    c = compare(result_of(base_samples * 1.2), base)
    assert c.get("p50") is not None
    assert c.get("p50").change == pytest.approx(1.2, rel=1e-4)
    assert c.get("p50").low is not None and c.get("p50").low < 1.1
    assert c.status is Status.INCONCLUSIVE
    assert not c.regressed


def test_improved_is_symmetric_on_a_log_scale() -> None:
    base = baseline_of(result_of(lognormal(300, 1)))
    c = compare(result_of(lognormal(300, 2) * 0.5), base)
    assert c.status is Status.IMPROVED
    c = compare(result_of(lognormal(300, 1) * 0.92), base)  # 1/1.1 = 0.909: not improved
    assert c.status is Status.UNCHANGED


def test_tolerance_changes_the_verdict() -> None:
    base = baseline_of(result_of(lognormal(500, 1)))
    cur = result_of(lognormal(500, 1) * 1.5)
    assert compare(cur, base, tolerance=0.1).status is Status.REGRESSED
    assert compare(cur, base, tolerance=1.0).status is Status.UNCHANGED


def test_error_rate_regressed_inconclusive_improved() -> None:
    samples = lognormal(500, 1)
    base = baseline_of(result_of(samples, requests=500, errors=0))
    c = compare(result_of(samples[:450], requests=500, errors=50), base)
    assert c.get("error_rate") is not None and c.get("error_rate").status is Status.REGRESSED
    assert c.status is Status.REGRESSED
    assert "error rate 0% -> 10%" in c.failure_message("default")

    small = lognormal(20, 2)
    base = baseline_of(result_of(small, requests=20, errors=0))
    c = compare(result_of(small[:19], requests=20, errors=1), base)
    assert c.get("error_rate") is not None and c.get("error_rate").status is Status.INCONCLUSIVE

    base = baseline_of(result_of(samples[:400], requests=500, errors=100))
    c = compare(result_of(samples[:400], requests=500, errors=0), base)
    assert c.get("error_rate") is not None and c.get("error_rate").status is Status.IMPROVED


def test_error_rate_within_absolute_tolerance_is_unchanged() -> None:
    samples = lognormal(2000, 1)
    base = baseline_of(result_of(samples, requests=2000, errors=20))
    c = compare(result_of(samples, requests=2000, errors=30), base)
    assert c.get("error_rate") is not None
    assert c.get("error_rate").change == pytest.approx(0.005)
    assert c.get("error_rate").change < ERROR_RATE_TOLERANCE
    assert c.get("error_rate").status is Status.UNCHANGED


def test_tokens_and_cost_against_tolerance() -> None:
    samples = lognormal(100, 1)
    base = baseline_of(result_of(samples, tokens=100.0, cost=0.001))
    c = compare(result_of(samples, tokens=125.0, cost=0.001), base)
    assert c.get("tokens") is not None and c.get("tokens").status is Status.REGRESSED
    assert c.status is Status.REGRESSED
    assert "tokens per call 100 -> 125" in c.failure_message("default")
    c = compare(result_of(samples, tokens=105.0, cost=0.0005), base)
    assert c.get("tokens") is not None and c.get("tokens").status is Status.UNCHANGED
    assert c.get("cost") is not None and c.get("cost").status is Status.IMPROVED
    assert c.status is Status.IMPROVED


def test_usage_known_on_one_side_is_flagged_not_gated() -> None:
    samples = lognormal(100, 1)
    base = baseline_of(result_of(samples, tokens=100.0))
    c = compare(result_of(samples), base)
    assert c.get("tokens") is None
    assert any("tokens not compared" in f.text for f in c.flags)
    assert c.status is Status.UNCHANGED


def test_other_machine_is_flagged_not_gated() -> None:
    base = baseline_of(result_of(lognormal(300, 1)))
    other = replace(MACHINE, cpu="Other CPU", cores=8, python="3.12.1")
    c = compare(result_of(lognormal(300, 1)), base, machine=other)
    assert c.status is Status.UNCHANGED
    assert len(c.flags) == 1
    assert "another machine" in c.flags[0].text
    assert (
        "cores 2 -> 8" in c.flags[0].text
        and "Python CPython 3.11 -> CPython 3.12" in c.flags[0].text
    )
    assert compare(result_of(lognormal(300, 1)), base, machine=MACHINE).flags == ()
    patch_release = replace(MACHINE, python="3.11.9", platform="Linux-6.1")
    assert compare(result_of(lognormal(300, 1)), base, machine=patch_release).flags == ()


def test_small_sample_is_flagged() -> None:
    base = baseline_of(result_of(lognormal(20, 1), shape=replace(SHAPE, requests=20)))
    c = compare(result_of(lognormal(20, 2), shape=replace(SHAPE, requests=20)), base)
    assert any("p95 compared on 20 samples" in f.text for f in c.flags)


def test_no_successful_calls_now() -> None:
    base = baseline_of(result_of(lognormal(200, 1)))
    c = compare(result_of([], requests=200, errors=200), base)
    assert c.get("p50") is None and c.get("p95") is None
    assert c.status is Status.REGRESSED  # the error rate went from 0 % to 100 %
    assert any("latency not compared" in m for m in c.messages)


def test_zero_latencies_do_not_divide_by_zero() -> None:
    base = baseline_of(result_of(np.zeros(50)))
    c = compare(result_of(np.zeros(50)), base)
    assert c.status is Status.UNCHANGED
    assert c.get("p50") is not None and c.get("p50").change == 1.0


def test_large_runs_are_compared_against_a_capped_baseline() -> None:
    full = lognormal(50_000, 1)
    base = baseline_of(result_of(full, shape=replace(SHAPE, requests=50_000)))
    assert base.latency.samples.size == 2000
    c = compare(result_of(lognormal(50_000, 2), shape=replace(SHAPE, requests=50_000)), base)
    assert c.status is Status.UNCHANGED
    assert c.get("p95") is not None and c.get("p95").change == pytest.approx(1.0, abs=0.03)


def test_comparison_serialises_inside_the_result() -> None:
    base = baseline_of(result_of(lognormal(300, 1)))
    cur = result_of(lognormal(300, 2) * 2.0)
    c = compare(cur, base)
    assert isinstance(c, Comparison)
    d = replace(cur, comparison=c).to_dict(samples=False)
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)["comparison"]
    assert back["status"] == "REGRESSED"
    assert back["metrics"]["p95"]["low"] > 1.1
    assert back["metrics"]["p50"]["kind"] == "ratio"
    assert back["metrics"]["p50"]["text"] == c.metrics["p50"].text
    assert replace(cur, comparison=c) == PerfResult.from_dict(d)


def test_format_change() -> None:
    base = baseline_of(result_of(lognormal(300, 1)))
    c = compare(result_of(lognormal(300, 1) * 1.5), base)
    assert format_change(c.get("p50")) == "+50%"
    assert format_change(c.get("p50"), interval=True).startswith("+50% [+")
    assert format_change(None) == "-"
    c = compare(result_of(lognormal(300, 1) * 2.5), base)
    assert format_change(c.get("p50")) == "x2.5"


def test_microsecond_agents_compare_at_the_baseline_resolution() -> None:
    """The stored baseline is rounded to µs; the current run must be too, or 1.4 µs vs 1 µs
    reads as a 40 % slowdown of unchanged code."""
    rng = np.random.default_rng(5)
    base = result_of(rng.uniform(1.0e-6, 1.49e-6, 300))
    now = result_of(rng.uniform(1.0e-6, 1.49e-6, 300))
    comp = compare(now, baseline_of(base), tolerance=0.10, machine=ENV.machine)
    assert comp.status is not Status.REGRESSED
    assert comp.status is not Status.INCONCLUSIVE
