"""Usage extraction from real client objects, and per-call attribution through contextvars."""

from __future__ import annotations

import asyncio
import contextvars
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_agentperf import record_usage
from pytest_agentperf.errors import InvalidUsage, UsageExtractionError
from pytest_agentperf.usage import (
    CURRENT_SCOPE,
    CallScope,
    UsageAccumulator,
    UsageRecord,
    combine_records,
    current_scope,
    extract_usage,
    read_usage,
    record_tool,
)


def one(obj: object) -> UsageRecord:
    found = extract_usage(obj)
    assert found is not None and len(found) == 1, found
    return found[0]


# -- OpenAI --------------------------------------------------------------------------------


def test_openai_chat_completion_with_cached_and_reasoning_tokens() -> None:
    from openai.types.chat import ChatCompletion

    resp = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hi"},
                }
            ],
            "usage": {
                "prompt_tokens": 120,
                "completion_tokens": 30,
                "total_tokens": 150,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 12},
            },
        }
    )
    rec = one(resp)
    assert rec == UsageRecord(120, 30, "gpt-4o-mini-2024-07-18", 100, 0, 12)


def test_openai_chat_completion_without_details() -> None:
    from openai.types.chat import ChatCompletion

    resp = ChatCompletion.model_validate(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o",
            "choices": [],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        }
    )
    assert one(resp) == UsageRecord(7, 5, "gpt-4o")


def test_openai_chat_completion_without_usage_is_unknown() -> None:
    from openai.types.chat import ChatCompletion

    resp = ChatCompletion.model_validate(
        {"id": "c", "object": "chat.completion", "created": 0, "model": "gpt-4o", "choices": []}
    )
    assert extract_usage(resp) is None


def test_openai_responses_api_object() -> None:
    from openai.types.responses import Response

    resp = Response.model_validate(
        {
            "id": "resp_1",
            "object": "response",
            "created_at": 0,
            "model": "o4-mini",
            "output": [],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 200,
                "output_tokens": 80,
                "total_tokens": 280,
                "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 16},
                "output_tokens_details": {"reasoning_tokens": 50},
            },
        }
    )
    assert one(resp) == UsageRecord(200, 80, "o4-mini", 64, 16, 50)


def test_openai_responses_stream_completed_event() -> None:
    from openai.types.responses import ResponseCompletedEvent

    event = ResponseCompletedEvent.model_validate(
        {
            "type": "response.completed",
            "sequence_number": 9,
            "response": {
                "id": "resp_1",
                "object": "response",
                "created_at": 0,
                "model": "gpt-5-mini",
                "output": [],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 4,
                    "total_tokens": 14,
                    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            },
        }
    )
    assert one(event) == UsageRecord(10, 4, "gpt-5-mini")


def _chunk(usage: dict[str, int] | None, content: str | None) -> object:
    from openai.types.chat import ChatCompletionChunk

    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": choices,
            "usage": usage,
        }
    )


def test_openai_stream_chunks_only_the_last_has_usage() -> None:
    chunks = [_chunk(None, "a"), _chunk(None, "b")]
    final = _chunk({"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}, None)
    assert [extract_usage(c) for c in chunks] == [None, None]
    assert one(final) == UsageRecord(9, 2, "gpt-4o-mini")


def test_openai_stream_without_include_usage_reports_nothing() -> None:
    assert all(extract_usage(_chunk(None, t)) is None for t in "abc")


# -- Anthropic -----------------------------------------------------------------------------


def test_anthropic_message_counts_cache_reads_and_writes_as_input() -> None:
    from anthropic.types import Message

    msg = Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 20,
                "output_tokens": 40,
                "cache_read_input_tokens": 1000,
                "cache_creation_input_tokens": 300,
            },
        }
    )
    assert one(msg) == UsageRecord(1320, 40, "claude-sonnet-4-5-20250929", 1000, 300, 0)


