"""The spend guard: ``total_tokens`` and ``total_cost`` judged as calls finish, stopping the run
the moment either is crossed, in every mode, with or without ``abort_on``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import INI

from pytest_agentperf import record_usage
from pytest_agentperf.engine import arun_load, run_load
from pytest_agentperf.engine.spend import SpendMeter
from pytest_agentperf.pricing import load_prices
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.usage import UsageRecord

pytest_plugins = ["pytester"]

MINI = 1000 * 0.15e-6 + 200 * 0.6e-6  # gpt-4o-mini, per call of 1000 in, 200 out


def test_meter_trips_once_when_tokens_cross_the_limit() -> None:
    reasons: list[str] = []
    meter = SpendMeter.of({"total_tokens": 250}, None, reasons.append)
    assert meter is not None
    for _ in range(5):
        meter.add([UsageRecord(60, 40)], None)
    assert meter.tokens == 500
    assert reasons == ["spend guard: total tokens 300 > budget 250"]


def test_meter_prices_each_call_and_trips_on_cost() -> None:
    reasons: list[str] = []
    meter = SpendMeter.of({"total_cost": 2.5 * MINI}, None, reasons.append)
    assert meter is not None
    meter.add([UsageRecord(1000, 200, "gpt-4o-mini")], None)
    meter.add([UsageRecord(1000, 200)], "gpt-4o-mini")  # the marker's model= names it
    assert meter.cost == pytest.approx(2 * MINI) and not reasons
    meter.add([UsageRecord(1000, 200, "gpt-4o-mini")], None)
    assert len(reasons) == 1 and reasons[0].startswith("spend guard: total cost $")


def test_meter_leaves_an_unpriced_cost_to_the_final_check() -> None:
    reasons: list[str] = []
    meter = SpendMeter.of({"total_cost": 1e-9}, load_prices(), reasons.append)
    assert meter is not None
    meter.add([UsageRecord(1000, 200, "no-such-model")], None)
    assert not meter.priced and not reasons


def test_no_meter_without_a_spend_budget() -> None:
    assert SpendMeter.of({"p95": 1.0, "cost_per_call": 1.0}, None, print) is None


def _sync_agent(x: Any = None) -> None:
    record_usage(input_tokens=80, output_tokens=20, model="gpt-4o-mini")
    time.sleep(0.002)


async def _async_agent(x: Any = None) -> None:
    record_usage(input_tokens=80, output_tokens=20, model="gpt-4o-mini")
    await asyncio.sleep(0.002)


MODES = {
    "closed": {"requests": 5000, "concurrency": 1},
    "closed-4": {"requests": 5000, "concurrency": 4},
    "open": {"requests": 5000, "rate": 400, "arrival": "constant"},
    "soak": {"duration": 60, "concurrency": 2, "window": 1},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_crossing_total_tokens_stops_the_run_at_once(mode: str, kind: str) -> None:
    """100 tokens a call and a 1,000-token budget: the 11th call crosses it and no call starts
    after it; only calls already in flight may still end (and be left behind)."""
    settings = parse_settings(MODES[mode], {"total_tokens": 1000, "warmup": 0})
    began = time.perf_counter()
    if kind == "sync":
        raw = run_load(_sync_agent, None, settings)
    else:
        raw = asyncio.run(arun_load(_async_agent, None, settings))
    assert time.perf_counter() - began < 20  # not the 60 s soak, nor 5,000 calls
    # the guard trips on the call that crosses the budget; calls in flight may add to it
    assert raw.aborted is not None
    assert raw.aborted.startswith("aborted: spend guard: total tokens 1")
    assert raw.aborted.endswith(" > budget 1000")
    # calls in flight when it trips may still end: closed loop at most the workers; open
    # loop the arrivals already dispatched (a burst, when a busy machine delayed them)
    in_flight = settings.max_in_flight or 50
    assert 11 <= len(raw.log) <= 11 + in_flight


def test_closed_loop_of_one_stops_on_exactly_the_crossing_call() -> None:
    settings = parse_settings({"requests": 100, "total_tokens": 1000, "warmup": 0})
    raw = run_load(_sync_agent, None, settings)
    assert len(raw.log) == 11
    assert raw.aborted == "aborted: spend guard: total tokens 1100 > budget 1000"


def test_warmup_calls_are_not_counted() -> None:
    settings = parse_settings({"requests": 5, "total_tokens": 500, "warmup": 20})
    raw = run_load(_sync_agent, None, settings)
    assert raw.aborted is None and len(raw.log) == 5


def test_total_cost_stops_a_run_without_abort_on(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import priced

        @pytest.mark.agent_perf(requests=1000, total_cost="$0.001")
        def test_agent(agentperf):
            agentperf.run(priced)
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(failed=1)
    # $0.00027 a call: the 4th call crosses $0.001 and the run stops there
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: 1 budget exceeded in run 'default':",
            "*aborted: spend guard: total cost $0.00108 > budget $0.001",
            "*total cost $0.00108 > budget $0.001 (n=4)",
        ]
    )
    result.stdout.fnmatch_lines(["*test_agent*ABORTED*"])


def test_total_tokens_is_a_budget_judged_at_the_end_too(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import priced, silent

        @pytest.mark.agent_perf(requests=3, total_tokens=4000)
        def test_within(agentperf):
            r = agentperf.run(priced)
            assert r.aborted is None and r.usage.total_tokens == 3600
            assert [b.passed for b in r.budgets] == [True]

        @pytest.mark.agent_perf(requests=3, total_tokens=4000)
        def test_unknown(agentperf):
            agentperf.run(silent)
        """
    )
    agents.makeini(INI)
    result = agents.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*total tokens unknown (budget 4000): no call reported*"])
