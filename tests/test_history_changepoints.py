"""Change points of a run history: E-Divisive means with a Student t-test (seeded data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.history.changepoints import (
    DEFAULT_P,
    candidate,
    change_points,
    t_test,
)
from pytest_agentperf.history.series import Detection, completed_by_last
from pytest_agentperf.history.tdist import incomplete_beta, t_quantile, t_sf, t_two_sided


def noisy(rng: np.random.Generator, *levels: tuple[int, float], cv: float = 0.05) -> np.ndarray:
    """Sessions at each (count, level), each value with ``cv`` relative noise."""
    return np.concatenate([rng.normal(level, cv * level, count) for count, level in levels])


# ----------------------------------------------------------------------------- Student's t


def test_t_tail_matches_closed_forms_for_one_and_two_degrees_of_freedom() -> None:
    for t in (-3.0, -0.5, 0.0, 0.7, 2.0, 12.0):
        assert t_sf(t, 1) == pytest.approx(0.5 - math.atan(t) / math.pi, abs=1e-12)
        assert t_sf(t, 2) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_t_quantiles_match_published_tables() -> None:
    assert t_quantile(0.975, 19) == pytest.approx(2.093024, abs=1e-6)
    assert t_quantile(0.99, 10) == pytest.approx(2.763769, abs=1e-6)
    assert t_quantile(0.995, 4) == pytest.approx(4.604095, abs=1e-6)
    assert t_quantile(0.025, 19) == pytest.approx(-2.093024, abs=1e-6)
    assert t_two_sided(2.093024, 19) == pytest.approx(0.05, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    p=st.floats(0.01, 0.99),
    df=st.integers(1, 200),
)
def test_t_quantile_inverts_the_tail(p: float, df: int) -> None:
    assert 1.0 - t_sf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-8)


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0.2, 50), b=st.floats(0.2, 50), x=st.floats(1e-6, 1 - 1e-6))
def test_incomplete_beta_is_symmetric_and_bounded(a: float, b: float, x: float) -> None:
    value = incomplete_beta(a, b, x)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert value + incomplete_beta(b, a, 1.0 - x) == pytest.approx(1.0, abs=1e-9)


def test_t_test_of_identical_or_noiseless_sides() -> None:
    flat = np.ones(5)
    assert t_test(flat, flat) == 1.0
    assert t_test(flat, flat * 2) == 0.0
    assert t_test(np.array([1.0]), np.array([2.0])) == 1.0  # no degree of freedom


# ----------------------------------------------------------------------------- E-Divisive


def brute_force_q(values: np.ndarray, tau: int, kappa: int) -> float:
    """Matteson & James' statistic written out from its definition (alpha = 1)."""
    x, y = values[:tau], values[tau:kappa]
    n, m = len(x), len(y)
    between = sum(abs(a - b) for a in x for b in y) * 2 / (n * m)
    within_x = sum(abs(x[i] - x[j]) for i in range(n) for j in range(i + 1, n))
    within_y = sum(abs(y[i] - y[j]) for i in range(m) for j in range(i + 1, m))
    within_x = 2 * within_x / (n * (n - 1)) if n > 1 else 0.0
    within_y = 2 * within_y / (m * (m - 1)) if m > 1 else 0.0
    return m * n / (m + n) * (between - within_x - within_y)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-100, 100, allow_nan=False), min_size=6, max_size=14),
    min_size=st.integers(1, 3),
)
def test_the_candidate_maximises_the_statistic_of_its_definition(
    values: list[float], min_size: int
) -> None:
    arr = np.asarray(values)
    found = candidate(arr, min_size)
    assert found is not None
    tau, q = found
    n = len(values)
    best = max(
        brute_force_q(arr, t, k)
        for t in range(min_size, n - min_size + 1)
        for k in range(t + min_size, n + 1)
    )
    assert q == pytest.approx(best, rel=1e-9, abs=1e-9)
    assert min_size <= tau <= n - min_size


def test_finds_one_30_percent_step_after_20_of_40_noisy_sessions_at_its_place() -> None:
    exact = 0
    for seed in range(100):
        values = noisy(np.random.default_rng(seed), (20, 1.0), (20, 1.3))
        found = change_points(values)
        assert any(abs(c.index - 20) <= 1 for c in found), (seed, found)  # never missed
        exact += len(found) == 1
    assert exact >= 95  # a spurious second one in at most 5 % of the histories
    values = noisy(np.random.default_rng(0), (20, 1.0), (20, 1.3))
    (found,) = change_points(values)
    assert found.index == 20
    assert found.change == pytest.approx(0.3, abs=0.06)
    assert found.p_value < DEFAULT_P


def test_finds_nothing_in_40_a_a_sessions_at_the_default_p() -> None:
    flagged = [
        seed
        for seed in range(100)
        if change_points(noisy(np.random.default_rng(1000 + seed), (40, 1.0)))
    ]
    assert len(flagged) <= 2, flagged  # at most 2 % of the histories


def test_finds_two_steps_when_there_are_two() -> None:
    exact = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        for levels in ((1.0, 1.3, 1.0), (1.0, 1.3, 1.7)):
            found = change_points(noisy(rng, *((15, level) for level in levels)))
            for step in (15, 30):  # both steps found, each at its place
                assert any(abs(c.index - step) <= 1 for c in found), (seed, levels, found)
            exact += len(found) == 2
    assert exact >= 95  # of 100: a spurious third one in at most 5 %


def test_a_step_below_the_minimum_change_is_not_reported() -> None:
    values = noisy(np.random.default_rng(3), (20, 1.0), (20, 1.03), cv=0.003)
    assert change_points(values, min_change=0.05) == []
    assert [c.index for c in change_points(values, min_change=0.01)] == [20]


def test_a_step_in_a_long_history_is_found_by_the_sliding_windows() -> None:
    values = noisy(np.random.default_rng(4), (150, 1.0), (10, 1.25))
    assert [c.index for c in change_points(values)] == [150]


def test_a_fall_is_a_change_point_too() -> None:
    values = noisy(np.random.default_rng(5), (20, 2.0), (20, 1.0))
    (found,) = change_points(values)
    assert found.change == pytest.approx(-0.5, abs=0.05)
    assert found.magnitude == pytest.approx(1.0, abs=0.2)  # a halving counts as a doubling


def test_change_points_need_finite_values_and_a_sensible_p() -> None:
    with pytest.raises(ValueError, match="finite"):
        change_points([1.0, math.nan, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        change_points([1.0] * 10, p=1.5)
    with pytest.raises(ValueError, match="too short"):
        change_points([1.0] * 10, window=4)
    assert change_points([]) == []
    assert change_points([1.0] * 40) == []


def test_a_change_point_is_named_once_by_the_session_that_completes_it() -> None:
    for seed in range(10):
        values = list(noisy(np.random.default_rng(seed), (20, 1.0), (15, 1.5)))
        named = {k: completed_by_last(values[:k], Detection()) for k in range(2, len(values) + 1)}
        step = [(k, c) for k, found in named.items() for c in found if abs(c.index - 20) <= 2]
        assert len(step) == 1, (seed, step)  # named once, not again as sessions follow
        ((k, found),) = step
        assert found.index == 20
        assert k == 25  # by the fifth session at the new level (DEFAULT_MIN_SIZE)
