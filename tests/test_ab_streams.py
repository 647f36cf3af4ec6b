"""A/B comparisons end to end: each arm gets its own gaps between stream chunks, and
``abort_on`` stops a comparison on every arm's calls together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from pytest_agentperf.ab import plan_compare
from pytest_agentperf.settings import parse_settings

pytest_plugins = ["pytester"]


def _streamer(chunks: int, gap: float) -> Any:
    async def agent(x: Any = None) -> AsyncIterator[str]:
        for i in range(chunks):
            if i:
                await asyncio.sleep(gap)
            yield "tok"

    return agent


def test_the_split_gives_each_arm_exactly_its_streams_gaps() -> None:
    """5 gaps of 10 ms per call against 2 of 1 ms, 16 calls in flight: each arm's log holds
    its own calls' gaps, each with its row."""
    agents = {"long": _streamer(6, 0.010), "short": _streamer(3, 0.001)}
    settings = {"requests": 30, "concurrency": 16, "warmup": 0}
    plan = plan_compare(agents, ["x"], settings, lambda rest: parse_settings(rest))
    raw = plan.run()
    assert raw.log.itl.size == 30 * 5 + 30 * 2
    arms = {name: arm.log for name, arm, _ in plan.split(raw, detail=0, prices=None)}
    long, short = arms["long"], arms["short"]
    assert long.itl_rows.tolist() == list(range(30)) and set(long.itl_counts.tolist()) == {5}
    assert short.itl_rows.tolist() == list(range(30)) and set(short.itl_counts.tolist()) == {2}
    assert float(long.itl.min()) >= 0.009  # a sleep is never much shorter than asked
    assert float(np.median(short.itl)) < float(np.median(long.itl)) / 2


def test_abort_on_watches_the_comparison_and_the_arms_keep_their_budgets() -> None:
    settings = {"requests": 10, "error_rate": "5%", "p95": "1s", "abort_on": ["error_rate"]}
    agents = {"a": _streamer(1, 0.0), "b": _streamer(1, 0.0)}
    plan = plan_compare(agents, None, settings, lambda rest: parse_settings(rest))
    watched = plan.observer_settings()
    assert watched.abort_on == ("error_rate",) and dict(watched.budgets) == {"error_rate": 0.05}
    assert plan.engine_settings.abort_on == () and not plan.engine_settings.budgets
    assert dict(plan.settings.budgets) == {"error_rate": 0.05, "p95": 1.0}


STREAMS = """
import asyncio, time

def quick(x=None):
    for i in range(4):  # 3 gaps of about 2 ms
        if i:
            time.sleep(0.002)
        yield "tok"

def slow(x=None):
    for i in range(3):  # 2 gaps of at least 10 ms
        if i:
            time.sleep(0.010)
        yield "tok"

async def aquick(x=None):
    for i in range(4):
        if i:
            await asyncio.sleep(0.002)
        yield "tok"

async def aslow(x=None):
    for i in range(3):
        if i:
            await asyncio.sleep(0.010)
        yield "tok"

def ok(x=None):
    time.sleep(0.001)
    return "fine"

def broken(x=None):
    time.sleep(0.001)
    raise ValueError("boom")
"""


@pytest.fixture
def streams(agents: pytest.Pytester) -> pytest.Pytester:
    agents.makepyfile(streams=STREAMS)
    return agents


def test_each_arm_gets_the_gaps_of_its_own_streams(streams: pytest.Pytester) -> None:
    streams.makepyfile(
        """
        import pytest
        from streams import aquick, aslow, quick, slow

        def test_gaps(agentperf):
            r = agentperf.compare({"quick": quick, "slow": slow}, requests=20, concurrency=2,
                                  warmup=1, check=False)
            q, s = r.arms["quick"], r.arms["slow"]
            assert q.errors == s.errors == 0
            assert q.itl.n == 3 * 20 and s.itl.n == 2 * 20
            assert min(s.itl.samples) >= 0.0095  # a sleep is never shorter than asked
            assert q.itl.p50 < s.itl.p50 / 2
            assert q.ttft.n == s.ttft.n == 20

        @pytest.mark.asyncio
        async def test_async_gaps(agentperf):
            r = await agentperf.acompare({"quick": aquick, "slow": aslow}, requests=20,
                                         concurrency=4, warmup=0, check=False, name="async")
            q, s = r.arms["quick"], r.arms["slow"]
            assert q.itl.n == 3 * 20 and s.itl.n == 2 * 20
            assert min(s.itl.samples) >= 0.009
            assert q.itl.p50 < s.itl.p50 / 2
        """
    )
    result = streams.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_abort_on_stops_a_comparison_whose_error_rate_blows_up(streams: pytest.Pytester) -> None:
    streams.makepyfile(
        """
        import pytest
        from pytest_agentperf import BudgetExceeded
        from streams import broken, ok

        def test_aborted(agentperf):
            r = agentperf.compare({"ok": ok, "broken": broken}, requests=300, concurrency=2,
                                  warmup=0, error_rate="5%", abort_on=["error_rate"],
                                  check=False)
            a, b = r.arms["ok"], r.arms["broken"]
            assert a.aborted is not None and a.aborted == b.aborted
            assert a.aborted.startswith("aborted after") and "error rate" in a.aborted
            assert a.requests + b.requests < 2 * 300  # stopped well before every call ran
            assert b.errors == b.requests and a.errors == 0
            assert not r.passed

        def test_raises(agentperf):
            with pytest.raises(BudgetExceeded, match="aborted after"):
                agentperf.compare({"ok": ok, "broken": broken}, requests=300, warmup=0,
                                  error_rate="5%", abort_on="any", name="again")
        """
    )
    result = streams.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_the_spend_guard_stops_a_comparison_at_the_arms_budgets_together(
    streams: pytest.Pytester,
) -> None:
    """``total_tokens`` is each arm's; the comparison's calls are watched live and stop once
    the arms together spent what their budgets allow together (before, a comparison ran
    unguarded to its last call)."""
    streams.makepyfile(
        """
        from pytest_agentperf import record_usage

        def spend():
            record_usage(input_tokens=10, output_tokens=2, model="gpt-4o-mini")

        def test_guarded(agentperf):
            r = agentperf.compare({"a": spend, "b": spend}, requests=2000, concurrency=2,
                                  warmup=0, total_tokens=120, check=False)
            a, b = r.arms["a"], r.arms["b"]
            assert a.aborted is not None and "spend guard" in a.aborted, a.aborted
            total = a.usage.total_tokens + b.usage.total_tokens
            # 12 tokens a call: 240 for both arms, plus at most the calls in flight
            assert 240 <= total <= 240 + 2 * 12, total
            assert a.requests + b.requests < 100
        """
    )
    streams.runpytest("-p", "no:randomly").assert_outcomes(passed=1)
