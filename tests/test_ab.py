"""A/B comparison, without pytest-in-pytest: the schedule, the split by arm, the paired
statistics, the comparison's budgets and settings, and the arms in every report."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from conftest import make_result
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pytest_agentperf import ab
from pytest_agentperf.ab.arms import CompareOptions, check_arms, split_options
from pytest_agentperf.ab.paired import error_rate_difference, paired_ratio, verdict
from pytest_agentperf.ab.result import budget_checks, summaries
from pytest_agentperf.ab.schedule import Dispatch, Schedule, block_size, normalize_inputs
from pytest_agentperf.ab.split import MATCH_SLACK, ArmCalls, rows_to_calls
from pytest_agentperf.engine.log import MergedLog
from pytest_agentperf.errors import SettingsError
from pytest_agentperf.findings import RUN_RULES, run_findings
from pytest_agentperf.pricing import CostProjection
from pytest_agentperf.record import RunRecord
from pytest_agentperf.report import terminal
from pytest_agentperf.report.markdown import arm_lines
from pytest_agentperf.results import ArmSummary, Cost, Ratio
from pytest_agentperf.settings import parse_settings

# ------------------------------------------------------------------------------ schedule


def test_every_block_gives_every_arm_the_same_inputs_in_a_shuffled_order() -> None:
    schedule = Schedule(3, 10, 4, ["a", "b", "c"], seed=1)
    calls = schedule.all()
    assert len(calls) == 30 and [c.i for c in calls] == list(range(30))
    blocks: dict[int, list[Any]] = {}
    for c in calls:
        blocks.setdefault(c.block, []).append(c)
    assert sorted(blocks) == [0, 1, 2]  # 4 + 4 + 2 calls per arm
    for b, in_block in blocks.items():
        per_arm = [sorted(repr(c.x) for c in in_block if c.arm == a) for a in range(3)]
        assert per_arm[0] == per_arm[1] == per_arm[2]
        assert len(per_arm[0]) == (2 if b == 2 else 4)
    arms = [c.arm for c in calls]
    assert arms != sorted(arms)  # shuffled, not arm after arm


def test_the_shuffle_is_seeded() -> None:
    def arms(seed: int) -> list[int]:
        return [c.arm for c in Schedule(2, 20, 5, None, seed).all()]

    assert arms(3) == arms(3)
    assert arms(3) != arms(4)


def test_a_schedule_bounded_by_time_makes_blocks_as_they_are_read() -> None:
    schedule = Schedule(2, None, 3, normalize_inputs(iter(range(1000))), seed=0)
    it = iter(schedule)
    first = [next(it) for _ in range(13)]
    assert len(schedule.calls) == 13 and first[-1].block == 2


def test_block_size_splits_the_calls_per_arm_into_about_30_blocks() -> None:
    assert block_size(300, None) == 10
    assert block_size(20, None) == 1  # fewer calls than blocks: one call per arm per block
    assert block_size(300, 5) == 60
    assert block_size(None, None) == 10


# ------------------------------------------------------------------------------ split


def _log(starts: list[float], t0: float = 100.0) -> MergedLog:
    s = np.sort(np.array(starts))
    return MergedLog(s, s + 0.5, np.zeros(s.size, dtype=np.int8), s * np.nan, np.zeros(0), t0=t0)


def test_each_row_is_the_call_whose_mark_follows_its_start() -> None:
    log = _log([0.0, 1.0, 2.0])
    marks = [(100.0 + 2.0 + 1e-6, 7), (100.0 + 0.0 + 2e-6, 5), (100.0 + 1.0 + 1e-7, 6)]
    assert rows_to_calls(log, marks).tolist() == [5, 6, 7]


def test_two_calls_started_before_either_mark_go_to_the_latest_start() -> None:
    # thread A read its start, thread B read its start and marked, then A marked
    log = _log([1.0, 1.000001])
    marks = [(101.000002, 20), (101.000003, 10)]
    assert rows_to_calls(log, marks).tolist() == [10, 20]


def test_a_row_no_mark_claims_is_left_unassigned() -> None:
    assert rows_to_calls(_log([0.0, 1.0]), [(101.5, 3)]).tolist() == [-1, 3]


def test_the_dispatcher_marks_each_call_and_notes_each_arms_errors() -> None:
    def ok(x: Any) -> Any:
        return x

    def bad(x: Any) -> Any:
        raise ValueError("no")

    dispatch = Dispatch([("ok", ok), ("bad", bad)], inputs=True)
    agent = dispatch.agent()
    calls = Schedule(2, 2, 2, ["x"], seed=0).all()
    for call in calls:
        if call.arm == 0:
            assert agent(call) == "x"
        else:
            with pytest.raises(ValueError):
                agent(call)
    assert sorted(i for _, i in dispatch.marks) == [0, 1, 2, 3]
    assert dispatch.errors == [0, 2] and dispatch.messages == [[], ["ValueError: no"]]


def test_the_dispatcher_is_async_when_the_arms_are() -> None:
    async def a(x: Any) -> Any:
        await asyncio.sleep(0)
        return x

    agent = Dispatch([("a", a), ("b", a)], inputs=True).agent()
    call = Schedule(2, 1, 1, ["hi"], seed=0).all()[0]
    assert asyncio.run(agent(call)) == "hi"


# ------------------------------------------------------------------------------ statistics


def _calls(latency: np.ndarray, block: np.ndarray, **kw: Any) -> ArmCalls:
    n = latency.size
    return ArmCalls(
        block=block.astype(np.int64),
        latency=latency,
        ok=kw.get("ok", np.ones(n, dtype=bool)),
        ttft=kw.get("ttft", np.full(n, np.nan)),
        tokens=kw.get("tokens", np.full(n, np.nan)),
        cost=kw.get("cost", np.full(n, np.nan)),
    )


def _pair(factor: float, *, drift: bool, seed: int = 0, n: int = 300) -> tuple[ArmCalls, ArmCalls]:
    """Two arms of n calls in 30 blocks; ``drift``: the machine doubles its latency in the
    second half (both arms alike, as interleaving guarantees)."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(30), n // 30)
    slow = np.where(block >= 15, 2.0, 1.0) if drift else 1.0
    ref = 0.1 * rng.lognormal(0, 0.3, n) * slow
    arm = 0.1 * factor * rng.lognormal(0, 0.3, n) * slow
    return _calls(arm, block), _calls(ref, block)


