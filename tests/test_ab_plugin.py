"""End-to-end A/B comparisons through pytester: ``agentperf.compare`` / ``acompare``, settings
errors, the comparison's budgets and the arms in the table and the reports."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

ARMS = """
import asyncio, time
from pytest_agentperf import record_usage
from pytest_agentperf.usage import record_tool

SEEN = {"big": [], "small": []}

def big(x):
    SEEN["big"].append(x)
    time.sleep(0.002)
    record_tool("search", 0.001, True)
    return {"model": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}

def small(x):
    SEEN["small"].append(x)
    time.sleep(0.002)
    return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 500, "completion_tokens": 100}}

async def abig(x=None):
    await asyncio.sleep(0.002)
    record_usage(input_tokens=100, output_tokens=10, model="gpt-4o")
    await asyncio.sleep(0)
    record_usage(input_tokens=100, output_tokens=10, model="gpt-4o")

async def asmall(x=None):
    await asyncio.sleep(0.002)
    record_usage(input_tokens=50, output_tokens=5, model="gpt-4o-mini")
"""


@pytest.fixture
def arms(agents: pytest.Pytester) -> pytest.Pytester:
    agents.makepyfile(arms=ARMS)
    return agents


def test_each_arm_gets_a_full_result_of_its_own_calls(arms: pytest.Pytester) -> None:
    """Sync arms (closed loop, open loop, bounded by time) and async arms that record usage
    inside their calls: each arm's figures are its own calls' only."""
    arms.makepyfile(
        """
        import pytest
        from collections import Counter
        from arms import SEEN, abig, asmall, big, small

        def test_models(agentperf):
            r = agentperf.compare({"big": big, "small": small}, ["a", "b", "c"],
                                  requests=30, concurrency=3, warmup=2, check=False)
            assert list(r.arms) == ["big", "small"] and r.reference == "big"
            b, s = r.arms["big"], r.arms["small"]
            assert b.requests == s.requests == 30 and b.errors == s.errors == 0
            assert set(b.usage.by_model) == {"gpt-4o"} and set(s.usage.by_model) == {"gpt-4o-mini"}
            assert b.usage.per_call.total_tokens == 1200 and s.usage.per_call.total_tokens == 600
            assert b.cost.per_call > 10 * s.cost.per_call
            assert b.tools["search"].calls == 30 and not s.tools
            # the same inputs for both arms (warmup: 2 calls each)
            assert len(SEEN["big"]) == len(SEEN["small"]) == 32
            assert Counter(SEEN["big"]) == Counter(SEEN["small"])
            cost = r.ratio("cost_per_call", "small")
            assert cost.verdict == "better" and cost.estimate < 0.1
            tokens = r.ratio("tokens_per_call", "small")
            assert tokens.estimate == 0.5 and tokens.low == tokens.high == 0.5
            assert r.ratio("tokens_per_call", "big", reference="small").estimate == 2.0
            assert r.ratio("error_rate", "small").estimate == 0.0
            assert r.seed == 0 and r.blocks == 30
            assert "small" in r.table() and "reference" in r.table()

        @pytest.mark.asyncio
        @pytest.mark.agent_perf(concurrency=4)
        async def test_async(agentperf):
            r = await agentperf.acompare({"big": abig, "small": asmall}, name="prompts",
                                         requests=20)
            assert r.name == "prompts"
            assert r.arms["big"].usage.per_call.total_tokens == 220
            assert r.arms["big"].llm_calls.mean == 2
            assert r.arms["small"].usage.per_call.total_tokens == 55
            assert r.ratio("tokens_per_call", "small").estimate == 0.25

        def test_open(agentperf):
            r = agentperf.compare({"big": big, "small": small}, ["x"], rate=400, requests=15,
                                  warmup=0, check=False, name="open")
            assert r.arms["big"].requests == r.arms["small"].requests == 15
            assert r.arms["big"].shape.rate == 400

        def test_time(agentperf):
            r = agentperf.compare({"big": big, "small": small}, ["x"], duration="0.3s",
                                  warmup=0, check=False, name="time")
            n_big, n_small = r.arms["big"].requests, r.arms["small"].requests
            assert n_big > 10 and abs(n_big - n_small) <= 10
            assert r.blocks >= 2
            assert r.ratio("tokens_per_call", "small").estimate == 0.5
        """
    )
    result = arms.runpytest("-p", "no:randomly", "--agentperf-columns=n,p95,cost,ab,abcost")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*p95 vs ref*$ vs ref*",
            "*test_models [[]compare/big[]]*30*ref*ref*PASS*",
            "*test_models [[]compare/small[]]*30*0.*x better*PASS*",
            "*test_async [[]prompts/big[]]*",
            "*test_async [[]prompts/small[]]*",
        ]
    )


BAD = [
    ('{"only": big}', "compare() needs two or more arms to compare, got only 'only'"),
    ('{"big": big, "small": 3}', "arm 'small' is a int, not an agent"),
    ('{"big": big, "Big": small}', "arm names 'big' and 'Big' are the same name"),
    ('{"big": big, "": small}', "arm name '': each arm needs a non-empty str name"),
    ("[big, small]", "arms=list: compare() takes a mapping of arm names to agents"),
    ('{"big": big, "small": small}, max_slowdown="fast"', "max_slowdown='fast': malformed"),
    ('{"big": big, "small": small}, reqests=3', "unknown setting 'reqests'"),
    ('{"big": big, "small": small}, workers=2', "workers= does not apply to agentperf.compare"),
]


def test_settings_errors_fail_the_test_and_say_what_to_change(arms: pytest.Pytester) -> None:
    tests = "\n".join(
        f"def test_bad_{i}(agentperf):\n    agentperf.compare({source})\n"
        for i, (source, _) in enumerate(BAD)
    )
    arms.makepyfile("from arms import big, small\n\n" + tests)
    result = arms.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=len(BAD))
    for _, message in BAD:
        result.stdout.fnmatch_lines([f"E * pytest_agentperf.errors.SettingsError: {message}*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_max_slowdown_fails_an_arm_slower_beyond_doubt(
    arms: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELAY_SLOW", "0.03")
    monkeypatch.setenv("DELAY_FAST", "0.005")
    arms.makepyfile(
        """
        from agents import make

        def test_slow(agentperf):
            agentperf.compare({"fast": make("fast"), "slow": make("slow")}, requests=20,
                              concurrency=2, max_slowdown="5%", max_cost_increase="10%")

        def test_unchecked(agentperf):
            r = agentperf.compare({"fast": make("fast"), "slow": make("slow")}, requests=20,
                                  max_slowdown="5%", check=False)
            assert not r.passed
            (check,) = r.budgets
            assert check.name == "max_slowdown" and not check.passed
            assert r.ratio("p50", "slow").verdict == "worse"
        """
    )
    result = arms.runpytest("-p", "no:randomly", "--agentperf-columns=p95,ab")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: 2 budgets exceeded in comparison 'compare':",
            "*arm 'slow': max_slowdown: arm 'slow' p* latency is *x that of 'fast' (99% CI *"
            "beyond the 5% allowed*",
            "*arm 'slow': max_cost_increase: the cost of arm 'slow' or 'fast' is unknown*",
            "*test_slow [[]compare/fast[]]*PASS*",
            "*test_slow [[]compare/slow[]]*worse*FAIL max_slowdown, max_cost_increase*",
        ]
    )


def test_the_arms_reach_json_markdown_and_html(arms: pytest.Pytester) -> None:
    pytest.importorskip("jinja2")
    arms.makepyfile(
        """
        from arms import big, small

        def test_models(agentperf):
            agentperf.compare({"big": big, "small": small}, ["x"], requests=10, warmup=0)
        """
    )
    result = arms.runpytest(
        "--agentperf-json=out.json", "--agentperf-markdown=out.md", "--agentperf-html=out.html"
    )
    result.assert_outcomes(passed=1)
    runs = json.loads((arms.path / "out.json").read_text())["runs"]
    assert [r["name"] for r in runs] == ["compare/big", "compare/small"]
    assert runs[0]["arm"]["reference"] == "big" and runs[0]["arm"]["ratios"] == []
    ratios = {r["metric"]: r for r in runs[1]["arm"]["ratios"]}
    assert ratios["cost_per_call"]["verdict"] == "better"
    markdown = (arms.path / "out.md").read_text()
    assert "### A/B comparisons (99% CI, arm over reference)" in markdown
    assert "p95 vs ref" in markdown
    html = (arms.path / "out.html").read_text()
    assert "A/B comparison compare: arm small against big" in html
    assert 'class="ratio-bar"' in html
