"""Which streamed items count as output for TTFT and ITL; streams that end without any."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import run_load
from pytest_agentperf.engine.streams import carries_output
from pytest_agentperf.errors import SettingsError
from pytest_agentperf.record import RunRecord
from pytest_agentperf.report import terminal
from pytest_agentperf.settings import parse_settings


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        ({"type": "response.created"}, False),
        ({"type": "response.output_item.added"}, False),
        ({"type": "response.output_text.delta", "delta": "Hi"}, True),
        ({"type": "response.completed", "response": {}}, False),
        ({"type": "message_start"}, False),
        ({"type": "content_block_delta", "delta": {"text": "Hi"}}, True),
        ({"type": "message_delta", "usage": {"output_tokens": 3}}, False),
        ({"choices": [{"delta": {"role": "assistant", "content": ""}}]}, False),
        ({"choices": [{"delta": {"content": "Hi"}}]}, True),
        ({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]}, True),
        ({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}, False),
        ("plain text chunk", True),
        ("", False),
        (b"", False),
        ({"choices": [{"delta": {"reasoning_content": "Let me think"}}]}, True),
        (42, True),
        ({"custom": "event"}, True),
    ],
)
def test_output_chunks_of_plain_data(chunk: Any, expected: bool) -> None:
    assert carries_output(chunk) is expected


def test_output_chunks_of_real_client_objects() -> None:
    chat = pytest.importorskip("openai.types.chat")
    role_only = chat.ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
        }
    )
    token = role_only.model_copy(
        update={"choices": [chat.chat_completion_chunk.Choice(index=0, delta={"content": "Hi"})]}
    )
    assert not carries_output(role_only)
    assert carries_output(token)

    messages = pytest.importorskip("langchain_core.messages")
    assert carries_output(messages.AIMessageChunk(content="Hi"))
    assert not carries_output(
        messages.AIMessageChunk(
            content="", usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
        )
    )


# -- streams that end without output -------------------------------------------------------

_ROLE = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
_TOKEN = {"choices": [{"delta": {"content": "Hi"}}]}
_USAGE = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 0}}


async def _interrupted_or_full(x: int) -> AsyncIterator[dict[str, Any]]:
    """Like a server that cuts a stream short with [DONE] while another request waits:
    every call but the first ends with bookkeeping chunks only."""
    await asyncio.sleep(0.005)
    yield _ROLE
    if x == 0:
        for _ in range(3):
            await asyncio.sleep(0.005)
            yield _TOKEN
    yield _USAGE


def _sync_interrupted_or_full(x: int) -> Iterator[dict[str, Any]]:
    time.sleep(0.005)
    yield _ROLE
    if x == 0:
        for _ in range(3):
            time.sleep(0.005)
            yield _TOKEN
    yield _USAGE


@pytest.mark.parametrize("agent", [_interrupted_or_full, _sync_interrupted_or_full])
def test_a_stream_without_output_is_an_empty_stream_error(agent: Any) -> None:
    settings = parse_settings({"requests": 8, "warmup": 0, "concurrency": 2})
    raw = run_load(agent, list(range(8)), settings)
    result = build_result("r", settings, raw)
    assert result.error_types == {"EmptyStream": 7}
    assert result.errors == 7 and result.latency.n == 1 and result.ttft.n == 1
    assert result.error_messages[0].startswith("EmptyStream: the stream ended without")
    assert "allow_empty=True" in result.error_messages[0]
    assert result.usage.by_model["unknown"].calls == 8  # the empty streams' tokens were billed


@pytest.mark.parametrize("agent", [_interrupted_or_full, _sync_interrupted_or_full])
def test_allow_empty_counts_empty_streams_as_successes(agent: Any) -> None:
    settings = parse_settings({"requests": 8, "warmup": 0, "allow_empty": True})
    result = build_result("r", settings, run_load(agent, list(range(8)), settings))
    assert result.errors == 0
    assert result.latency.n == 8 and result.ttft.n == 1 and result.itl.n == 2


def test_allow_empty_must_be_a_bool() -> None:
    with pytest.raises(SettingsError, match="allow_empty") as info:
        parse_settings({"allow_empty": "yes"})
    assert info.value.key == "allow_empty"


def test_the_table_shows_ttft_sample_count_when_it_differs_from_latency() -> None:
    settings = parse_settings({"requests": 4, "warmup": 0, "allow_empty": True})
    partial = build_result("partial", settings, run_load(_interrupted_or_full, [0, 1], settings))
    full = build_result("full", settings, run_load(_interrupted_or_full, [0], settings))
    records = [RunRecord.of("t.py::test_a", partial), RunRecord.of("t.py::test_b", full)]
    rows = {line.split()[0]: line for line in terminal.render(records).splitlines()[2:]}
    assert partial.ttft.n == 2 and partial.latency.n == 4
    assert "(n=2)" in rows["t.py::test_a"]
    assert "(n=" not in rows["t.py::test_b"]  # every call streamed: nothing to point out
    assert records[0].result.ttft.n == 2 and records[0].result.itl.n == 4
