"""Stages: k6-style ramps of the arrival rate or of closed-loop workers, per-stage figures and
budgets, and the settings errors."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import numpy as np
import pytest
from conftest import make_result
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import arun_load, run_load
from pytest_agentperf.engine.plan import Plan
from pytest_agentperf.engine.ramp import Ramp
from pytest_agentperf.engine.target import make_target
from pytest_agentperf.errors import SettingsError
from pytest_agentperf.settings import parse_settings

pytest_plugins = ["pytester"]


# ------------------------------------------------------------------------------ the ramp itself


def test_ramp_level_is_linear_within_each_stage() -> None:
    ramp = Ramp(10.0, [(2.0, 30.0), (1.0, 30.0), (2.0, 0.0)])
    assert [ramp.level(t) for t in (0, 1, 2, 2.5, 3, 4, 5, 9)] == [10, 20, 30, 30, 30, 15, 0, 0]
    assert ramp.duration == 5 and ramp.peak == 30
    assert ramp.cumulative(2) == pytest.approx(40) and ramp.total == pytest.approx(100)


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(0, 500),
    stages=st.lists(st.tuples(st.floats(0.01, 50), st.floats(0, 500)), min_size=1, max_size=5),
    share=st.floats(0.0, 1.0),
)
def test_time_of_inverts_the_cumulative_rate(
    start: float, stages: list[tuple[float, float]], share: float
) -> None:
    ramp = Ramp(start, stages)
    c = share * ramp.total
    t = ramp.time_of(c)
    assert t is not None and 0 <= t <= ramp.duration + 1e-9
    assert ramp.cumulative(t) == pytest.approx(c, rel=1e-6, abs=1e-6)


def test_next_active_is_when_the_level_passes_the_worker() -> None:
    ramp = Ramp(0.0, [(4.0, 4.0), (2.0, 4.0), (4.0, 0.0)])
    assert ramp.next_active(0, 0.0) == pytest.approx(0.0, abs=1e-5)
    assert ramp.next_active(2, 0.0) == pytest.approx(2.0, abs=1e-5)
    assert ramp.next_active(3, 5.0) == 5.0  # the steady stage: at once
    assert ramp.next_active(3, 7.5) is None  # ramping down: worker 3 is done for good
    assert ramp.next_active(4, 0.0) is None  # the level never goes above 4


# ------------------------------------------------------------- arrivals, exactly and without sleep


def _arrivals(**overrides: Any) -> np.ndarray:
    settings = parse_settings(overrides)
    plan = Plan.measured(make_target(lambda: None, None), settings)
    return np.array([t for _, t in plan.arrivals()])


def _per_second(times: np.ndarray, seconds: int) -> np.ndarray:
    counts, _ = np.histogram(times, bins=np.arange(seconds + 1))
    return counts


def test_constant_arrivals_of_a_linear_ramp_match_the_rate_each_second() -> None:
    # 100/s ramping to 300/s over 10 s: second k expects 100 + 20 k + 10 arrivals
    times = _arrivals(rate=100, stages=[(10, 300)], arrival="constant", warmup=0)
    expected = np.array([110 + 20 * k for k in range(10)])
    counts = _per_second(times, 10)
    assert np.all(np.abs(counts - expected) <= 1)  # exact, up to the arrival on a boundary
    assert abs(times.size - 2000) <= 1


def test_poisson_arrivals_of_a_linear_ramp_are_within_5_percent_each_second() -> None:
    # large counts per second (10,500 to 19,500) so 5 % is over 3.5 standard deviations
    times = _arrivals(rate=10_000, stages=[("10s", "20000/s")], seed=7, warmup=0)
    expected = np.array([10_500 + 1_000 * k for k in range(10)])
    counts = _per_second(times, 10)
    assert np.all(np.abs(counts / expected - 1) < 0.05)
    assert np.all(np.diff(times) >= 0)


def test_poisson_arrivals_are_seeded() -> None:
    one = _arrivals(rate=5, stages=[(20, 50)], seed=3)
    assert np.array_equal(one, _arrivals(rate=5, stages=[(20, 50)], seed=3))
    assert not np.array_equal(one, _arrivals(rate=5, stages=[(20, 50)], seed=4))


def test_a_ramp_from_zero_and_a_rest_stage() -> None:
    times = _arrivals(stages=[(2, 0), (2, 10), (1, 10)], rate=0, arrival="constant")
    # nothing while the rate stays near 0 (one arrival at t=0), then 10 over the ramp, 10 steady
    assert times[0] == 0.0 and np.all(times[1:] > 2.0)
    assert abs(times.size - 21) <= 1


# ------------------------------------------------------------------------------------ real runs


async def _sleeper(x: Any = None) -> None:
    await asyncio.sleep(0.005)


def test_steady_stages_hold_their_target_throughput_within_5_percent() -> None:
    settings = parse_settings(
        {
            "rate": 40,
            "stages": [(1, 40), (0.5, 120), (1, 120)],
            "arrival": "constant",
            "warmup": 0,
        }
    )
    raw = asyncio.run(arun_load(_sleeper, None, settings))
    result = build_result("staged", settings, raw)
    steady = [result.stages[0], result.stages[2]]
    for stage, target in zip(steady, (40, 120), strict=True):
        assert stage.errors == 0
        assert stage.throughput == pytest.approx(target, rel=0.05)
    ramp = result.stages[1]
    assert ramp.calls == pytest.approx(40, abs=1)  # (40 + 120) / 2 over half a second
    assert [s.index for s in result.stages] == [0, 1, 2]
    assert (ramp.target_from, ramp.target_to) == (40, 120)


def test_a_sync_agent_ramps_from_zero_in_the_open_loop() -> None:
    settings = parse_settings(
        {"rate": 0, "stages": [(0.5, 60), (0.5, 60)], "arrival": "constant", "warmup": 0}
    )
    raw = run_load(lambda: time.sleep(0.002), None, settings)
    up, steady = build_result("ramp", settings, raw).stages
    assert up.calls == pytest.approx(15, abs=1)  # half a second averaging 30/s
    assert steady.calls == pytest.approx(30, abs=1)


class _InFlight:
    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.first: list[int] = []  # in flight when each of the first calls started

    def call(self, x: Any = None) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        if len(self.first) < 3:
            self.first.append(self.now)
        time.sleep(0.01)
        self.now -= 1


def test_closed_loop_stages_ramp_the_number_of_workers() -> None:
    agent = _InFlight()
    settings = parse_settings({"stages": [(1, 4), (1, 4)], "warmup": 0})
    assert settings.max_in_flight == 4 and settings.duration == 2 and settings.requests is None
    raw = run_load(agent.call, None, settings)
    result = build_result("ramp", settings, raw)
    assert agent.most == 4 and agent.first[0] == 1
    up, steady = result.stages
    # about 2.5 workers on average while ramping from 0 to 4, then 4
    assert 0.35 < up.calls / steady.calls < 0.85


def test_async_closed_loop_stages_start_from_concurrency() -> None:
    settings = parse_settings({"concurrency": 2, "stages": [(0.5, 2), (0.5, 6)], "warmup": 0})
    assert settings.max_in_flight == 6 and settings.ramp_start == 2
    raw = asyncio.run(arun_load(_sleeper, None, settings))
    first, second = build_result("ramp", settings, raw).stages
    assert second.calls > first.calls * 1.3


# ---------------------------------------------------------------------- budgets, JSON, settings


def test_stage_budgets_judge_each_stage_on_its_own_calls() -> None:
    settings = parse_settings(
        {
            "rate": 50,
            "arrival": "constant",
            "stages": [(0.4, 50), (0.4, 50)],
            "stage_budgets": {1: {"min_throughput": "1000/s", "p95": "5s"}},
            "warmup": 0,
        }
    )
    raw = asyncio.run(arun_load(_sleeper, None, settings))
    result = build_result("staged", settings, raw)
    assert result.stages[0].budgets == ()
    broken = [b for b in result.stages[1].budgets if not b.passed]
    assert [b.name for b in broken] == ["min_throughput"]
    assert broken[0].message.startswith("stage 1: throughput ")
    assert not result.passed  # the run's own budgets (none) held, a stage's did not
    data = json.loads(json.dumps(result.to_dict(samples=False)))
    assert [s["calls"] for s in data["stages"]] == [s.calls for s in result.stages]


def test_stage_budgets_fail_the_test(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import fast_sync

        @pytest.mark.agent_perf(rate=20, arrival="constant", stages=[("0.3s", "20/s")] * 2,
                                stage_budgets=[None, {"min_throughput": "500/s"}])
        def test_agent(agentperf):
            agentperf.run(fast_sync)
        """
    )
    result = agents.runpytest("--agentperf-json=out.json", "--agentperf-html=out.html")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stage 1: throughput * < budget 500/s*"])
    result.stdout.fnmatch_lines(
        [
            "stages*#*time*target*calls*thru*p50*p95*p99*err*budgets",
            "*test_agent*0*0-0.3 s*20/s*6*",
            "*1*0.3-0.6 s*20/s*broken: min_throughput",
        ]
    )
    data = json.loads((agents.path / "out.json").read_text())
    run = data["runs"][0] if "runs" in data else data
    text = json.dumps(run)
    assert '"stages"' in text and '"target_to": 20.0' in text
    page = (agents.path / "out.html").read_text()
    block = page.split('id="agentperf-data">', 1)[1].split("</script>", 1)[0]
    bands = json.loads(block)["runs"][0]["stages"]  # the HTML time series shades these
    assert [(b["start"], b["end"]) for b in bands] == [(0.0, 0.3), (0.3, 0.6)]