def test_a_20_percent_slower_arm_is_worse_and_an_identical_one_is_not() -> None:
    arm, ref = _pair(1.2, drift=False)
    slower = paired_ratio("p50", arm, ref, seed=0)
    assert slower.verdict == "worse" and slower.low is not None and slower.low > 1.0
    assert slower.estimate == pytest.approx(1.2, rel=0.1)
    same = paired_ratio("mean_latency", *_pair(1.0, drift=False), seed=0)
    assert same.verdict in ("same", "inconclusive")
    assert same.low is not None and same.high is not None and same.low < 1.0 < same.high


def test_pairing_by_block_cancels_drift_that_hits_both_arms() -> None:
    worse = [
        paired_ratio("p95", *_pair(1.0, drift=True, seed=s), seed=s).verdict for s in range(40)
    ]
    assert worse.count("worse") <= 2


def test_a_faster_arm_is_better() -> None:
    r = paired_ratio("p95", *_pair(0.7, drift=True), seed=0)
    assert r.verdict == "better" and r.high is not None and r.high < 1.0


def test_the_interval_is_seeded() -> None:
    arm, ref = _pair(1.1, drift=True)
    assert paired_ratio("p50", arm, ref, seed=5) == paired_ratio("p50", arm, ref, seed=5)


def test_unknown_tokens_or_no_streams_give_an_unknown_ratio() -> None:
    arm, ref = _pair(1.0, drift=False)
    for metric in ("tokens_per_call", "cost_per_call", "ttft_p95"):
        r = paired_ratio(metric, arm, ref, seed=0)
        assert r.estimate is None and r.verdict == "inconclusive"


def test_tokens_and_cost_per_call_are_ratios_of_means() -> None:
    block = np.repeat(np.arange(10), 5)
    lat = np.full(50, 0.1)
    ref = _calls(lat, block, tokens=np.full(50, 100.0), cost=np.full(50, 0.002))
    arm = _calls(lat, block, tokens=np.full(50, 60.0), cost=np.full(50, 0.0005))
    tokens = paired_ratio("tokens_per_call", arm, ref, seed=0)
    cost = paired_ratio("cost_per_call", arm, ref, seed=0)
    assert tokens.estimate == pytest.approx(0.6) and tokens.verdict == "better"
    assert cost.estimate == pytest.approx(0.25) and cost.high == pytest.approx(0.25)


def test_error_rate_difference_has_an_interval() -> None:
    block = np.repeat(np.arange(20), 10)
    ok_ref = np.ones(200, dtype=bool)
    ok_arm = np.ones(200, dtype=bool)
    ok_arm[::5] = False  # 20 % failed
    diff = error_rate_difference(
        _calls(np.ones(200), block, ok=ok_arm), _calls(np.ones(200), block, ok=ok_ref)
    )
    assert diff.estimate == pytest.approx(0.2) and diff.verdict == "worse"
    assert diff.low is not None and 0 < diff.low < 0.2 < (diff.high or 0)


