"""Opt-in instrumentation of an ``openai`` client instance (``OpenAI`` / ``AsyncOpenAI``).

``instrument(client)`` wraps ``client.chat.completions.create`` / ``.parse`` and
``client.responses.create`` / ``.parse`` on that instance, so that every call it makes inside
a measured call is recorded with its token usage (``record_usage`` semantics), however deep in
the agent it happens. Streams are passed through unchanged and their usage is recorded when
they end; a chat completions stream reports usage only when the request sets
``stream_options={"include_usage": True}`` (without it the usage stays unknown). Outside a
measured call the wrappers only forward the call. Copies made with ``client.with_options()``
are not instrumented; instrument them too.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from ..usage import CallScope, UsageRecord, _current, combine_records, extract_usage

C = TypeVar("C")

_MARK = "_agentperf_instrumented"
_METHODS = (
    ("chat", "completions", "create"),
    ("chat", "completions", "parse"),
    ("responses", None, "create"),
    ("responses", None, "parse"),
)


def instrument(client: C) -> C:
    """Record the usage of every chat completions / responses call ``client`` makes; returns
    the same client. Idempotent."""
    import openai

    if getattr(client, _MARK, False):
        return client
    if isinstance(client, openai.AsyncOpenAI):
        wrap = _wrap_async
    elif isinstance(client, openai.OpenAI):
        wrap = _wrap_sync
    else:
        raise TypeError(
            f"instrument() takes an openai.OpenAI or openai.AsyncOpenAI client, "
            f"not {type(client).__name__}"
        )
    for first, second, name in _METHODS:
        resource = getattr(client, first, None)
        if resource is not None and second is not None:
            resource = getattr(resource, second, None)
        original = getattr(resource, name, None) if resource is not None else None
        if original is not None:
            setattr(resource, name, wrap(original))
    setattr(client, _MARK, True)
    return client


def _record(scope: CallScope, records: list[UsageRecord]) -> None:
    if records:
        scope.records.extend(combine_records(records))


def _wrap_sync(original: Any) -> Any:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        scope = _current.get()
        result = original(*args, **kwargs)
        if scope is None:
            return result
        if kwargs.get("stream") and hasattr(result, "__iter__"):
            return _SyncStream(result, scope)
        _record(scope, extract_usage(result) or [])
        return result

    return create


def _wrap_async(original: Any) -> Any:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        scope = _current.get()
        result = await original(*args, **kwargs)
        if scope is None:
            return result
        if kwargs.get("stream") and hasattr(result, "__aiter__"):
            return _AsyncStream(result, scope)
        _record(scope, extract_usage(result) or [])
        return result

    return create


class _StreamBase:
    """Common part of the stream proxies: collect usage from chunks, record it once."""

    def __init__(self, stream: Any, scope: CallScope) -> None:
        self._stream = stream
        self._scope = scope
        self._records: list[UsageRecord] = []
        self._done = False

    def _see(self, chunk: Any) -> None:
        found = extract_usage(chunk)
        if found:
            self._records.extend(found)

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            _record(self._scope, self._records)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _SyncStream(_StreamBase):
    """Proxy of ``openai.Stream`` that records the usage of its chunks when it ends."""

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in self._stream:
                self._see(chunk)
                yield chunk
        finally:
            self._finish()

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._finish()
            raise
        self._see(chunk)
        return chunk

    def __enter__(self) -> _SyncStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finish()
        self._stream.close()


class _AsyncStream(_StreamBase):
    """Proxy of ``openai.AsyncStream`` that records the usage of its chunks when it ends."""

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for chunk in self._stream:
                self._see(chunk)
                yield chunk
        finally:
            self._finish()

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        self._see(chunk)
        return chunk

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._finish()
        await self._stream.close()
