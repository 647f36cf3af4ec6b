from __future__ import annotations

import pytest

from pytest_agentperf.errors import SettingsError
from pytest_agentperf.options import parse_scale
from pytest_agentperf.settings import VALID_KEYS, parse_settings


def test_defaults_match_the_design() -> None:
    s = parse_settings()
    assert (s.requests, s.max_in_flight, s.warmup, s.timeout) == (20, 1, 1, 30.0)
    assert s.duration is None and s.rate is None and s.budgets == {}


def test_later_layers_win_and_units_are_parsed() -> None:
    s = parse_settings({"requests": 5, "p95": "800ms"}, {"requests": 7, "error_rate": "1%"})
    assert s.requests == 7
    assert dict(s.budgets) == {"p95": 0.8, "error_rate": 0.01}


def test_duration_alone_bounds_the_run_and_both_bound_together() -> None:
    assert parse_settings({"duration": "2s"}).requests is None
    both = parse_settings({"duration": "2s", "requests": 50})
    assert (both.requests, both.duration) == (50, 2.0)


def test_scale_multiplies_requests_and_duration_never_warmup() -> None:
    s = parse_settings({"requests": 100, "duration": "10s", "warmup": 3}).scaled(0.1)
    assert (s.requests, s.duration, s.warmup) == (10, 1.0, 3)
    assert parse_settings({"requests": 3}).scaled(0.01).requests == 1


def test_open_loop_concurrency_is_a_cap() -> None:
    assert parse_settings({"rate": "20/s"}).max_in_flight is None
    assert parse_settings({"rate": 20, "concurrency": 4}).max_in_flight == 4
    shape = parse_settings({"rate": 20, "arrival": "constant"}).shape
    assert (shape.rate, shape.arrival) == (20.0, "constant")


@pytest.mark.parametrize(
    ("layer", "key", "fragment"),
    [
        ({"p95_latency": "1s"}, "p95_latency", "did you mean 'p95'"),
        ({"concurency": 2}, "concurency", "did you mean 'concurrency'"),
        ({"requests": 0}, "requests", "at least 1"),
        ({"requests": 2.5}, "requests", "whole number"),
        ({"concurrency": True}, "concurrency", "whole number"),
        ({"warmup": -1}, "warmup", "at least 0"),
        ({"rate": 0}, "rate", "greater than zero"),
        ({"rate": "-3/s"}, "rate", "negative"),
        ({"timeout": "0s"}, "timeout", "greater than zero"),
        ({"arrival": "poisson"}, "arrival", "give rate="),
        ({"rate": 5, "arrival": "bursty"}, "arrival", "one of"),
        ({"p50": "2s", "p99": "1s"}, "p50", "contradict"),
        ({"p95": "1s", "max_latency": "500ms"}, "p95", "contradict"),
        ({"stages": [{"rate": 1}]}, "stages", 'expected the keys "duration" and "target"'),
        ({"model": 3}, "model", "model name"),
        ({"abort_on": ["p95"]}, "abort_on", "no budget"),
        ({"abort_on": ["p96"], "p95": 1}, "abort_on", "unknown budget"),
        ({"memory_profile": "yes"}, "memory_profile", "True or False"),
        ({"p90": "2s", "max_latency": "1s"}, "p90", "contradict"),
        ({"abort_on": "any"}, "abort_on", "none of this test's budgets"),
        ({"abort_on": ["p95", "any"], "p95": 1}, "abort_on", "stands alone"),
        ({"abort_on": ["tokens_per_call"], "tokens_per_call": 9}, "abort_on", "whole run"),
    ],
)
def test_bad_settings_name_the_key(layer: dict[str, object], key: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(layer)
    assert info.value.key == key
    assert fragment in str(info.value)


def test_abort_on_any_means_every_budget() -> None:
    s = parse_settings({"p95": 1, "error_rate": "5%", "abort_on": "any"})
    assert set(s.abort_on) == {"p95", "error_rate"}


def test_every_documented_budget_is_a_valid_key() -> None:
    for key in (
        "p50",
        "p90",
        "p95",
        "p99",
        "max_latency",
        "mean_latency",
        "ttft_p50",
        "ttft_p95",
        "ttft_p99",
        "itl_p95",
        "error_rate",
        "timeout_rate",
        "min_throughput",
        "tokens_per_call",
        "output_tokens_per_call",
        "cost_per_call",
        "total_cost",
        "memory",
        "memory_per_1k_calls",
        "p95_drift",
        "window",
        "abort_on",
        "model",
        "tolerance",
    ):
        assert key in VALID_KEYS


@pytest.mark.parametrize(
    ("layer", "key", "fragment"),
    [
        ({"requests": 10**30}, "requests", "must be at most 1,000,000,000"),
        ({"warmup": 10**10}, "warmup", "must be at most 1,000,000,000"),
        ({"concurrency": 10**400}, "concurrency", "must be at most"),
        ({"duration": "1e300s"}, "duration", "must be at most 365 days"),
        ({"timeout": 1e300}, "timeout", "must be at most 365 days"),
        ({"window": "9000h"}, "window", "must be at most 365 days"),
        ({"duration": "1e308m"}, "duration", "must be a finite number"),
        ({"timeout": 10**400}, "timeout", "must be a finite number"),
        ({"p95": 10**400}, "p95", "must be a finite number"),
    ],
)
def test_numbers_beyond_their_bounds_name_the_setting(
    layer: dict[str, object], key: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(layer)
    assert info.value.key == key and fragment in str(info.value)


def test_the_largest_values_in_bounds_are_accepted() -> None:
    s = parse_settings({"requests": 10**9, "duration": "8760h", "timeout": 365 * 24 * 3600})
    assert s.requests == 10**9 and s.duration == 365 * 24 * 3600.0


@pytest.mark.parametrize(
    ("layer", "factor", "fragment"),
    [
        ({"requests": 20}, 1e308, "requests=20 becomes inf"),
        ({"requests": 10**6}, 1e4, "requests=1000000 becomes 1e+10"),
        ({"duration": "1h"}, 1e4, "duration=3600 s becomes 3.6e+07 s"),
    ],
)
def test_a_scale_that_overflows_a_setting_names_the_scale(
    layer: dict[str, object], factor: float, fragment: str
) -> None:
    settings = parse_settings(layer)
    with pytest.raises(SettingsError) as info:
        settings.scaled(factor)
    assert str(info.value).startswith("--agentperf-scale=") and fragment in str(info.value)
    assert info.value.key == "--agentperf-scale"


@pytest.mark.parametrize("value", [1e308, 1e7, float("inf")])
def test_parse_scale_refuses_absurd_factors(value: float) -> None:
    with pytest.raises(SettingsError, match="--agentperf-scale="):
        parse_scale(value)
    assert parse_scale(1e6) == 1e6