@given(st.floats(0.5, 2.0), st.floats(0.5, 2.0))
@settings(max_examples=25, deadline=None)
def test_verdicts_follow_the_interval(a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    word = verdict(low, high)
    assert word == (
        "worse"
        if low > 1
        else "better"
        if high < 1
        else "same"
        if low >= 1 / 1.05 and high <= 1.05
        else "inconclusive"
    )


# ------------------------------------------------------------------------------ settings


def test_compare_settings_are_split_from_the_arm_settings() -> None:
    options, rest = split_options({"max_slowdown": "5%", "blocks": 10, "requests": 50})
    assert options == CompareOptions(max_slowdown=0.05, max_cost_increase=None, blocks=10)
    assert rest == {"requests": 50}
    parse_settings(rest)  # what is left is valid as a run's settings


@pytest.mark.parametrize(
    ("arms", "message"),
    [
        ({"a": print}, "two or more arms"),
        ({}, "two or more arms"),
        ({"a": print, "b": 42}, "arm 'b' is a int, not an agent"),
        ({"a": print, "A ": print}, "are the same name"),
        ({"a": print, "": print}, "non-empty str name"),
        ({"a": print, 3: print}, "non-empty str name"),
        ({"a": print, "b\n": print}, "must not hold control characters"),
        ({"a": print, "x/y": print}, "or '/'"),
        ([print, print], "mapping of arm names to agents"),
    ],
)
def test_bad_arms_are_settings_errors_that_say_what_to_change(arms: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        check_arms(arms)
    assert info.value.key == "arms"


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"max_slowdown": "fast"}, "max_slowdown"),
        ({"max_cost_increase": -1}, "max_cost_increase"),
        ({"blocks": 0}, "blocks"),
        ({"blocks": 2.5}, "blocks"),
    ],
)
def test_bad_compare_settings_name_their_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        split_options(settings)
    assert info.value.key == key and key in str(info.value)


def test_sync_and_async_arms_cannot_be_mixed() -> None:
    async def a(x: Any) -> Any:
        return x

    with pytest.raises(SettingsError, match="all be sync or all be async"):
        Dispatch([("sync", print), ("async", a)], inputs=True)


# ------------------------------------------------------------------------------ budgets


def _summary(**ratios: Ratio) -> ArmSummary:
    rs = tuple(replace_metric(r, m) for m, r in ratios.items())
    return ArmSummary("cmp", "b", "a", 0, 30, rs)


def replace_metric(r: Ratio, metric: str) -> Ratio:
    return Ratio(metric, r.estimate, r.low, r.high, r.verdict, r.blocks)


def test_max_slowdown_fails_only_beyond_doubt() -> None:
    options = CompareOptions(max_slowdown=0.05)
    broken = _summary(
        p50=Ratio("", 1.2, 1.1, 1.3, "worse", 30), p95=Ratio("", 1.1, 0.9, 1.3, "x", 30)
    )
    (check,) = budget_checks(broken, options)
    assert not check.passed and check.name == "max_slowdown"
    assert "arm 'b' p50 latency is 1.2x that of 'a'" in check.message and "beyond" in check.message
    unsure = _summary(
        p50=Ratio("", 1.2, 1.01, 1.3, "worse", 30), p95=Ratio("", 1.1, 0.9, 1.3, "x", 30)
    )
    assert budget_checks(unsure, options)[0].passed  # worse, but not by 5 % beyond doubt


def test_max_cost_increase_fails_on_unknown_cost() -> None:
    (check,) = budget_checks(_summary(cost_per_call=Ratio("")), CompareOptions(None, 0.1))
    assert not check.passed and "unknown" in check.message
    dear = _summary(cost_per_call=Ratio("", 2.0, 1.9, 2.1, "worse", 30))
    (check,) = budget_checks(dear, CompareOptions(None, 0.1))
    assert not check.passed and "costs 2x per call" in check.message


def test_the_reference_has_no_ratios_and_no_budgets() -> None:
    arm, ref = _pair(1.2, drift=False)
    sums = summaries("cmp", "a", 0, 30, {"a": ref, "b": arm})
    assert sums["a"].is_reference and sums["a"].ratios == ()
    assert [r.metric for r in sums["b"].ratios] == [*ab.COMPARED_METRICS, "error_rate"]
    assert budget_checks(sums["a"], CompareOptions(0.05, 0.05)) == ()


