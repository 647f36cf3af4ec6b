"""The history gate: a run against the last N sessions of its machine (seeded data)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from conftest import make_result, make_shape

from pytest_agentperf.baseline.change import Status
from pytest_agentperf.baseline.environment import Machine
from pytest_agentperf.history.gate import (
    MIN_SESSIONS,
    binomial_quantile,
    compare_with_history,
    typical_sessions,
)
from pytest_agentperf.history.store import new_session, run_from_result
from pytest_agentperf.results import PerCallUsage, Usage

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def latencies(rng: np.random.Generator, level: float, n: int = 200) -> np.ndarray:
    """``n`` lognormal latencies (sigma 0.3) around ``level`` seconds, this session a few
    percent off (machine drift)."""
    drift = float(np.exp(rng.normal(0.0, 0.02)))
    return level * drift * np.exp(rng.normal(0.0, 0.3, n))


def history(rng: np.random.Generator, levels: list[float], **fields):
    past = []
    for i, level in enumerate(levels):
        run = run_from_result("t.py::test", make_result(latencies(rng, level), **fields), "PASS")
        session = new_session(
            [run],
            machine=Machine(),
            commit=f"c{i}",
            plugin_version="0",
            created=T0 + timedelta(hours=i),
        )
        past.append((session, run))
    return past


def test_a_run_with_too_little_history_is_new() -> None:
    rng = np.random.default_rng(0)
    comp = compare_with_history(make_result(latencies(rng, 1.0)), history(rng, [1.0] * 4))
    assert comp.status is Status.NEW
    assert f"at least {MIN_SESSIONS} are needed" in comp.messages[0]


def test_an_unchanged_run_passes_and_a_slower_one_regresses() -> None:
    rng = np.random.default_rng(1)
    past = history(rng, [1.0] * 20)
    same = compare_with_history(make_result(latencies(rng, 1.0)), past)
    assert same.status is Status.UNCHANGED
    slow = compare_with_history(make_result(latencies(rng, 1.5)), past)
    assert slow.status is Status.REGRESSED
    p50 = slow.metrics["p50"]
    assert p50.change == pytest.approx(1.5, rel=0.1)
    assert p50.low is not None and p50.low > 1.0 + p50.limit
    assert "vs the last 20 sessions" in p50.text
    message = slow.failure_message("default")
    assert "regressed against the last 20 sessions in the history (commit c19" in message
    assert "re-record the baseline" not in message


def test_the_tolerance_follows_the_measured_run_to_run_variation() -> None:
    quiet = history(np.random.default_rng(2), [1.0] * 20)
    noisy_levels = list(np.exp(np.random.default_rng(3).normal(0.0, 0.15, 20)))
    noisy = history(np.random.default_rng(2), noisy_levels)
    run = make_result(latencies(np.random.default_rng(4), 1.25))
    calm = compare_with_history(run, quiet)
    assert calm.status is Status.REGRESSED
    loud = compare_with_history(run, noisy)
    assert loud.metrics["p50"].limit > 2 * calm.metrics["p50"].limit  # learned: it varies
    assert loud.status is not Status.REGRESSED


def test_the_tolerance_never_drops_below_the_configured_one() -> None:
    rng = np.random.default_rng(5)
    flat = history(rng, [1.0] * 10, usage=Usage(per_call=PerCallUsage(total_tokens=100.0)))
    more = make_result(latencies(rng, 1.0), usage=Usage(per_call=PerCallUsage(total_tokens=108.0)))
    comp = compare_with_history(more, flat, tolerance=0.10)
    assert comp.metrics["tokens"].limit == pytest.approx(0.10)  # no variation at all: 10 %
    assert comp.metrics["tokens"].status is Status.UNCHANGED
    much = make_result(latencies(rng, 1.0), usage=Usage(per_call=PerCallUsage(total_tokens=150.0)))
    assert compare_with_history(much, flat).metrics["tokens"].status is Status.REGRESSED


def test_one_bad_past_session_does_not_widen_the_tolerance() -> None:
    rng = np.random.default_rng(6)
    past = history(rng, [1.0] * 9 + [2.0] + [1.0] * 5)
    comp = compare_with_history(make_result(latencies(rng, 1.4)), past)
    assert comp.metrics["p50"].status is Status.REGRESSED
    values = np.log(np.array([1.0, 1.01, 0.99, 1.02, 0.98, 2.0]))
    assert len(typical_sessions(values)) == 5


def test_only_sessions_with_the_same_load_shape_count() -> None:
    rng = np.random.default_rng(7)
    past = history(rng, [1.0] * 10, shape=make_shape(requests=50))
    comp = compare_with_history(make_result(latencies(rng, 1.0)), past)
    assert comp.status is Status.NEW


def test_error_rate_is_judged_on_pooled_counts() -> None:
    rng = np.random.default_rng(8)
    past = history(rng, [1.0] * 20, errors=2, requests=202)
    ok = compare_with_history(make_result(latencies(rng, 1.0), errors=4, requests=204), past)
    assert ok.metrics["error_rate"].status is Status.UNCHANGED
    bad = compare_with_history(make_result(latencies(rng, 1.0), errors=30, requests=230), past)
    assert bad.metrics["error_rate"].status is Status.REGRESSED
    assert bad.metrics["error_rate"].baseline == pytest.approx(2 / 202)


def test_binomial_quantile() -> None:
    assert binomial_quantile(0.5, 10, 0.5) == 5
    assert binomial_quantile(0.99, 200, 0.0) == 0
    assert binomial_quantile(0.99, 200, 1.0) == 200
    assert binomial_quantile(0.99, 200, 0.01) == 6  # P(X <= 5) = 0.983, P(X <= 6) = 0.995


def test_inconclusive_is_rare_on_unchanged_runs_and_a_25_percent_step_is_caught() -> None:
    """The issue's figures on a small seeded simulation (benchmarks/history_gate.py runs the
    full one): 20 past sessions of 200 calls, 2 % machine drift per session."""
    rng = np.random.default_rng(20261201)
    same, slow = [], []
    for _ in range(40):
        past = history(rng, [1.0] * 20)
        same.append(compare_with_history(make_result(latencies(rng, 1.0)), past).status)
        slow.append(compare_with_history(make_result(latencies(rng, 1.25)), past).status)
    assert sum(s is Status.INCONCLUSIVE for s in same) <= 2  # < 5 %
    assert sum(s is Status.REGRESSED for s in same) <= 1
    assert sum(s is Status.REGRESSED for s in slow) >= 36  # >= 90 %
