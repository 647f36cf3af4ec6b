"""OpenAI: usage readers for chat completions and the Responses API, and opt-in instrumentation
of an ``openai`` client instance (``OpenAI`` / ``AsyncOpenAI``).

``instrument(client)`` wraps ``client.chat.completions.create`` / ``.parse`` and
``client.responses.create`` / ``.parse`` on that instance, so that every call it makes inside
a measured call is recorded with its token usage (``record_usage`` semantics), however deep in
the agent it happens. Streams are passed through unchanged and their usage is recorded when
they end; a chat completions stream reports usage only when the request sets
``stream_options={"include_usage": True}`` (without it the usage stays unknown). Outside a
measured call the wrappers only forward the call. Copies made with ``client.with_options()``
are not instrumented; instrument them too.

The readers work by shape, so any OpenAI-compatible server's objects or JSON are read too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..usage import (
    UsageFields,
    UsageReader,
    UsageRecord,
    extract_usage,
    get_field,
)
from .proxy import instrument_client

C = TypeVar("C")

METHODS = (
    "chat.completions.create",
    "chat.completions.parse",
    "responses.create",
    "responses.parse",
)
"""The client methods ``instrument`` wraps."""


def instrument(client: C) -> C:
    """Record the usage of every chat completions / responses call ``client`` makes; returns
    the same client. Idempotent."""
    import openai

    return instrument_client(client, METHODS, openai, "OpenAI", "AsyncOpenAI")


_OUTPUT_KEYS = (
    "content",
    "tool_calls",
    "refusal",
    "function_call",
    "reasoning_content",
    "reasoning",
)
"""Delta fields that carry generated output; a reasoning model's thinking counts as output."""


def _chat_chunk_output(chunk: Any) -> bool | None:
    """A chat completions chunk carries output when a choice's delta has any; an empty delta
    or a usage-only chunk does not (legacy text completions are left to the default)."""
    choices = get_field(chunk, "choices")
    if not isinstance(choices, (list, tuple)) or get_field(chunk, "object") == "text_completion":
        return None
    return any(_delta_has_output(get_field(c, "delta")) for c in choices)


def _delta_has_output(delta: Any) -> bool:
    if delta is None:
        return False
    return any(get_field(delta, key) for key in _OUTPUT_KEYS)


def _response_event(event: Any) -> list[UsageRecord] | None:
    """The final Responses stream events carry the whole response, usage included."""
    return extract_usage(get_field(event, "response"))


def _responses_chunk_output(chunk: Any) -> bool | None:
    """Responses stream events: only the ``*.delta`` ones carry output."""
    kind = get_field(chunk, "type")
    if not isinstance(kind, str) or not kind.startswith("response."):
        return None
    return kind.endswith(".delta")


CHAT_READER = UsageReader(
    block=UsageFields(
        input="prompt_tokens",
        output="completion_tokens",
        cached="prompt_tokens_details.cached_tokens",
        cache_write="prompt_tokens_details.cache_write_tokens",
        reasoning="completion_tokens_details.reasoning_tokens",
    ),
    chunk_output=_chat_chunk_output,
)
"""Chat completions: usage blocks and stream chunks."""

RESPONSES_READER = UsageReader(
    block=UsageFields(
        input="input_tokens",
        output="output_tokens",
        cached="input_tokens_details.cached_tokens",
        cache_write="input_tokens_details.cache_write_tokens",
        reasoning="output_tokens_details.reasoning_tokens",
    ),
    events=dict.fromkeys(
        ("response.completed", "response.incomplete", "response.failed"), _response_event
    ),
    chunk_output=_responses_chunk_output,
)
"""Responses API: usage blocks, final stream events and which events carry output."""