def test_anthropic_stream_events_sum_to_the_message_usage() -> None:
    from anthropic.types import RawMessageDeltaEvent, RawMessageStartEvent

    start = RawMessageStartEvent.model_validate(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
            },
        }
    )
    delta = RawMessageDeltaEvent.model_validate(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15, "input_tokens": 25},
        }
    )
    records = (extract_usage(start) or []) + (extract_usage(delta) or [])
    combined = combine_records(records)
    # message_start's output count is a placeholder; the delta's count is cumulative
    assert combined == [UsageRecord(30, 15, "claude-haiku-4-5", 5, 0, 0)]


# -- LangChain -----------------------------------------------------------------------------


def test_langchain_ai_message_usage_metadata_and_model_name() -> None:
    from langchain_core.messages import AIMessage

    msg = AIMessage(
        content="hi",
        usage_metadata={
            "input_tokens": 50,
            "output_tokens": 20,
            "total_tokens": 70,
            "input_token_details": {"cache_read": 32, "cache_creation": 8},
            "output_token_details": {"reasoning": 5},
        },
        response_metadata={"model_name": "gpt-4.1-mini"},
    )
    assert one(msg) == UsageRecord(50, 20, "gpt-4.1-mini", 32, 8, 5)


def test_langchain_model_name_from_response_metadata_model_key() -> None:
    from langchain_core.messages import AIMessageChunk

    chunk = AIMessageChunk(
        content="",
        usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
        response_metadata={"model": "claude-haiku-4-5"},
    )
    assert one(chunk) == UsageRecord(3, 4, "claude-haiku-4-5")


def test_langchain_message_without_usage_is_unknown() -> None:
    from langchain_core.messages import AIMessage

    assert extract_usage(AIMessage(content="no usage")) is None


def test_langchain_llm_result_prefers_message_usage_over_llm_output() -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, LLMResult

    gen = ChatGeneration(
        message=AIMessage(
            content="x", usage_metadata={"input_tokens": 5, "output_tokens": 6, "total_tokens": 11}
        )
    )
    result = LLMResult(
        generations=[[gen]],
        llm_output={
            "token_usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
            "model_name": "gpt-4o",
        },
    )
    assert extract_usage(result) == [UsageRecord(5, 6, "gpt-4o")]


def test_langchain_llm_result_token_usage_fallback() -> None:
    from langchain_core.outputs import Generation, LLMResult

    result = LLMResult(
        generations=[[Generation(text="x")]],
        llm_output={
            "token_usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
            "model_name": "gpt-3.5-turbo",
        },
    )
    assert one(result) == UsageRecord(11, 2, "gpt-3.5-turbo")


def test_langchain_chat_result() -> None:
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    result = ChatResult(
        generations=[
            ChatGeneration(
                message=AIMessage(
                    content="x",
                    usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
                    response_metadata={"model_name": "gpt-5"},
                )
            )
        ]
    )
    assert one(result) == UsageRecord(1, 2, "gpt-5")


# -- plain dicts and others ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            {"model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
            UsageRecord(3, 4, "gpt-4o"),
        ),
        (
            {"usage": {"input_tokens": 8, "output_tokens": 1}},
            UsageRecord(8, 1, None),
        ),
        (
            {
                "model": "claude-opus-4-5",
                "usage": {"input_tokens": 2, "output_tokens": 1, "cache_read_input_tokens": 10},
            },
            UsageRecord(12, 1, "claude-opus-4-5", 10, 0, 0),
        ),
        (
            {"usage_metadata": {"input_tokens": 4, "output_tokens": 5, "total_tokens": 9}},
            UsageRecord(4, 5, None),
        ),
        (
            {"model_name": "gpt-4o", "token_usage": {"prompt_tokens": 1, "completion_tokens": 1}},
            UsageRecord(1, 1, "gpt-4o"),
        ),
        (
            {"usage": {"inputTokens": 10, "outputTokens": 3, "cacheReadInputTokens": 4}},
            UsageRecord(14, 3, None, 4, 0, 0),
        ),
    ],
)
def test_plain_dicts(obj: dict[str, object], expected: UsageRecord) -> None:
    assert one(obj) == expected


