"""Anthropic: usage readers for Messages API objects and stream events, and opt-in
instrumentation of an ``anthropic`` client instance (``Anthropic`` / ``AsyncAnthropic``).

Objects are read by their shape, so reading them needs no ``anthropic`` import; only
``instrument`` imports the package, to tell a sync client from an async one.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ..usage import (
    UsageReader,
    UsageRecord,
    extract_usage,
    get_field,
    has_field,
    token_count,
    token_count0,
)
from .proxy import instrument_methods

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

    if isinstance(client, anthropic.AsyncAnthropic):
        return instrument_methods(client, METHODS, is_async=True)
    if isinstance(client, anthropic.Anthropic):
        return instrument_methods(client, METHODS, is_async=False)
    raise TypeError(
        f"instrument() takes an anthropic.Anthropic or anthropic.AsyncAnthropic client, "
        f"not {type(client).__name__}"
    )


def _block(usage: Any, model: str | None) -> UsageRecord | None:
    """A Messages ``usage`` block: told from OpenAI Responses' by its cache fields.
    ``input_tokens`` there excludes the cached and cache-written tokens; ours includes them."""
    if not (
        has_field(usage, "cache_read_input_tokens")
        or has_field(usage, "cache_creation_input_tokens")
    ):
        return None
    inp = token_count(get_field(usage, "input_tokens"))
    out = token_count(get_field(usage, "output_tokens"))
    if inp is None and out is None:
        return None
    read = token_count0(get_field(usage, "cache_read_input_tokens"))
    write = token_count0(get_field(usage, "cache_creation_input_tokens"))
    return UsageRecord(
        input_tokens=(inp or 0) + read + write,
        output_tokens=out or 0,
        model=model,
        cached_input_tokens=read,
        cache_creation_input_tokens=write,
        reasoning_tokens=token_count0(
            get_field(get_field(usage, "output_tokens_details"), "thinking_tokens")
        ),
    )


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
    block=_block,
    events={"message_start": _message_start, "message_delta": _message_delta},
    chunk_output=_chunk_output,
)
"""Messages: usage blocks, stream events with usage, and which events carry output."""
