"""Every requested call ends as a success or an error, whatever the agent does."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf import record_usage
from pytest_agentperf.assemble import build_result
from pytest_agentperf.budgets import raise_if_broken
from pytest_agentperf.engine import RawRun, arun_load, run_load
from pytest_agentperf.engine.log import ERROR, OK, CallLog, merge
from pytest_agentperf.errors import BudgetExceeded
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.usage import CallScope, UsageAccumulator


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class Hostile:
    """A result whose every unknown attribute raises something other than AttributeError."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no attribute {name} here")


def _nan_usage() -> dict[str, Any]:
    return {"usage": {"prompt_tokens": float("nan"), "completion_tokens": 3}}


def _sync_stream(items: list[str], fail: bool = False) -> Iterator[str]:
    yield from items
    if fail:
        raise ConnectionError("stream cut")


async def _async_stream(items: list[str], fail: bool = False) -> AsyncIterator[str]:
    for item in items:
        await asyncio.sleep(0)
        yield item
    if fail:
        raise ConnectionError("stream cut")


TIMEOUT = 0.3  # generous: a quick call must not time out on a busy machine

# behaviour -> the error type it must be counted as (None: a success)
EXPECTED: dict[str, str | None] = {
    "ok": None,
    "usage": None,
    "raise": "ValueError",
    "bad_str": "BadStr",
    "hostile_result": "UsageExtractionError",
    "nan_usage": "UsageExtractionError",
    "bad_record": "InvalidUsage",
    "nan_record": "InvalidUsage",
    "stream": None,
    "empty_stream": "EmptyStream",
    "broken_stream": "ConnectionError",
    "hostile_chunk": "UsageExtractionError",
    "timeout": "Timeout",
    "cancelled": "CancelledError",  # async only
    "inner_cancelled": "CancelledError",  # async only
}
SYNC_BEHAVIOURS = [b for b in EXPECTED if "cancelled" not in b]


def _sync_agent(behaviour: str) -> Any:
    if behaviour == "usage":
        return {"usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    if behaviour == "raise":
        raise ValueError("boom")
    if behaviour == "bad_str":
        raise BadStr
    if behaviour == "hostile_result":
        return Hostile()
    if behaviour == "nan_usage":
        return _nan_usage()
    if behaviour == "bad_record":
        record_usage(1, 1, model=123)  # type: ignore[arg-type]
    if behaviour == "nan_record":
        record_usage(float("nan"), 1)  # type: ignore[arg-type]
    if behaviour == "stream":
        return _sync_stream(["a", "b"])
    if behaviour == "empty_stream":
        return _sync_stream([])
    if behaviour == "broken_stream":
        return _sync_stream(["a"], fail=True)
    if behaviour == "hostile_chunk":
        return iter([Hostile()])
    if behaviour == "timeout":
        time.sleep(TIMEOUT * 10)
    return "fine"


async def _async_agent(behaviour: str) -> Any:
    await asyncio.sleep(0)
    if behaviour == "cancelled":
        raise asyncio.CancelledError
    if behaviour == "inner_cancelled":
        inner = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        inner.cancel()
        await inner
    if behaviour == "stream":
        return _async_stream(["a", "b"])
    if behaviour == "empty_stream":
        return _async_stream([])
    if behaviour == "broken_stream":
        return _async_stream(["a"], fail=True)
    if behaviour == "timeout":
        await asyncio.sleep(TIMEOUT * 10)
    return _sync_agent(behaviour)


def _check_every_call_accounted(
    raw: RawRun, behaviours: list[str], requests: int, **settings: Any
) -> None:
    result = build_result("r", parse_settings({"requests": requests, **settings}), raw)
    assert result.aborted is None, result.aborted
    assert result.requests == requests
    n_ok = int(np.count_nonzero(raw.log.status == OK))
    assert n_ok + result.errors == requests
    expected = Counter(
        t for i in range(requests) if (t := EXPECTED[behaviours[i % len(behaviours)]]) is not None
    )
    assert dict(result.error_types) == dict(expected)
    assert result.timeouts == expected["Timeout"]


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    behaviours=st.lists(st.sampled_from(SYNC_BEHAVIOURS), min_size=1, max_size=5),
    requests=st.integers(1, 8),
    concurrency=st.integers(1, 3),
    warmup=st.integers(0, 2),
    open_loop=st.booleans(),
)
def test_sync_agents_every_call_ends_as_success_or_error(
    behaviours: list[str], requests: int, concurrency: int, warmup: int, open_loop: bool
) -> None:
    shape: dict[str, Any] = {"concurrency": concurrency, "warmup": warmup, "timeout": TIMEOUT}
    if open_loop:
        shape.update(rate=500, arrival="constant")
    raw = run_load(_sync_agent, behaviours, parse_settings({"requests": requests, **shape}))
    _check_every_call_accounted(raw, behaviours, requests, **shape)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    behaviours=st.lists(st.sampled_from(list(EXPECTED)), min_size=1, max_size=5),
    requests=st.integers(1, 8),
    concurrency=st.integers(1, 3),
    warmup=st.integers(0, 2),
    open_loop=st.booleans(),
)
def test_async_agents_every_call_ends_as_success_or_error(
    behaviours: list[str], requests: int, concurrency: int, warmup: int, open_loop: bool
) -> None:
    shape: dict[str, Any] = {"concurrency": concurrency, "warmup": warmup, "timeout": TIMEOUT}
    if open_loop:
        shape.update(rate=500, arrival="constant")
    raw = run_load(_async_agent, behaviours, parse_settings({"requests": requests, **shape}))
    _check_every_call_accounted(raw, behaviours, requests, **shape)