# ------------------------------------------------------------------------------ reports


def _arm_record(summary: ArmSummary, cost: float | None = None, **kw: Any) -> RunRecord:
    result = make_result(np.full(100, 0.1), name=f"cmp/{summary.arm}")
    if cost is not None:
        result = replace(result, cost=Cost(total=cost * 100, per_call=cost))
    return replace(RunRecord.of("t.py::t", result, **kw), arm=summary)


def _two_arms() -> tuple[RunRecord, RunRecord]:
    ref = ArmSummary("cmp", "a", "a", 0, 30)
    arm = ArmSummary(
        "cmp",
        "b",
        "a",
        0,
        30,
        (
            Ratio("p50", 1.01, 0.97, 1.05, "same", 30),
            Ratio("p95", 1.24, 1.11, 1.49, "worse", 30),
            Ratio("cost_per_call", 0.25, 0.24, 0.26, "better", 30),
        ),
    )
    return _arm_record(ref, 0.004), _arm_record(arm, 0.001)


def test_the_terminal_table_has_one_row_per_arm_with_ratio_and_verdict() -> None:
    text = terminal.render(list(_two_arms()), width=200)
    lines = text.splitlines()
    assert "p95 vs ref" in lines[0] and "$ vs ref" in lines[0]
    assert "ref" in lines[2] and "1.24x worse" in lines[3] and "0.25x better" in lines[3]


def test_a_run_that_is_no_arm_shows_no_ab_column() -> None:
    text = terminal.render([RunRecord.of("t.py::t", make_result(np.full(10, 0.1)))], width=200)
    assert "vs ref" not in text


def test_markdown_lists_each_arm_with_its_intervals() -> None:
    lines = arm_lines(list(_two_arms()))
    assert lines[0] == "### A/B comparisons (99% CI, arm over reference)"
    assert any("1.24x \\[1.11x, 1.49x\\] worse" in line for line in lines)


def test_the_arm_travels_through_json() -> None:
    _, arm = _two_arms()
    back = RunRecord.from_dict(arm.to_dict())
    assert back.arm == arm.arm
    assert back.arm is not None and back.arm.ratio("p95") == Ratio(
        "p95", 1.24, 1.11, 1.49, "worse", 30
    )


def test_a_cheaper_arm_as_fast_as_the_reference_is_a_finding_with_the_monthly_saving() -> None:
    assert "cheaper-arm" in RUN_RULES
    ref, arm = _two_arms()
    fast = ArmSummary(
        "cmp",
        "b",
        "a",
        0,
        30,
        (
            Ratio("p50", 1.0, 0.96, 1.04, "same", 30),
            Ratio("p95", 1.02, 0.9, 1.2, "inconclusive", 30),
            Ratio("cost_per_call", 0.25, 0.24, 0.26, "better", 30),
        ),
    )
    projection = CostProjection(whatif={}, monthly_calls=1_000_000)
    record = _arm_record(fast, 0.001, cost_projection=projection)
    (found,) = [f for f in run_findings(record) if f.rule == "cheaper-arm"]
    assert "arm 'b' is as fast as 'a'" in found.message and "75% less" in found.message
    # $0.004 - $0.001 per call, a million calls a month
    assert found.evidence["monthly_saving"] == pytest.approx(3000.0)
    assert "$3,000.00 a month" in found.message
    # a p95 that is worse, or the reference itself: no finding
    assert not [f for f in run_findings(arm) if f.rule == "cheaper-arm"]
    assert not [f for f in run_findings(ref) if f.rule == "cheaper-arm"]


def test_arm_calls_are_counted_once_per_arm() -> None:
    calls = Schedule(2, 30, 10, ["x"], seed=0).all()
    assert Counter(c.arm for c in calls) == {0: 30, 1: 30}


# ------------------------------------------------------------------------------ end to end


def _usage_agent(tokens: int) -> Any:
    def agent(x: Any) -> Any:
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": tokens, "completion_tokens": 0}}

    return agent


def _async_usage_agent(tokens: int) -> Any:
    async def agent(x: Any) -> Any:
        await asyncio.sleep(0)
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": tokens, "completion_tokens": 0}}

    return agent


