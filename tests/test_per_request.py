"""Per request: LLM calls, tool calls and tokens of each measured call, and their budgets."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from conftest import INI

from pytest_agentperf import record_usage
from pytest_agentperf.assemble import build_result, per_request
from pytest_agentperf.budgets import raise_if_broken
from pytest_agentperf.engine import arun_load, run_load
from pytest_agentperf.engine.log import OK, CallLog, merge
from pytest_agentperf.errors import BudgetExceeded
from pytest_agentperf.results import PerfResult, PerRequest
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.usage import CallScope, UsageRecord, record_tool

# The LLM calls each request makes (one input per request): a fixed, uneven spread with a 0.
LOOPS = [1, 3, 0, 2, 5, 1, 1, 4, 2, 3, 1, 7, 2, 1, 0, 3, 2, 1, 6, 2]


def _agent(k: int) -> None:
    """k LLM calls of 10 + 5 tokens; a tool call after every second LLM call."""
    for i in range(k):
        record_usage(10, 5, model="m")
        if i % 2:
            record_tool("search", 0.001, True)


async def _async_agent(k: int) -> None:
    for i in range(k):
        await asyncio.sleep(0)
        record_usage(10, 5, model="m")
        if i % 2:
            record_tool("search", 0.001, True)


def _expected(values: list[int]) -> PerRequest:
    a = np.asarray(values, dtype=np.float64)
    return PerRequest(float(a.mean()), float(np.percentile(a, 95)), float(a.max()), len(values))


def _result(fn: Any, inputs: Any, **settings: Any) -> PerfResult:
    s = parse_settings({"warmup": 0, **settings})
    if asyncio.iscoroutinefunction(fn):
        raw = asyncio.run(arun_load(fn, inputs, s))
    else:
        raw = run_load(fn, inputs, s)
    return build_result("run", s, raw)


def _check_spread(result: PerfResult) -> None:
    assert result.requests == len(LOOPS)
    assert result.llm_calls == _expected(LOOPS)
    assert result.tool_calls == _expected([k // 2 for k in LOOPS])
    used = [k for k in LOOPS if k]  # tokens: over the calls that recorded usage only
    assert result.tokens == _expected([15 * k for k in used])
    assert result.usage.calls_with_usage == len(used)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_sync_agent_s_llm_and_tool_calls_per_request(concurrency: int) -> None:
    _check_spread(_result(_agent, LOOPS, requests=len(LOOPS), concurrency=concurrency))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_async_agent_s_llm_and_tool_calls_per_request(concurrency: int) -> None:
    _check_spread(_result(_async_agent, LOOPS, requests=len(LOOPS), concurrency=concurrency))


def test_usage_read_from_the_return_value_is_one_llm_call() -> None:
    def agent() -> dict[str, Any]:
        return {"model": "m", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}

    result = _result(agent, None, requests=5)
    assert result.llm_calls == PerRequest(1.0, 1.0, 1.0, 5)
    assert result.tokens == PerRequest(10.0, 10.0, 10.0, 5)


def test_a_run_without_usage_has_unknown_llm_and_tool_calls() -> None:
    result = _result(lambda: None, None, requests=5, max_llm_calls=10, max_tool_calls=3)
    assert result.llm_calls == PerRequest() and result.llm_calls.max is None
    assert result.tool_calls == PerRequest()
    assert result.tokens == PerRequest()
    llm, tools = result.budgets
    assert not llm.passed and llm.value is None
    assert "most LLM calls in one request unknown" in llm.message
    assert "record_usage()" in llm.message
    assert not tools.passed and "record_tool()" in tools.message


def test_a_run_with_usage_but_no_tools_has_unknown_tool_calls_only() -> None:
    result = _result(lambda: record_usage(1, 1), None, requests=4)
    assert result.llm_calls == PerRequest(1.0, 1.0, 1.0, 4)
    assert result.tool_calls == PerRequest()


def test_calls_without_usage_count_zero_llm_calls_once_the_run_has_usage() -> None:
    result = _result(_agent, [0, 0, 0, 4], requests=4)
    assert result.llm_calls == _expected([0, 0, 0, 4])
    assert result.tokens == _expected([60])


def test_a_failed_call_s_llm_calls_count() -> None:
    def agent(k: int) -> None:
        _agent(k)
        if k == 3:
            raise RuntimeError("gave up")

    result = _result(agent, [1, 3], requests=2, error_rate="100%")
    assert result.errors == 1
    assert result.llm_calls == _expected([1, 3])


def test_max_llm_calls_fails_a_run_where_one_request_looped() -> None:
    loops = [2] * 19 + [12]  # one runaway request among twenty
    result = _result(_agent, loops, requests=20, max_llm_calls=10, max_tool_calls=6)
    llm, tools = result.budgets
    assert (llm.name, llm.passed, llm.value, llm.n) == ("max_llm_calls", False, 12.0, 20)
    assert llm.message == "most LLM calls in one request 12 > budget 10 (n=20)"
    assert (tools.name, tools.passed, tools.value) == ("max_tool_calls", True, 6.0)
    assert tools.message == "most tool calls in one request 6 <= budget 6 (n=20)"
    with pytest.raises(BudgetExceeded, match="most LLM calls in one request 12 > budget 10"):
        raise_if_broken(result)


def test_max_llm_calls_holds_at_the_limit() -> None:
    result = _result(_agent, [10, 3], requests=2, max_llm_calls=10)
    assert result.budgets[0].passed
    raise_if_broken(result)


def test_per_request_figures_round_trip_through_json() -> None:
    result = _result(_agent, LOOPS, requests=len(LOOPS))
    back = PerfResult.from_dict(result.to_dict())
    assert (back.llm_calls, back.tool_calls, back.tokens) == (
        result.llm_calls,
        result.tool_calls,
        result.tokens,
    )
    written = result.to_dict()["llm_calls"]
    assert written == pytest.approx({"mean": 2.35, "p95": 6.05, "max": 7.0, "n": 20})


def test_per_request_counts_zeros_in_and_is_unknown_over_no_call() -> None:
    counts = np.asarray([4, 1], dtype=np.int64)
    assert per_request(counts, zeros=2) == _expected([0, 0, 4, 1])
    assert per_request(np.zeros(0, dtype=np.int64)) == PerRequest()


def _logged(log: CallLog, start: float, llm: int, tools: int) -> None:
    scope = CallScope()
    scope.records = [UsageRecord(1, 1) for _ in range(llm)]
    scope.tools = [("t", 0.0, True, 0.0) for _ in range(tools)]
    log.record(start, start + 1.0, OK, None, None, scope if llm or tools else None, None, None)


def test_merge_moves_each_call_s_counts_with_it_when_it_sorts_the_workers_logs() -> None:
    # Two workers whose calls interleave in time; a call's counts are its start time's digit,
    # so after the merge each row's counts must match its start.
    a, b = CallLog(), CallLog()
    for log, starts in ((a, (1.0, 3.0, 5.0)), (b, (2.0, 4.0, 6.0))):
        for s in starts:
            k = int(s)
            _logged(log, s, llm=k if k != 4 else 0, tools=k % 3)
    merged = merge([a, b])
    assert merged.start.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert merged.llm_rows.tolist() == [0, 1, 2, 4, 5]
    assert merged.llm_calls.tolist() == [1, 2, 3, 5, 6]
    assert merged.llm_tokens.tolist() == [2, 4, 6, 10, 12]  # each record is 1 + 1 tokens
    assert merged.tool_rows.tolist() == [0, 1, 3, 4]
    assert merged.tool_calls.tolist() == [1, 2, 1, 2]


def test_merge_leaves_out_counts_of_a_row_not_complete_yet() -> None:
    log = CallLog()
    _logged(log, 1.0, llm=2, tools=1)
    log.llm_rows.append(1)  # a call being recorded: its pairs come before its start and end
    log.llm_calls.append(9)
    merged = merge([log])
    assert merged.llm_rows.tolist() == [0] and merged.llm_calls.tolist() == [2]
    assert merged.llm_tokens.tolist() == [4]


def test_a_plain_call_that_records_nothing_adds_no_sparse_row() -> None:
    log = CallLog()
    log.record(0.0, 1.0, OK, None, None, None, None, None)
    assert len(log) == 1
    assert not (log.llm_rows or log.llm_calls or log.llm_tokens or log.tool_rows)


MARKED = """
import pytest
from pytest_agentperf import record_usage

def looping(k):
    for _ in range(k):
        record_usage(100, 20, model="m")

@pytest.mark.agent_perf(requests=8, concurrency=2, warmup=0, max_llm_calls=10)
def test_loop(agentperf):
    agentperf.run(looping, inputs=[1, 2, 3, 12, 2, 1, 2, 3])
"""


def test_a_marker_budget_fails_the_test_that_looped(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_loop=MARKED)
    out = pytester.runpytest("-p", "no:randomly")
    out.assert_outcomes(failed=1)
    out.stdout.fnmatch_lines(["*most LLM calls in one request 12 > budget 10 (n=8)*"])