@pytest.mark.parametrize("agent", [_sync_agent, _async_agent])
@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("hostile_result", "UsageExtractionError: reading token usage from a Hostile failed"),
        ("nan_usage", "UsageExtractionError: reading token usage from a dict failed"),
        ("bad_str", "BadStr: <str() raised RuntimeError>"),
        ("bad_record", "InvalidUsage: record_usage(model=123)"),
    ],
)
def test_result_handling_failures_are_that_calls_error_with_a_message(
    agent: Any, behaviour: str, message: str
) -> None:
    raw = run_load(agent, [behaviour, "ok"], parse_settings({"requests": 6, "warmup": 0}))
    assert raw.error_types == {EXPECTED[behaviour]: 3}
    assert int(np.count_nonzero(raw.log.status == OK)) == 3
    assert raw.error_messages[0].startswith(message)


def test_an_agent_awaiting_a_cancelled_inner_task_fails_only_that_call() -> None:
    raw = run_load(
        _async_agent, ["inner_cancelled", "ok"], parse_settings({"requests": 10, "warmup": 1})
    )
    assert raw.error_types == {"CancelledError": 5}
    assert len(raw.log) == 10 and raw.issued == 10


def test_cancelling_arun_of_an_async_agent_still_stops_it() -> None:
    calls: list[float] = []

    async def agent() -> None:
        calls.append(time.perf_counter())
        await asyncio.sleep(0.02)

    async def main() -> int:
        settings = parse_settings({"requests": 10_000, "warmup": 0, "concurrency": 2})
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):  # distinct types on 3.10
            await asyncio.wait_for(arun_load(agent, None, settings), 0.3)
        at_cancel = len(calls)
        await asyncio.sleep(0.3)
        return len(calls) - at_cancel

    assert asyncio.run(main()) == 0


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is 3.11+")
def test_a_worker_cancelled_from_outside_marks_the_run_aborted() -> None:
    """A real cancellation of a worker (not the run's) ends it; the missing call is reported."""

    async def agent(x: int) -> str:
        if x == 2:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
        await asyncio.sleep(0)
        return "ok"

    settings = parse_settings({"requests": 6, "warmup": 0})
    raw = run_load(agent, list(range(6)), settings)
    assert raw.issued is not None and len(raw.log) < raw.issued
    result = build_result("r", settings, raw)
    assert result.aborted is not None and "unaccounted" in result.aborted
    with pytest.raises(BudgetExceeded, match="unaccounted"):
        raise_if_broken(result)


def _raw_with(statuses: list[int], issued: int | None) -> RawRun:
    log = CallLog()
    for i, status in enumerate(statuses):
        log.record(
            float(i), i + 0.5, status, "E" if status else None, None, CallScope(), None, None
        )
    return RawRun(
        log=merge([log]),
        usage=UsageAccumulator(),
        error_types={"E": statuses.count(ERROR)} if ERROR in statuses else {},
        error_messages=(),
        duration=10.0,
        late_starts=0,
        aborted=None,
        target="agent",
        issued=issued,
    )


@pytest.mark.parametrize(
    ("settings", "statuses", "issued"),
    [
        ({"requests": 5}, [OK, OK, ERROR], 3),  # a worker stopped claiming calls
        ({"requests": 3}, [OK, ERROR], 3),  # a started call was never recorded
        ({"duration": "1s"}, [OK, OK], 3),  # no count to reach, but a call went missing
    ],
)
def test_calls_that_do_not_add_up_abort_the_run(
    settings: dict[str, Any], statuses: list[int], issued: int
) -> None:
    result = build_result("r", parse_settings(settings), _raw_with(statuses, issued))
    assert result.aborted is not None
    assert f"{len(statuses)} ended as" in result.aborted


@pytest.mark.parametrize(
    ("settings", "statuses", "issued"),
    [
        ({"requests": 3}, [OK, ERROR, OK], 3),
        ({"duration": "1s"}, [OK, OK], 2),
        ({"duration": "1s", "requests": 10}, [OK, OK], 2),
    ],
)
def test_calls_that_add_up_are_not_aborted(
    settings: dict[str, Any], statuses: list[int], issued: int
) -> None:
    assert build_result("r", parse_settings(settings), _raw_with(statuses, issued)).aborted is None
