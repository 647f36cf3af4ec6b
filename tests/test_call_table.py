"""The per-call table (``PerfResult.calls``): what runs keep of each call for the outputs
that read them (per-call log, OpenMetrics, OpenTelemetry), and where a call's time went."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import numpy as np
import pytest

from pytest_agentperf import record_usage
from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import KEEP_CALLS, KEEP_CONTENT, arun_load, run_load
from pytest_agentperf.integrations.proxy import instrument_methods
from pytest_agentperf.record import RunRecord, RunStatus
from pytest_agentperf.results import CHAT, TOOL, CallTable, PerfResult
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.usage import record_tool


def _agent(k: int) -> str:
    """Call ``k``: sleeps a little (so workers' logs interleave), records k+1 input and 2k
    output tokens on model "gpt-4o-mini", a tool call on every third, and fails on every
    fifth."""
    time.sleep(random.Random(k).uniform(0.0, 0.004))
    record_usage(k + 1, 2 * k, model="gpt-4o-mini")
    if k % 3 == 0:
        record_tool("search", 0.001, k % 2 == 0)
    if k % 5 == 4:
        raise ValueError(f"bad {k}")
    return f"answer {k}"


async def _async_agent(k: int) -> str:
    await asyncio.sleep(random.Random(k).uniform(0.0, 0.004))
    record_usage(k + 1, 2 * k, model="gpt-4o-mini")
    if k % 3 == 0:
        record_tool("search", 0.001, k % 2 == 0)
    if k % 5 == 4:
        raise ValueError(f"bad {k}")
    return f"answer {k}"


def _run(fn: Any, detail: int, **settings: Any) -> PerfResult:
    s = parse_settings({"warmup": 2, "requests": 40, "concurrency": 4, **settings})
    inputs = list(range(40))
    if asyncio.iscoroutinefunction(fn):
        raw = asyncio.run(arun_load(fn, inputs, s, detail=detail))
    else:
        raw = run_load(fn, inputs, s, detail=detail)
    return build_result("run", s, raw)


def _input_of(calls: CallTable, row: int) -> int:
    """The input k of a row, from the tokens it recorded (k + 1 input tokens)."""
    return int(calls.input_tokens[row]) - 1


@pytest.mark.parametrize("fn", [_agent, _async_agent], ids=["sync", "async"])
def test_each_row_keeps_its_own_call_after_the_workers_logs_are_merged(fn: Any) -> None:
    calls = _run(fn, KEEP_CALLS).calls
    assert calls is not None and len(calls) == 40
    assert np.all(np.diff(calls.start) >= 0)  # in order of start
    assert np.array_equal(calls.actual, calls.start)  # closed loop: started when meant to
    assert np.all(calls.end >= calls.start)
    ks = [_input_of(calls, row) for row in range(40)]
    assert sorted(ks) == list(range(40))  # every call once, tokens still with their call
    assert all(calls.output_tokens[row] == 2 * k for row, k in enumerate(ks))
    # errors: the rows whose k is 4 mod 5, with their type; the status column agrees
    failed = [row for row, k in enumerate(ks) if k % 5 == 4]
    assert calls.error_rows.tolist() == failed
    assert calls.error_types == ("ValueError",) * len(failed)
    assert np.flatnonzero(calls.status).tolist() == failed
    # cost: the bundled price of gpt-4o-mini, per call
    assert calls.name(int(calls.model[0])) == "gpt-4o-mini"
    assert all(0 < calls.cost[row] < 1e-4 for row in range(40))
    # spans: one chat per call (untimed: record_usage takes no times), a tool on k % 3 == 0
    spans = calls.spans
    chats = spans.call[spans.kind == CHAT].tolist()
    tools = spans.call[spans.kind == TOOL].tolist()
    assert chats == list(range(40))
    assert tools == [row for row, k in enumerate(ks) if k % 3 == 0]
    assert np.all(np.isnan(spans.start[spans.kind == CHAT]))
    tool_rows = np.flatnonzero(spans.kind == TOOL)
    for i in tool_rows.tolist():
        row, k = int(spans.call[i]), ks[int(spans.call[i])]
        assert spans.ok[i] == (k % 2 == 0)
        assert calls.name(int(spans.name[i])) == "search"
        # the tool ended inside its call, 1 ms after it started
        assert calls.start[row] - 1e-3 <= spans.start[i] <= spans.end[i] <= calls.end[row]
        assert spans.end[i] - spans.start[i] == pytest.approx(0.001)
    assert calls.inputs == () and calls.outputs == ()  # no text without KEEP_CONTENT


def test_without_detail_a_run_keeps_no_table() -> None:
    assert _run(_agent, 0).calls is None


@pytest.mark.parametrize("fn", [_agent, _async_agent], ids=["sync", "async"])
def test_content_keeps_each_call_s_input_and_output_text(fn: Any) -> None:
    calls = _run(fn, KEEP_CONTENT).calls
    assert calls is not None
    for row in range(40):
        k = _input_of(calls, row)
        assert calls.inputs[row] == str(k) or calls.inputs[row] == repr(k)
        assert calls.outputs[row] == (None if k % 5 == 4 else f"answer {k}")


def test_content_is_redacted_and_cut() -> None:
    def agent(_k: int) -> str:
        return "key sk-abcdefghijklmnopqrstuvwxyz0123456789 " + "x" * 10_000

    calls = _run(agent, KEEP_CONTENT, requests=2, concurrency=1).calls
    assert calls is not None
    text = calls.outputs[0]
    assert text is not None and "sk-abcdefghijklmnop" not in text
    assert len(text) <= 4000


@pytest.mark.parametrize("fn", [_agent, _async_agent], ids=["sync", "async"])
def test_open_loop_keeps_each_call_s_actual_start(fn: Any) -> None:
    calls = _run(fn, KEEP_CALLS, rate=400, arrival="constant", concurrency=None).calls
    assert calls is not None and len(calls) == 40
    assert np.allclose(calls.start, np.arange(40) / 400)  # the arrivals, as planned
    late = calls.actual - calls.start
    assert np.all(late >= 0) and np.all(calls.end >= calls.actual)


def test_the_table_crosses_json_whole_and_exact() -> None:
    """A table is never cut to ``max_samples`` (its rows must stay aligned), and costs of a
    few millionths of a dollar are not rounded away."""
    result = _run(_agent, KEEP_CONTENT)
    record = RunRecord(nodeid="t.py::test", name="run", status=RunStatus.PASS, result=result)
    back = RunRecord.from_dict(record.to_dict(max_samples=5))
    a, b = result.calls, back.result.calls
    assert a is not None and b is not None and len(b) == 40
    assert np.array_equal(a.cost, b.cost)
    assert np.array_equal(a.input_tokens, b.input_tokens) and b.input_tokens.dtype == np.int64
    assert np.array_equal(a.status, b.status) and b.status.dtype == np.int8
    assert np.allclose(a.start, b.start, atol=1e-6)
    assert a.error_types == b.error_types and a.names == b.names
    assert a.outputs == b.outputs and a.t0_unix == b.t0_unix
    assert np.array_equal(a.spans.call, b.spans.call)
    assert np.array_equal(np.isnan(a.spans.start), np.isnan(b.spans.start))
    assert abs(a.t0_unix - time.time()) < 60


class _FakeCompletions:
    """A client method taking 30 ms, answering with usage, as an SDK would."""

    def create(self, **kwargs: Any) -> dict[str, Any]:
        time.sleep(0.03)
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 5, "completion_tokens": 7}}


class _FakeClient:
    def __init__(self) -> None:
        self.completions = _FakeCompletions()


def test_time_share_splits_a_call_into_model_tools_and_own_code() -> None:
    """30 ms in the (instrumented) model, 10 ms in a tool, 10 ms of its own: 0.6 / 0.2 / 0.2
    of each call (generous bounds: sleeps run long on a busy machine)."""
    client = instrument_methods(_FakeClient(), ["completions.create"], is_async=False)

    def agent(_k: int) -> None:
        client.completions.create(model="gpt-4o-mini")
        t0 = time.perf_counter()
        time.sleep(0.01)
        record_tool("search", time.perf_counter() - t0, True)
        time.sleep(0.01)

    result = _run(agent, KEEP_CALLS, requests=8, concurrency=2, warmup=0)
    share = result.time_share
    assert share.timed_llm_calls == 8
    assert share.model is not None and 0.35 < share.model < 0.8
    assert share.tools is not None and 0.08 < share.tools < 0.35
    assert share.own is not None and 0.05 < share.own < 0.45
    assert share.model + share.tools + share.own == pytest.approx(1.0)
    calls = result.calls
    assert calls is not None
    chat = calls.spans.kind == CHAT
    assert not np.any(np.isnan(calls.spans.start[chat]))  # the proxy timed each request
    assert np.all(calls.spans.end[chat] - calls.spans.start[chat] >= 0.03)


def test_time_share_is_unknown_without_timed_operations() -> None:
    share = _run(lambda _k: record_usage(1, 1), 0, requests=3).time_share
    assert (share.model, share.tools, share.own) == (None, None, None)
