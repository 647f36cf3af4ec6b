"""End-to-end: tokens, cost budgets, price overrides, what-if and LangChain, through pytester."""

from __future__ import annotations

import json

import pytest
from conftest import INI

pytest_plugins = ["pytester"]

MINI = 1000 * 0.15e-6 + 200 * 0.6e-6  # gpt-4o-mini, per call


def test_cost_budgets_pass_and_the_table_shows_tokens_and_cost(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        f"""
        import pytest
        from agents import priced

        @pytest.mark.agent_perf(requests=10, cost_per_call="$0.001", total_cost="$0.01",
                                tokens_per_call=1200, output_tokens_per_call=200)
        def test_agent(agentperf):
            r = agentperf.run(priced)
            assert r.usage.per_call.total_tokens == 1200
            assert r.cost.per_call == pytest.approx({MINI!r})
            assert r.cost.total == pytest.approx({MINI * 10!r})
        """
    )
    result = agents.runpytest("--agentperf-columns=all")
    result.assert_outcomes(passed=1)
    # $0.00027 a call: the table shows it per 1,000 calls
    result.stdout.fnmatch_lines(["*tok/call*$/1k calls*", "*test_agent*1,200*$0.27*PASS*"])


def test_cost_budget_broken(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import priced

        @pytest.mark.agent_perf(requests=5, cost_per_call="$0.0001", tokens_per_call=1000)
        def test_agent(agentperf):
            agentperf.run(priced)
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: 2 budgets exceeded in run 'default':",
            "*cost per call $0.00027 > budget $0.0001 (n=5)",
            "*tokens per call 1200 > budget 1000 (n=5)",
        ]
    )


def test_unknown_model_fails_a_cost_budget_with_the_hint(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import local

        @pytest.mark.agent_perf(requests=5, cost_per_call="$0.01")
        def test_agent(agentperf):
            r = agentperf.run(local, check=False)
            assert r.usage.known and r.cost.total is None and r.cost.per_call is None
            assert r.cost.unknown_models == ("my-llm",)
            agentperf.run(local)
        """
    )
    result = agents.runpytest("--agentperf-columns=all")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cost per call unknown (budget $0.01): no price for model my-llm: add its price*"
            "agentperf_prices*"
        ]
    )
    result.stdout.fnmatch_lines(["*test_agent*[[]default-2[]]*1,200*-*FAIL cost_per_call*"])


def test_price_override_file_from_the_ini(agents: pytest.Pytester) -> None:
    agents.makeini(INI + "agentperf_prices = config/prices.json\n")
    prices = agents.mkdir("config") / "prices.json"
    prices.write_text(
        json.dumps({"my-llm": {"input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06}})
    )
    agents.makepyfile(
        """
        import pytest
        from agents import local, priced

        @pytest.mark.agent_perf(requests=4, cost_per_call="$0.01")
        def test_agent(agentperf):
            r = agentperf.run(local)
            assert r.cost.per_call == pytest.approx(1000 * 1e-06 + 200 * 5e-06)
            assert agentperf.run(priced).cost.per_call is not None  # bundled prices still there
        """
    )
    agents.mkdir("sub")
    result = agents.runpytest("--rootdir", str(agents.path), str(agents.path))
    result.assert_outcomes(passed=1)


def test_malformed_price_file_is_a_clear_usage_error(agents: pytest.Pytester) -> None:
    agents.makeini(INI + "agentperf_prices = prices.json\n")
    (agents.path / "prices.json").write_text('{"my-llm": {"input_cost_per_token": "cheap"}}')
    agents.makepyfile("def test_nothing():\n    pass\n")
    result = agents.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*price file *prices.json: model 'my-llm': input_cost_per_token must be a non-negative*"]
    )


def test_marker_model_prices_calls_that_name_no_model(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        f"""
        import pytest
        from agents import nameless

        @pytest.mark.agent_perf(requests=3, model="gpt-4o-mini", cost_per_call="$0.001")
        def test_default_model(agentperf):
            r = agentperf.run(nameless)
            assert list(r.usage.by_model) == ["gpt-4o-mini"]
            assert r.cost.per_call == pytest.approx({MINI!r})

        @pytest.mark.agent_perf(requests=3, cost_per_call="$0.001")
        def test_no_model_at_all(agentperf):
            agentperf.run(nameless)
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*cost per call unknown*some calls reported tokens but no model name: set model=*"]
    )


