"""The block bootstrap: block length from the data, and intervals that keep their coverage
when calls are correlated (seeded simulations, so the figures are fixed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pytest_agentperf.stats import (
    block_bootstrap_quantile,
    block_length,
    bootstrap_quantile,
    calls_in_flight,
    ratio_ci,
)

Array = np.ndarray[Any, Any]
TRIALS, N, RESAMPLES = 200, 300, 250


def _iid(rng: np.random.Generator) -> Array:
    return rng.lognormal(0.0, 0.4, (2, TRIALS, N))


def _waves(width: int) -> Callable[[np.random.Generator], Array]:
    """Calls in waves of ``width`` that share one delay (the machine stalled them together)."""

    def make(rng: np.random.Generator) -> Array:
        waves = -(-N // width)
        shared = np.repeat(rng.lognormal(0.0, 0.3, (2, TRIALS, waves)), width, axis=2)[..., :N]
        return np.asarray(shared * rng.lognormal(0.0, 0.2, (2, TRIALS, N)))

    return make


def _ar1(rng: np.random.Generator, phi: float = 0.7) -> Array:
    e = rng.normal(0.0, 1.0, (2, TRIALS, N + 100))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    for i in range(1, x.shape[-1]):
        x[..., i] = phi * x[..., i - 1] + e[..., i]
    return np.exp(0.3 * x[..., 100:])


def _coverage(
    data: Array, q: float, *, floor: int = 1, ordered: bool = True
) -> tuple[float, float]:
    """Share of the ratio intervals (two runs of the same process) that hold the truth, 1,
    and their mean width on the log scale."""
    covered, widths = 0, []
    for i in range(TRIALS):
        _, low, high = ratio_ci(
            data[0, i],
            data[1, i],
            q,
            resamples=RESAMPLES,
            seed=i,
            current_in_order=ordered,
            baseline_in_order=ordered,
            current_min_block=floor,
            baseline_min_block=floor,
        )
        covered += low <= 1.0 <= high
        widths.append(np.log(high / low))
    return covered / TRIALS, float(np.mean(widths))


@pytest.mark.parametrize(
    ("make", "q", "floor"),
    [(_waves(20), 0.5, 20), (_waves(10), 0.95, 10), (_ar1, 0.5, 1)],
    ids=["waves-of-20-p50", "waves-of-10-p95", "ar1-p50"],
)
def test_correlated_calls_keep_their_coverage_where_resampling_calls_loses_it(
    make: Callable[[np.random.Generator], Array], q: float, floor: int
) -> None:
    data = make(np.random.default_rng(20261130))
    block, _ = _coverage(data, q, floor=floor)
    independent, _ = _coverage(data, q, ordered=False)
    assert 0.85 <= block <= 0.99
    assert independent < 0.80  # the old interval: far too sure of itself


def test_independent_calls_keep_coverage_and_width() -> None:
    data = _iid(np.random.default_rng(7))
    for q in (0.5, 0.95):
        block, width = _coverage(data, q)
        _, plain_width = _coverage(data, q, ordered=False)
        assert 0.90 <= block <= 0.99
        assert width == pytest.approx(plain_width, rel=0.05)  # not wider than it was


def test_block_length_is_one_for_independent_calls_and_long_for_waves() -> None:
    rng = np.random.default_rng(3)
    iid = rng.lognormal(0.0, 0.5, 1000)
    assert block_length(iid) == 1
    assert block_length(iid, 0.5) == 1
    waves = np.repeat(rng.lognormal(0.0, 0.5, 50), 20) * rng.lognormal(0.0, 0.1, 1000)
    assert block_length(waves) >= 10
    assert block_length(waves, 0.95) >= 5
    assert block_length(np.ones(100)) == 1  # constant: nothing to resample
    assert block_length(np.arange(5.0)) == 1  # too short to estimate
    assert block_length(np.arange(1000.0)) <= int(np.ceil(3 * np.sqrt(1000)))  # capped


def test_block_bootstrap_of_blocks_of_one_is_the_plain_bootstrap() -> None:
    x = np.random.default_rng(5).lognormal(0.0, 0.5, 301)
    a = block_bootstrap_quantile(x, 0.95, 500, 1, np.random.default_rng(9))
    b = bootstrap_quantile(np.sort(x), 0.95, 500, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


def test_block_bootstrap_matches_resampling_blocks_by_hand() -> None:
    rng = np.random.default_rng(11)
    x = rng.lognormal(0.0, 0.5, 200)
    fast = block_bootstrap_quantile(x, 0.9, 4000, 8, np.random.default_rng(1))
    slow = []
    for _ in range(4000):
        starts = rng.integers(0, x.size, 25)
        idx = ((starts[:, None] + np.arange(8)) % x.size).ravel()[: x.size]
        slow.append(np.quantile(x[idx], 0.9))
    for p in (0.05, 0.5, 0.95):
        assert np.quantile(fast, p) == pytest.approx(np.quantile(slow, p), rel=0.02)


def test_calls_in_flight_follows_littles_law() -> None:
    assert calls_in_flight(throughput=200.0, mean_latency=0.05, n=1000, kept=1000) == 10
    assert calls_in_flight(throughput=200.0, mean_latency=0.05, n=10_000, kept=2000) == 2
    assert calls_in_flight(throughput=50.0, mean_latency=0.01, n=100, kept=100) == 1
    assert calls_in_flight(throughput=50.0, mean_latency=None, n=100, kept=100) == 1
