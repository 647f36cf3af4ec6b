"""Capacity search: the verdict rules, the search driven by synthetic measurements (no agent,
no sleeping), the settings errors, the queueing-theory check and the plugin end to end."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import pytest
from conftest import make_result

from pytest_agentperf.capacity import (
    CapacitySearch,
    judge_budget,
    judge_step,
    search_options,
    step_layer,
)
from pytest_agentperf.errors import SettingsError
from pytest_agentperf.fixture import AgentPerf
from pytest_agentperf.pipeline import RunPipeline
from pytest_agentperf.results import PerfResult

pytest_plugins = ["pytester"]


def _latencies(n: int, slow: int, fast: float = 0.1, slow_s: float = 1.0) -> list[float]:
    return [slow_s] * slow + [fast] * (n - slow)


# -------------------------------------------------------------------------------- verdicts


def test_p95_fails_beyond_doubt_holds_beyond_doubt_or_is_undecided() -> None:
    limit = 0.5
    assert judge_budget("p95", limit, [make_result(_latencies(100, 15))]).held is False
    assert judge_budget("p95", limit, [make_result(_latencies(100, 0))]).held is True
    undecided = judge_budget("p95", limit, [make_result(_latencies(100, 5))])
    assert undecided.held is None and "5 of 100 above" in undecided.why
    # pooling more calls at the same rate settles it: 5 in 400 is clearly under 5 %
    pooled = [make_result(_latencies(100, 5))] + [make_result(_latencies(100, 0))] * 3
    assert judge_budget("p95", limit, pooled).held is True


def test_error_rate_uses_wilson_bounds_both_ways() -> None:
    ok = [make_result(_latencies(300, 0))]
    assert judge_budget("error_rate", 0.05, ok).held is True
    assert judge_budget("error_rate", 0.01, [make_result(_latencies(50, 0))]).held is None
    bad = [make_result(_latencies(80, 0), errors=20)]
    assert judge_budget("error_rate", 0.05, bad).held is False


def test_an_aborted_measurement_fails_its_step() -> None:
    aborted = make_result(_latencies(60, 0), aborted="aborted after 60 calls: p95 ...")
    verdict = judge_step({"p95": 0.5}, [aborted])
    assert verdict.held is False and verdict.why.startswith("aborted after 60 calls")


# --------------------------------------------------------- the search, on a synthetic agent


def _synthetic(capacity: float, n_slow_over: int = 40) -> Any:
    """Measurements of an agent that meets p95 <= 0.5 s below ``capacity`` and breaks it
    above: fixed data, no randomness."""

    def measure(rate: float, calls: int) -> PerfResult:
        slow = n_slow_over if rate > capacity else 0
        slow = min(slow, calls)
        return make_result(_latencies(calls, slow), duration=calls / rate)

    return measure


def _drive(search: CapacitySearch, measure: Any) -> list[float]:
    rates = []
    while (rate := search.next_rate()) is not None:
        rates.append(rate)
        search.add(measure(rate, search.calls_at(rate)))
    return rates


def test_geometric_steps_then_bisection_bracket_the_capacity() -> None:
    options = search_options({"p95": "500ms"}, "1/s", "1000/s", resolution=0.05)
    search = CapacitySearch(options)
    rates = _drive(search, _synthetic(37.0))
    assert rates[:7] == [1, 2, 4, 8, 16, 32, 64]
    cap = search.capacity()
    assert cap.max_rate is not None and cap.first_failing is not None
    assert cap.max_rate <= 37.0 < cap.first_failing
    assert cap.first_failing / cap.max_rate <= 1.05 and cap.stopped == "resolution"
    # bisection points are geometric midpoints of the bracket
    assert rates[7] == pytest.approx(math.sqrt(32 * 64))
    assert [p.rate for p in cap.curve] == sorted(rates)


def test_search_stops_at_the_limit_when_every_step_holds() -> None:
    search = CapacitySearch(search_options({"p95": 0.5}, "10/s", "50/s"))
    assert _drive(search, _synthetic(1e9)) == [10, 20, 40, 50]
    cap = search.capacity()
    assert (cap.max_rate, cap.first_failing, cap.stopped) == (50, None, "limit")


def test_search_stops_when_the_start_rate_fails() -> None:
    search = CapacitySearch(search_options({"p95": 0.5}, "10/s", "50/s"))
    assert _drive(search, _synthetic(1.0)) == [10]
    cap = search.capacity()
    assert cap.max_rate is None and cap.first_failing == 10
    assert cap.stopped == "start rate failed"


def test_search_stops_at_its_time_budget() -> None:
    # each step lasts at least 1 s (59 calls at low rates): a 4 s budget allows few steps
    search = CapacitySearch(search_options({"p95": 0.5}, "10/s", "1000/s", duration="4s"))
    rates = _drive(search, _synthetic(1e9))
    assert search.stopped == "time budget" and len(rates) < 4
    assert search.spent <= 4.0


def test_an_undecided_step_is_measured_again_then_judged_on_its_point_estimate() -> None:
    search = CapacitySearch(search_options({"p95": 0.5}, "10/s", "20/s", repeats=2))
    # 3 of 59 slow: under 5 %, but not beyond doubt, every time
    measure = lambda rate, calls: make_result(_latencies(calls, 3), duration=calls / rate)  # noqa: E731
    rates = _drive(search, measure)
    assert rates[:3] == [10, 10, 10]  # measured three times
    first = search.capacity().points[0]
    assert first.measurements == 3 and first.held and not first.decided


def test_step_length_follows_the_percentile_rule_and_the_step_time() -> None:
    o = search_options({"p99": "1s"}, "1/s", "100/s", step="2s")
    assert o.calls_at(1.0) == 299  # a p99 needs 299 calls
    assert o.calls_at(500.0) == 1000  # 2 s at 500/s
    assert search_options({"error_rate": "1%"}, "1/s", "2/s").calls_at(1.0) == 20


def test_each_step_is_an_open_loop_run_judged_on_the_slo_only() -> None:
    layer = step_layer(
        [{"timeout": 5, "p50": "1s", "duration": 9, "min_capacity": 3}, {"warmup": 0}],
        12.5,
        80,
        {"p95": 0.3, "tokens_per_call": 10.0},
    )
    assert layer == {
        "timeout": 5,
        "warmup": 0,
        "p95": 0.3,
        "tokens_per_call": 10.0,
        "rate": 12.5,
        "requests": 80,
        "abort_on": ["p95"],
    }


@pytest.mark.parametrize(
    ("kwargs", "key", "needle"),
    [
        ({"slo": {}}, "slo", "non-empty dict"),
        ({"slo": None}, "slo", "non-empty dict"),
        ({"slo": {"p96": "1s"}}, "slo", "not a budget key"),
        ({"slo": {"min_capacity": "1/s"}}, "slo", "not a budget key"),
        ({"slo": {"p95": "fast"}}, "slo['p95']", "malformed"),
        ({"start": "10/s", "limit": "5/s"}, "limit", "below start"),
        ({"start": "10/s", "limit": "10/s"}, "limit", "increasing bounds"),
        ({"factor": 1.0}, "factor", "above 1"),
        ({"resolution": 0}, "resolution", "above 0"),
        ({"step": "-1s"}, "step", "negative"),
        ({"duration": "-5s"}, "duration", "negative"),
        ({"repeats": -1}, "repeats", ">= 0"),
        ({"start": "0/s"}, "start", "between"),
    ],
)
def test_bad_search_options_are_settings_errors(
    kwargs: dict[str, Any], key: str, needle: str
) -> None:
    args: dict[str, Any] = {"slo": {"p95": "1s"}, "start": "1/s", "limit": "100/s"}
    args.update(kwargs)
    slo, start, limit = args.pop("slo"), args.pop("start"), args.pop("limit")
    with pytest.raises(SettingsError) as info:
        search_options(slo, start, limit, **args)
    assert needle in str(info.value)
    assert info.value.key == key


# ------------------------------------------------------------------- queueing theory (slow)


def _server(slots: int, service: float) -> Any:
    """An agent that is a server with ``slots`` slots and a fixed service time: capacity
    ``slots / service`` calls per second."""
    sem: asyncio.Semaphore | None = None

    async def agent(x: Any = None) -> None:
        nonlocal sem
        if sem is None:
            sem = asyncio.Semaphore(slots)
        async with sem:
            await asyncio.sleep(service)

    return agent


@pytest.mark.slow
def test_capacity_of_a_five_slot_server_matches_queueing_theory() -> None:
    """c = 5 slots, S = 100 ms: capacity c / S = 50/s. SLO p95 <= 300 ms.

    Slow (about 12 s of measured calls): the one end-to-end check of the search against a
    known answer. 20/s and 40/s hold (utilisation 0.4 and 0.8), 80/s and the midpoint 56.6/s
    are overloaded (the queue grows by 6.6 calls a second, so within a 3 s step the latest
    calls wait 0.4 s), and with a 25 % resolution the search ends at 47.6/s (held) or 40/s
    (if 47.6/s, utilisation 0.95, failed): both within [40, 50].
    """
    agent = _server(5, 0.1)
    perf = AgentPerf(RunPipeline(), "test::queueing")
    began = time.perf_counter()
    found = asyncio.run(
        perf.acapacity(
            agent,
            slo={"p95": "300ms"},
            start="20/s",
            limit="400/s",
            step="3s",
            resolution=0.25,
            warmup=0,
        )
    )
    wall = time.perf_counter() - began
    measured = sum(s.result.duration for s in found.steps)
    assert found.max_rate is not None and 40.0 <= found.max_rate <= 50.0
    assert found.first_failing is not None and found.first_failing > found.max_rate
    assert found.first_failing / found.max_rate <= 1.25  # the resolution asked for
    assert measured < 60.0 and wall < 90.0
    curve = found.curve
    assert [p.rate for p in curve][:2] == [20.0, 40.0]
    assert all(p.held for p in curve if p.rate <= 40.0)
    # the knee: p95 rises sharply past capacity
    assert curve[-1].p95 is not None and curve[0].p95 is not None
    assert curve[-1].p95 > 2 * curve[0].p95
    assert found.result.capacity is found.summary and found.result.name == "capacity"


# --------------------------------------------------------------------------- end to end


def test_capacity_and_min_capacity_through_the_plugin(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import asyncio
        import pytest

        async def agent(x=None):
            await asyncio.sleep(0.002)

        @pytest.mark.agent_perf(min_capacity="5/s", timeout="5s")
        def test_found(agentperf):
            found = agentperf.capacity(agent, slo={"p95": "1s"}, start="100/s",
                                       limit="200/s", step="0.2s")
            assert found.max_rate == 200 and found.first_failing is None
            assert [s.rate for s in found.steps] == [100, 200]

        @pytest.mark.asyncio
        @pytest.mark.agent_perf(min_capacity="500/s")
        async def test_too_low(agentperf):
            await agentperf.acapacity(agent, slo={"p95": "1s"}, start="100/s",
                                      limit="200/s", step="0.2s")
        """
    )
    result = agents.runpytest(
        "--agentperf-json=out.json", "--agentperf-markdown=out.md", "--agentperf-html=out.html"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*capacity 200/s < budget 500/s*"])
    result.stdout.fnmatch_lines(["*capacity search*rate*p95*SLO*", "*200/s*held <- knee"])
    data = json.loads((agents.path / "out.json").read_text())
    text = json.dumps(data)
    assert '"max_rate": 200.0' in text and '"points"' in text
    assert "### Capacity" in (agents.path / "out.md").read_text()
    page = (agents.path / "out.html").read_text()
    assert "Capacity search: latency against offered load" in page
    block = page.split('id="agentperf-data">', 1)[1].split("</script>", 1)[0]
    curve = json.loads(block)["runs"][0]["capacity"]
    assert curve["rate"] == [100.0, 200.0] and curve["knee"] == 200.0
    assert curve["slo"] == [{"name": "p95", "limit": 1.0}]


def test_an_slo_without_budget_keys_fails_the_test_before_any_call(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(
        """
        calls = []

        def test_agent(agentperf):
            agentperf.capacity(calls.append, slo={"latency": "1s"})
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SettingsError*slo: 'latency' is not a budget key*"])


def test_capacity_and_stages_survive_the_record_round_trip() -> None:
    """What crosses the xdist boundary (``RunRecord.to_dict`` / ``from_dict``) keeps the search
    and the stages."""
    from pytest_agentperf.baseline.capacity import capacity_change
    from pytest_agentperf.baseline.comparison import Comparison
    from pytest_agentperf.record import RunRecord
    from pytest_agentperf.results import (
        Capacity,
        CapacityPoint,
        CapacitySearchOptions,
        StageResult,
    )

    point = CapacityPoint(10.0, 9.5, 0.1, 0.2, 0.3, 60, 0, True, False, 2, "point estimate")
    options = CapacitySearchOptions(5.0, 40.0, 2.0, 0.1, 1.0, 2, 30.0)
    cap = Capacity({"p95": 0.3}, 10.0, 20.0, (point,), "resolution", options)
    change = capacity_change(Capacity({"p95": 0.3}, 40.0, None, search=options), cap)
    comparison = Comparison(change.status, 0.1, {"capacity": change})
    stage = StageResult(0, 0.0, 1.0, 0.0, 5.0, 10, 1, 9.0, 0.1, 0.2, 0.3)
    result = make_result([0.1] * 5, capacity=cap, stages=(stage,), comparison=comparison)
    record = RunRecord.of("t::x", result)
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.result.capacity == cap and again.result.stages == (stage,)
    assert again.status.value == "REGRESSED" and again.comparison is not None
    assert again.comparison.get("capacity") == change
    assert again.result.capacity is not None and again.result.capacity.curve == (point,)


def test_the_spend_guard_caps_the_whole_search(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import asyncio
        import pytest
        from pytest_agentperf import record_usage

        async def agent(x=None):
            record_usage(input_tokens=90, output_tokens=10, model="m")
            await asyncio.sleep(0.001)

        @pytest.mark.agent_perf(total_tokens=10_000, warmup=0)
        def test_search(agentperf):
            agentperf.capacity(agent, slo={"p95": "1s"}, start="100/s", limit="1000/s",
                               step="0.1s")
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(failed=1)
    # 59 calls (5,900 tokens) at 100/s, then the 42nd call at 200/s crosses what was left
    result.stdout.fnmatch_lines(
        ["*aborted: capacity search stopped by the spend guard: total tokens 4200 > budget 4100*"]
    )


def test_a_search_judges_only_what_it_measured() -> None:
    search = CapacitySearch(search_options({"p95": 0.5}, "10/s", "50/s"))
    assert search.next_rate() == 10
    guard = "aborted: spend guard: total tokens 120 > budget 100"
    search.add(make_result([0.1] * 12, aborted=guard))
    assert search.next_rate() is None and search.stopped == guard.removeprefix("aborted: ")
    cap = search.capacity()
    assert cap.max_rate is None and cap.first_failing is None  # no SLO verdict either way