@pytest.mark.parametrize("make", [_usage_agent, _async_usage_agent])
@pytest.mark.parametrize(
    "load",
    [{"requests": 200, "concurrency": 16}, {"requests": 100, "rate": 3000}],
    ids=["closed", "open"],
)
def test_every_call_is_split_to_its_own_arm_at_high_concurrency(
    make: Any, load: dict[str, Any]
) -> None:
    """Arms that return at once, 16 calls in flight (closed loop) or a fast shared arrival
    stream (open loop): the cases most likely to confuse which logged row was which arm's
    call. Each arm's tokens say whether any call went astray."""
    from pytest_agentperf.ab import plan_compare

    agents = {"a": make(100), "b": make(10), "c": make(1)}
    settings = {**load, "warmup": 0}
    n = load["requests"]
    plan = plan_compare(agents, ["x", "y"], settings, lambda rest: parse_settings(rest))
    raw = plan.run()
    parts = plan.split(raw, detail=0, prices=None)
    for (name, arm_raw, figures), tokens in zip(parts, (100, 10, 1), strict=True):
        assert len(arm_raw.log) == n, name
        assert arm_raw.usage.usage(n).per_call.total_tokens == tokens, name
        assert set(figures.tokens.tolist()) == {float(tokens)}, name
        assert figures.block.min() >= 0


def test_streamed_arms_compare_their_time_to_first_chunk() -> None:
    from pytest_agentperf.ab import plan_compare
    from pytest_agentperf.ab.result import summaries
    from pytest_agentperf.sim import SimulatedAgent

    quick = SimulatedAgent(ttft="2ms", tokens_per_second=5000, output_tokens=10, seed=1)
    slow = SimulatedAgent(ttft="8ms", tokens_per_second=5000, output_tokens=10, seed=2)
    settings = {"requests": 40, "concurrency": 4, "warmup": 0}
    agents = {"quick": quick.stream, "slow": slow.stream}
    plan = plan_compare(agents, ["hi"], settings, lambda rest: parse_settings(rest))
    parts = plan.split(plan.run(), detail=0, prices=None)
    figures = {name: f for name, _, f in parts}
    assert all(int(np.count_nonzero(~np.isnan(f.ttft))) == 40 for f in figures.values())
    ttft = summaries("s", "quick", 0, plan.blocks, figures)["slow"].ratio("ttft_p95")
    assert ttft is not None and ttft.verdict == "worse" and (ttft.estimate or 0) > 1.3


def test_an_arm_gets_the_memory_of_the_whole_comparison_and_windows_of_its_own() -> None:
    from types import SimpleNamespace

    from pytest_agentperf.ab import arm_fields

    class Counting:
        def result_fields(self, log: Any, duration: float) -> dict[str, Any]:
            return {"memory": ("calls", len(log)), "windows": ("calls", len(log))}

    whole = SimpleNamespace(log=[0] * 30, duration=1.0)
    arm = SimpleNamespace(log=[0] * 10, duration=1.0)
    (fields,) = arm_fields([Counting()], arm, whole)  # type: ignore[list-item, arg-type]
    assert fields == {"memory": ("calls", 30), "windows": ("calls", 10)}


def test_ratio_names_an_unknown_arm_or_metric() -> None:
    arm, ref = _pair(1.0, drift=False)
    result = ab.CompareResult("cmp", "a", 0, 30, {}, calls={"a": ref, "b": arm})
    with pytest.raises(SettingsError, match="no arm named 'c'; the arms are 'a', 'b'"):
        result.ratio("p50", "c")
    with pytest.raises(SettingsError, match="metric='p99': not a compared metric; one of p50"):
        result.ratio("p99", "b")
    assert result.ratio("p50", "a", reference="b").estimate is not None


@given(
    st.lists(st.floats(1e-4, 1.0), min_size=1, max_size=40),
    st.lists(st.floats(0.0, 1.0), min_size=40, max_size=40),
    st.randoms(use_true_random=False),
)
@example(gaps=[1.0, 0.0001], where=[1.0] + [0.0] * 39, rnd=random.Random(0))
@settings(max_examples=40, deadline=None)
def test_a_mark_between_its_start_and_the_next_start_claims_its_own_row(
    gaps: list[float], where: list[float], rnd: Any
) -> None:
    """Whatever the order the rows were logged in and the marks noted in, each call whose mark
    falls before the next call's start (by more than the rounding slack) is matched to its own
    row."""
    starts = np.cumsum(np.array(gaps))
    nxt = np.append(starts[1:], starts[-1] + 1.0)
    room = nxt - starts - 2 * MATCH_SLACK  # a mark within the slack of the next start is that one's
    marks_at = starts + room * np.array(where[: starts.size])
    ids = list(range(100, 100 + starts.size))
    rnd.shuffle(ids)
    marks = [(float(t) + 100.0, i) for t, i in zip(marks_at, ids, strict=True)]
    rnd.shuffle(marks)
    assert rows_to_calls(_log(starts.tolist()), marks).tolist() == ids
