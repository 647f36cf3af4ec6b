from __future__ import annotations

from typing import Any

import pytest
from conftest import make_result

from pytest_agentperf.budgets import (
    BUDGETS,
    BudgetSpec,
    Early,
    evaluate,
    judged_early,
    raise_if_broken,
    small_sample_warnings,
)
from pytest_agentperf.errors import BudgetExceeded, SettingsError
from pytest_agentperf.observers.abort import judge
from pytest_agentperf.results import Cost, PerCallUsage, PerfResult, Usage
from pytest_agentperf.settings import VALID_KEYS, parse_settings
from pytest_agentperf.units import Unit


def test_every_budget_is_a_valid_setting() -> None:
    assert set(BUDGETS) <= set(VALID_KEYS)


def test_broken_budgets_are_all_listed_with_limit_value_and_n() -> None:
    r = make_result([0.1] * 50 + [2.0] * 50, requests=100, errors=10, error_rate=0.1)
    budgets = parse_settings({"p95": "800ms", "mean_latency": "5s", "error_rate": "1%"}).budgets
    r = PerfResult(**{**r.__dict__, "budgets": evaluate(budgets, r)})
    with pytest.raises(BudgetExceeded) as info:
        raise_if_broken(r)
    text = str(info.value)
    assert "p95 latency 2 s > budget 800 ms (n=100)" in text
    assert "error rate 10% > budget 1% (n=100)" in text
    assert "mean latency" not in text
    assert len(info.value.failures) == 2
    assert isinstance(info.value, AssertionError)


def test_minimum_budgets_and_unknown_values() -> None:
    r = make_result([0.1] * 10, throughput=5.0)
    checks = {c.name: c for c in evaluate({"min_throughput": 20.0, "total_cost": 1.0}, r)}
    assert not checks["min_throughput"].passed
    assert "throughput 5/s < budget 20/s" in checks["min_throughput"].message
    assert not checks["total_cost"].passed and checks["total_cost"].value is None


def test_cost_budget_on_unknown_model_names_the_model() -> None:
    usage = Usage(
        input_tokens=10,
        output_tokens=5,
        total_tokens=15,
        calls_with_usage=1,
        per_call=PerCallUsage(10, 5, 15),
    )
    r = make_result([0.1], usage=usage, cost=Cost(unknown_models=("my-model",)))
    (check,) = evaluate({"cost_per_call": 0.01}, r)
    assert not check.passed
    assert "my-model" in check.message and "agentperf_prices" in check.message


def test_no_successful_call_breaks_a_latency_budget() -> None:
    r = make_result([], requests=5, errors=5, error_rate=1.0)
    (check,) = evaluate({"p95": 1.0}, r)
    assert not check.passed and check.value is None


def test_small_samples_warn_for_high_percentiles_only() -> None:
    r = make_result([0.1] * 40)
    warnings = small_sample_warnings({"p95": 1.0, "p50": 1.0, "p99": 2.0}, r)
    assert len(warnings) == 2
    assert "59" in warnings[0] and "299" in warnings[1]
    assert small_sample_warnings({"p95": 1.0}, make_result([0.1] * 59)) == []


@pytest.mark.parametrize(
    ("budget", "limit", "kw", "passed", "text"),
    [
        ("p95", 100.0, {}, True, "p95 latency 21 µs <= budget 100 s (n=50)"),
        ("p95", 1e-6, {}, False, "p95 latency 21 µs > budget 1 µs (n=50)"),
        ("max_latency", 0.001, {}, True, "max latency 21 µs <= budget 1 ms (n=50)"),
        ("error_rate", 0.05, {"error_rate": 0.02}, True, "error rate 2% <= budget 5% (n=50)"),
        ("error_rate", 0.01, {"error_rate": 0.02}, False, "error rate 2% > budget 1% (n=50)"),
        ("min_throughput", 20.0, {"throughput": 50.0}, True, "throughput 50/s >= budget 20/s"),
        ("min_throughput", 20.0, {"throughput": 5.0}, False, "throughput 5/s < budget 20/s"),
        ("min_throughput", 20.0, {"throughput": 20.0}, True, "throughput 20/s >= budget 20/s"),
    ],
)
def test_a_message_reads_as_a_pass_or_a_failure_as_the_check_came_out(
    budget: str, limit: float, kw: dict[str, Any], passed: bool, text: str
) -> None:
    r = make_result([21e-6] * 50, **kw)
    (check,) = evaluate({budget: limit}, r)
    assert check.passed is passed
    assert check.message.startswith(text)


def test_no_passing_budget_message_uses_a_failing_relation() -> None:
    """Every budget kind, judged on a run that meets it: its message never says > or <."""
    r = make_result([0.01] * 100, throughput=1000.0)
    generous = {"min_throughput": 1.0, "p95_drift": 10.0, "memory": 1e6}
    checks = evaluate({**{k: 1e9 for k in BUDGETS}, **generous}, r)
    for check in checks:
        if check.passed:
            assert " > budget" not in check.message and " < budget" not in check.message
    assert any(c.passed for c in checks)


def test_every_spec_is_consistent_with_the_registry() -> None:
    for name, spec in BUDGETS.items():
        if spec.early is Early.PERCENTILE:
            assert spec.percentile is not None, name
        if spec.not_above is not None:
            assert spec.not_above in BUDGETS, name
            assert BUDGETS[spec.not_above].unit is spec.unit, name


def test_a_budget_added_by_one_registry_entry_is_validated_judged_and_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p75 = BudgetSpec(
        "p75 latency",
        Unit.SECONDS,
        lambda r: (r.latency.percentile(75), r.latency.n),
        percentile=75,
        early=Early.PERCENTILE,
        not_above="p99",
    )
    monkeypatch.setitem(BUDGETS, "p75", p75)  # type: ignore[index]
    # validated: parsed with its unit, ordered against its ceiling, accepted by abort_on
    s = parse_settings({"p75": "500ms", "abort_on": "any"})
    assert s.budgets == {"p75": 0.5} and s.abort_on == ("p75",)
    with pytest.raises(SettingsError, match="p75=2 s is above p99=1 s"):
        parse_settings({"p75": "2s", "p99": "1s"})
    assert "p75" in judged_early()
    # judged early, with the percentile rule, from its own percentile
    n = 100
    lat = [2.0] * 40 + [0.1] * (n - 40)
    why = judge("p75", 0.5, [0.0] * n, lat, [0] * n)
    assert why is not None and why.startswith("p75 latency") and "of 100 successful" in why
    # checked and listed with the other budgets when the run ends
    r = make_result([0.1] * 50 + [2.0] * 50)
    (check,) = evaluate(s.budgets, r)
    assert check.name == "p75" and not check.passed
    assert check.message == "p75 latency 2 s > budget 500 ms (n=100)"
    assert small_sample_warnings(s.budgets, make_result([0.1] * 5))  # p75 needs more than 5