def test_bad_stages_fail_the_test_before_its_body_names_the_key(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest

        calls = []

        @pytest.mark.agent_perf(stages=[])
        def test_empty(agentperf):
            agentperf.run(calls.append)

        @pytest.mark.agent_perf(rate=5, stages=[("-2s", "10/s")])
        def test_negative(agentperf):
            agentperf.run(calls.append)

        def test_after(agentperf):
            assert calls == []
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["*stages=[]: expected a non-empty list*", "*stages[[]0[]] duration='-2s'*"]
    )


def test_no_stages_means_no_stage_results() -> None:
    assert make_result([0.1, 0.2]).stages == ()


@pytest.mark.parametrize(
    ("layer", "needle"),
    [
        ({"stages": []}, "non-empty list"),
        ({"stages": [(-1, 5)]}, "duration"),
        ({"stages": [("0s", 5)]}, "greater than zero"),
        ({"stages": [(1, 5, 6)]}, "expected (duration, target)"),
        ({"stages": [{"duration": 1}]}, '"duration" and "target"'),
        ({"stages": [(1, 2.5)]}, "whole number of workers"),
        ({"stages": [(1, -3)]}, "whole number of workers"),
        ({"rate": 5, "stages": [(1, "-1/s")]}, "rate"),
        ({"stages": [(1, 2)], "duration": 3}, "leave duration= out"),
        ({"stage_budgets": [{"p95": 1}]}, "set stages= too"),
        ({"stages": [(1, 2)], "stage_budgets": [{}, {}]}, "2 entries for 1 stages"),
        ({"stages": [(1, 2)], "stage_budgets": {1: {"p95": 1}}}, "not a stage index"),
        ({"stages": [(1, 2)], "stage_budgets": [{"total_cost": 1}]}, "cannot be judged per stage"),
        ({"stages": [(1, 2)], "stage_budgets": [{"p95": "fast"}]}, "stage_budgets"),
    ],
)
def test_bad_stages_are_settings_errors(layer: dict[str, Any], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse_settings(layer)
    assert needle in str(info.value)
    assert info.value.key in ("stages", "stage_budgets")


def test_rate_zero_is_refused_without_stages() -> None:
    with pytest.raises(SettingsError, match="rate=0"):
        parse_settings({"rate": 0})
    assert parse_settings({"rate": "0/s", "stages": [(1, 5)]}).ramp_start == 0.0


def test_stages_accept_dicts_and_units_and_scale() -> None:
    s = parse_settings({"rate": "2/s", "stages": [{"duration": "1m", "target": "10/s"}]})
    assert s.stages == ((60.0, 10.0),) and s.duration == 60.0 and s.requests is None
    half = s.scaled(0.5)
    assert half.stages == ((30.0, 10.0),) and half.duration == 30.0
    assert math.isclose(Ramp(s.ramp_start, s.stages).total, 360.0)