@pytest.mark.parametrize(
    "obj", [None, "text", b"bytes", 3, 2.5, True, {}, {"usage": None}, {"answer": 42}, object()]
)
def test_things_without_usage(obj: object) -> None:
    assert extract_usage(obj) is None


def test_google_genai_style_usage_metadata_counts_thoughts_as_output() -> None:
    class Meta:
        prompt_token_count = 100
        candidates_token_count = 20
        thoughts_token_count = 30
        cached_content_token_count = 40

    class Resp:
        usage_metadata = Meta()
        model_version = "gemini-2.5-flash"

    assert one(Resp()) == UsageRecord(100, 50, "gemini-2.5-flash", 40, 0, 30)


def test_combine_records_joins_unnamed_chunks_to_the_single_model() -> None:
    got = combine_records([UsageRecord(5, 0), UsageRecord(0, 7, "m"), UsageRecord(0, 1)])
    assert got == [UsageRecord(5, 8, "m")]
    two = combine_records([UsageRecord(1, 1, "a"), UsageRecord(1, 1, "b"), UsageRecord(1, 1)])
    assert sorted((r.model or "") for r in two) == ["", "a", "b"]


# -- the recorder --------------------------------------------------------------------------


def test_record_usage_outside_a_run_is_a_noop() -> None:
    assert current_scope() is None
    record_usage(input_tokens=5, output_tokens=5, model="gpt-4o")
    record_tool("search", 0.1, True)
    assert current_scope() is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"model": 123}, "model=123"),
        ({"model": ""}, "model=''"),
        ({"model": b"gpt-4o"}, "model=b'gpt-4o'"),
        ({"input_tokens": -1}, "input_tokens=-1"),
        ({"output_tokens": float("nan")}, "output_tokens=nan"),
        ({"input_tokens": float("inf")}, "input_tokens=inf"),
        ({"cached_input_tokens": 2.5}, "cached_input_tokens=2.5"),
        ({"output_tokens": "12"}, "output_tokens='12'"),
        ({"input_tokens": True}, "input_tokens=True"),
        ({"reasoning_tokens": None}, "reasoning_tokens=None"),
        ({"cache_creation_input_tokens": -3}, "cache_creation_input_tokens=-3"),
    ],
)
def test_record_usage_refuses_what_it_cannot_count(kwargs: dict[str, object], named: str) -> None:
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        with pytest.raises(InvalidUsage, match=re.escape(f"record_usage({named})")) as info:
            record_usage(**{"input_tokens": 1, "output_tokens": 1, **kwargs})  # type: ignore[arg-type]
    finally:
        CURRENT_SCOPE.reset(token)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert scope.records == []
    with pytest.raises(InvalidUsage):  # outside a run too: the mistake shows at once
        record_usage(**{"input_tokens": 1, "output_tokens": 1, **kwargs})  # type: ignore[arg-type]


def test_record_usage_accepts_whole_numbers_of_any_integer_type() -> None:
    np = pytest.importorskip("numpy")
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        record_usage(np.int64(10), 2.0, "m")  # type: ignore[arg-type]
    finally:
        CURRENT_SCOPE.reset(token)
    assert scope.records == [UsageRecord(10, 2, "m")]
    assert type(scope.records[0].input_tokens) is int


def test_read_usage_reports_what_failed() -> None:
    class Hostile:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("nope")

    with pytest.raises(UsageExtractionError, match="from a Hostile failed: RuntimeError: nope"):
        read_usage(Hostile())
    with pytest.raises(UsageExtractionError, match="token count nan"):
        read_usage({"usage": {"prompt_tokens": float("nan"), "completion_tokens": 1}})


