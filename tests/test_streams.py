"""Which streamed items count as output for TTFT and ITL."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_agentperf.engine.streams import carries_output


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
