"""Provider readers registered in one place, and the shared client-method wrappers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pytest_agentperf.engine.streams import carries_output
from pytest_agentperf.integrations import USAGE_READERS, anthropic, langchain, openai
from pytest_agentperf.integrations.proxy import instrument_methods
from pytest_agentperf.usage import (
    CURRENT_SCOPE,
    CallScope,
    UsageReader,
    UsageRecord,
    extract_usage,
    get_field,
    register_reader,
    token_count,
    unregister_reader,
)


def _toy_block(usage: Any, model: str | None) -> UsageRecord | None:
    """A made-up provider that calls its counts ``tokens_in`` / ``tokens_out``."""
    inp = token_count(get_field(usage, "tokens_in"))
    out = token_count(get_field(usage, "tokens_out"))
    if inp is None and out is None:
        return None
    return UsageRecord(inp or 0, out or 0, model)


def _toy_done(event: Any) -> list[UsageRecord] | None:
    return [UsageRecord(0, get_field(event, "n"))]


def _toy_chunk(chunk: Any) -> bool | None:
    kind = get_field(chunk, "type")
    return kind == "toy.text" if isinstance(kind, str) and kind.startswith("toy.") else None


TOY = UsageReader(block=_toy_block, events={"toy.done": _toy_done}, chunk_output=_toy_chunk)


@pytest.fixture
def toy() -> Iterator[UsageReader]:
    register_reader(TOY)
    try:
        yield TOY
    finally:
        unregister_reader(TOY)


def test_a_provider_reader_registered_once_reads_blocks_events_and_chunks(
    toy: UsageReader,
) -> None:
    body = {"model": "toy-1", "usage": {"tokens_in": 7, "tokens_out": 3}}
    assert extract_usage(body) == [UsageRecord(7, 3, "toy-1")]
    assert extract_usage({"type": "toy.done", "n": 5}) == [UsageRecord(0, 5)]
    assert carries_output({"type": "toy.ping"}) is False
    assert carries_output({"type": "toy.text"}) is True


def test_without_the_registration_the_toy_shape_is_not_read() -> None:
    assert extract_usage({"usage": {"tokens_in": 7, "tokens_out": 3}}) is None
    assert carries_output({"type": "toy.ping"}) is True  # unknown chunks count as output


def test_every_built_in_provider_is_registered_in_one_place() -> None:
    assert openai.CHAT_READER in USAGE_READERS and openai.RESPONSES_READER in USAGE_READERS
    assert anthropic.READER in USAGE_READERS and langchain.READER in USAGE_READERS
    # Anthropic's block has the Responses field names plus cache fields: it must come first
    assert USAGE_READERS.index(anthropic.READER) < USAGE_READERS.index(openai.RESPONSES_READER)


class _Usage:
    def __init__(self, n: int) -> None:
        self.prompt_tokens, self.completion_tokens = n, 1


class _Reply:
    def __init__(self, n: int) -> None:
        self.model, self.usage = "m", _Usage(n)


class _Chunks:
    """A client stream: an iterator with close(), usage in its last chunk."""

    def __init__(self) -> None:
        self._items = iter([{"choices": []}, {"model": "m", "usage": _Usage(4).__dict__}])
        self.closed = False

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> Any:
        return next(self._items)

    def close(self) -> None:
        self.closed = True


class _Completion:
    def complete(self, n: int, stream: bool = False) -> Any:
        return _Chunks() if stream else _Reply(n)


class _Client:
    """A LiteLLM-like client: its one method sits at ``text.complete``."""

    def __init__(self) -> None:
        self.text = _Completion()


def _in_scope(fn: Any) -> CallScope:
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        fn()
    finally:
        CURRENT_SCOPE.reset(token)
    return scope


def test_a_wrapper_for_another_client_only_lists_its_method_paths() -> None:
    client = instrument_methods(_Client(), ("text.complete", "text.missing"), is_async=False)
    assert instrument_methods(client, ("text.complete",), is_async=False) is client  # idempotent

    def agent() -> None:
        client.text.complete(2)
        for _ in client.text.complete(0, stream=True):
            pass

    scope = _in_scope(agent)
    assert scope.records == [UsageRecord(2, 1, "m"), UsageRecord(4, 1, "m")]
    assert isinstance(client.text.complete(3), _Reply)  # outside a call: only forwarded


class _AsyncChunks:
    def __init__(self) -> None:
        self._inner = _Chunks()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._inner)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        self._inner.close()


class _AsyncCompletion:
    async def complete(self, n: int, stream: bool = False) -> Any:
        return _AsyncChunks() if stream else _Reply(n)


class _AsyncClient:
    def __init__(self) -> None:
        self.text = _AsyncCompletion()


def test_the_shared_wrapper_records_async_calls_and_streams() -> None:
    client = instrument_methods(_AsyncClient(), ("text.complete",), is_async=True)

    async def agent() -> CallScope:
        scope = CallScope()
        token = CURRENT_SCOPE.set(scope)
        try:
            await client.text.complete(2)
            async for _ in await client.text.complete(0, stream=True):
                pass
        finally:
            CURRENT_SCOPE.reset(token)
        return scope

    scope = asyncio.run(agent())
    assert scope.records == [UsageRecord(2, 1, "m"), UsageRecord(4, 1, "m")]


def test_anthropic_instrument_wraps_messages_create_by_client_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class _Messages:
        def create(self, **kwargs: Any) -> Any:
            usage = {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 3}
            return {"type": "message", "model": "claude-x", "usage": usage}

    class Anthropic:  # stands in for anthropic.Anthropic: no SDK needed to read its objects
        def __init__(self) -> None:
            self.messages = _Messages()

    class AsyncAnthropic:
        pass

    fake = type(sys)("anthropic")
    fake.Anthropic, fake.AsyncAnthropic = Anthropic, AsyncAnthropic  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "anthropic", fake)
    client = anthropic.instrument(Anthropic())
    scope = _in_scope(lambda: client.messages.create(model="claude-x", max_tokens=9))
    assert scope.records == [UsageRecord(8, 2, "claude-x", cached_input_tokens=3)]
    with pytest.raises(TypeError, match=r"anthropic\.Anthropic or anthropic\.AsyncAnthropic"):
        anthropic.instrument(object())