def test_no_usage_is_unknown_not_zero(agents: pytest.Pytester) -> None:
    agents.makepyfile(
        """
        import pytest
        from agents import silent

        @pytest.mark.agent_perf(requests=3, tokens_per_call=100)
        def test_agent(agentperf):
            agentperf.run(silent)
        """
    )
    result = agents.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tokens per call unknown (budget 100)*record_usage*"])


def test_whatif_and_monthly_projection(agents: pytest.Pytester) -> None:
    agents.makeini(INI + "agentperf_monthly_calls = 1_000_000\n")
    agents.makepyfile(
        """
        from agents import priced, local

        def test_agent(agentperf):
            agentperf.run(priced, requests=4, name="priced")
            agentperf.run(local, requests=4, name="local")
        """
    )
    result = agents.runpytest(
        "--agentperf-cost-whatif=gpt-4.1-nano,claude-haiku-4-5",
        "--agentperf-json=out.json",
        "--agentperf-columns=all",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*$/1k calls*$/month @1M*",
            "*[[]priced[]]*$0.27*$270*",
            "cost what-if (same tokens)*now $/call*gpt-4.1-nano $/call*claude-haiku-4-5 $/call",
            "*[[]priced[]]*$0.00027 ($270.00/mo)*$0.00018 ($180.00/mo)*$0.002 ($2,000.00/mo)*",
            "*[[]local[]]*-*$0.00018 ($180.00/mo)*$0.002 ($2,000.00/mo)*",
        ]
    )
    runs = json.loads((agents.path / "out.json").read_text())["runs"]
    priced = next(r for r in runs if r["name"] == "priced")
    proj = priced["cost_projection"]
    assert proj["monthly_calls"] == 1_000_000
    assert proj["monthly_cost"] == pytest.approx(1_000_000 * MINI)
    assert proj["whatif"]["gpt-4.1-nano"] == pytest.approx(1000 * 1e-07 + 200 * 4e-07)
    local = next(r for r in runs if r["name"] == "local")
    assert local["cost_projection"]["monthly_cost"] is None


def test_whatif_of_an_unpriced_model_is_a_usage_error(agents: pytest.Pytester) -> None:
    agents.makepyfile("def test_nothing():\n    pass\n")
    result = agents.runpytest("--agentperf-cost-whatif=gpt-4o-mni")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no price for model 'gpt-4o-mni' (did you mean*gpt-4o-mini*"])


def test_monthly_calls_must_be_a_count(agents: pytest.Pytester) -> None:
    agents.makeini(INI + "agentperf_monthly_calls = lots\n")
    agents.makepyfile("def test_nothing():\n    pass\n")
    result = agents.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*agentperf_monthly_calls = 'lots': must be a positive whole*"])


LANGCHAIN_TEST = """
import itertools
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.tools import tool

def model():
    usage = {"input_tokens": 30, "output_tokens": 10, "total_tokens": 40}
    # itertools.repeat, not a generator: the sync agent runs on 4 threads at once, and a
    # generator raises "already executing" when two threads advance it together.
    return GenericFakeChatModel(messages=itertools.repeat(
        AIMessage("ok", usage_metadata=usage, response_metadata={"model_name": "gpt-4o-mini"})))

@tool
def lookup(key: str) -> str:
    \"\"\"Look a key up.\"\"\"
    return key.upper()

def make_agent():
    chain = model() | StrOutputParser()
    def agent(q):
        lookup.invoke({"key": q})
        return chain.invoke(q) + chain.invoke(q)   # two model calls, returns a str
    return agent

@pytest.mark.agent_perf(requests=20, concurrency=4, tokens_per_call=80, cost_per_call="$0.0001")
def test_sync_agent_on_threads(agentperf):
    r = agentperf.run(make_agent(), ["a", "b"])
    assert r.usage.per_call.total_tokens == 80
    assert r.usage.by_model["gpt-4o-mini"].calls == 40
    assert r.tools["lookup"].calls == 20 and r.tools["lookup"].errors == 0

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=20, concurrency=4, tokens_per_call=40)
async def test_runnable(agentperf):
    r = await agentperf.arun(model() | StrOutputParser(), ["a"])
    assert r.usage.per_call.total_tokens == 40   # counted once, by the callback
"""


def test_langchain_usage_and_tools_with_no_wiring(agents: pytest.Pytester) -> None:
    agents.makepyfile(test_lc=LANGCHAIN_TEST)
    result = agents.runpytest()
    result.assert_outcomes(passed=2)