def test_record_usage_inside_a_scope() -> None:
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        record_usage(10, 2, "gpt-4o", 4, reasoning_tokens=1)
        record_usage(input_tokens=1, output_tokens=1)
        record_tool("search", 0.25, False)
    finally:
        CURRENT_SCOPE.reset(token)
    assert scope.records == [UsageRecord(10, 2, "gpt-4o", 4, 0, 1), UsageRecord(1, 1)]
    assert [t[:3] for t in scope.tools] == [("search", 0.25, False)]
    assert scope.tools[0][3] <= time.perf_counter()  # when it ended: at the record


async def _agent(i: int, rng: random.Random) -> None:
    """An agent that makes LLM calls directly, in gather, in tasks it spawns, and in threads."""
    record_usage(input_tokens=i, output_tokens=1, model="m")
    await asyncio.sleep(rng.random() / 1000)

    async def step(k: int) -> None:
        await asyncio.sleep(rng.random() / 1000)
        record_usage(input_tokens=i, output_tokens=1, model="m")

    await asyncio.gather(step(1), step(2))
    task = asyncio.create_task(step(3))
    await task
    await asyncio.to_thread(record_usage, i, 1, "m")

    def nested() -> None:
        record_usage(input_tokens=i, output_tokens=1, model="m")

    await asyncio.gather(asyncio.to_thread(nested), asyncio.to_thread(nested))


@pytest.mark.asyncio
async def test_attribution_at_concurrency_100_across_gather_tasks_and_threads() -> None:
    rng = random.Random(1)
    scopes = [CallScope() for _ in range(100)]

    async def measured(i: int) -> None:
        token = CURRENT_SCOPE.set(scopes[i])
        try:
            await _agent(i, rng)
        finally:
            CURRENT_SCOPE.reset(token)

    await asyncio.gather(*(asyncio.create_task(measured(i)) for i in range(100)))
    for i, scope in enumerate(scopes):
        assert len(scope.records) == 7, (i, scope.records)
        assert {r.input_tokens for r in scope.records} == {i}
    assert current_scope() is None


def test_attribution_across_worker_threads() -> None:
    """Sync agents in a thread pool, each call in its own copied context."""
    scopes = [CallScope() for _ in range(100)]
    barrier = threading.Barrier(20)

    def agent(i: int) -> None:
        barrier.wait(timeout=10)
        record_usage(input_tokens=i, output_tokens=2, model="m")
        with ThreadPoolExecutor(2) as inner:
            ctx = contextvars.copy_context()
            list(inner.map(lambda _: ctx.copy().run(record_usage, i, 2, "m"), range(2)))

    def run(i: int) -> None:
        ctx = contextvars.copy_context()
        ctx.run(CURRENT_SCOPE.set, scopes[i])
        ctx.run(agent, i)

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(run, range(100)))
    for i, scope in enumerate(scopes):
        assert [r.input_tokens for r in scope.records] == [i, i, i]


def test_accumulator_sums_and_merges() -> None:
    a, b = UsageAccumulator(), UsageAccumulator()
    a.add_call([UsageRecord(10, 5, "gpt-4o", 4, 0, 1), UsageRecord(2, 1, None)], "fallback")
    a.add_call([], None)
    b.add_call([UsageRecord(1, 1, "gpt-4o")], None)
    b.add_tools([("search", 0.5, True, 1.0), ("search", 0.25, False, 2.0)])
    a.merge(b)
    usage = a.usage(requests=4)
    assert usage.known and usage.calls_with_usage == 2
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (13, 7, 20)
    assert usage.cached_input_tokens == 4 and usage.reasoning_tokens == 1
    assert usage.per_call.total_tokens == 5.0
    assert set(usage.by_model) == {"gpt-4o", "fallback"}
    assert usage.by_model["gpt-4o"].calls == 2
    tools = a.tool_stats()
    assert tools["search"].calls == 2 and tools["search"].errors == 1
    assert tools["search"].total_time == pytest.approx(0.75)


def test_accumulator_without_any_usage_is_unknown_not_zero() -> None:
    acc = UsageAccumulator()
    acc.add_call([], "gpt-4o")
    usage = acc.usage(requests=3)
    assert not usage.known
    assert usage.total_tokens is None and usage.per_call.total_tokens is None
