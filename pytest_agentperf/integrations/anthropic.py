"""Anthropic: usage readers for Messages API objects and stream events, and opt-in
instrumentation of an ``anthropic`` client instance (``Anthropic`` / ``AsyncAnthropic``).

Objects are read by their shape, so reading them needs no ``anthropic`` import; only
``instrument`` imports the package, to tell a sync client from an async one.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..usage import (
    UsageFields,
    UsageReader,
    UsageRecord,
    extract_usage,
    get_field,
    token_count,
)
from .proxy import instrument_client

C = TypeVar("C")

METHODS = ("messages.create",)
"""The client methods ``instrument`` wraps (``stream=True`` included)."""

STREAM_EVENTS = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "ping",
    }
)
"""The ``type`` of every Messages stream event; only ``content_block_delta`` carries output."""


def instrument(client: C) -> C:
    """Record the usage of every ``messages.create`` call ``client`` makes; returns the same
    client. Idempotent."""
    import anthropic

    return instrument_client(client, METHODS, anthropic, "Anthropic", "AsyncAnthropic")


def _message_start(event: Any) -> list[UsageRecord] | None:
    """Input counts here; the output count is a placeholder that the final message_delta's
    cumulative count replaces."""
    found = extract_usage(get_field(event, "message"))
    for rec in found or ():
        rec.output_tokens = 0
        rec.reasoning_tokens = 0
    return found


def _message_delta(event: Any) -> list[UsageRecord] | None:
    """The final delta: cumulative output tokens; input was in message_start."""
    usage = get_field(event, "usage")
    out = token_count(get_field(usage, "output_tokens")) if usage is not None else None
    return None if out is None else [UsageRecord(input_tokens=0, output_tokens=out)]


def _chunk_output(chunk: Any) -> bool | None:
    kind = get_field(chunk, "type")
    if not isinstance(kind, str) or kind not in STREAM_EVENTS:
        return None
    return kind == "content_block_delta"


READER = UsageReader(
    # told from OpenAI Responses' block (same names) by its cache fields
    block=UsageFields(
        input="input_tokens",
        output="output_tokens",
        cached="cache_read_input_tokens",
        cache_write="cache_creation_input_tokens",
        reasoning="output_tokens_details.thinking_tokens",
        marks=("cache_read_input_tokens", "cache_creation_input_tokens"),
        cache_outside_input=True,
    ),
    events={"message_start": _message_start, "message_delta": _message_delta},
    chunk_output=_chunk_output,
)
"""Messages: usage blocks, stream events with usage, and which events carry output."""
