"""Shared wrappers around a client's methods: record the usage of every call they make.

A provider module lists the method paths of its client (``("chat.completions.create", ...)``)
and calls ``instrument_methods``; each method is replaced, on that client instance only, by a
wrapper that reads the usage of what the method returns (``usage.extract_usage``) into the
measured call in progress. A stream (``stream=True``) is passed through in a proxy that records
the usage of its chunks once, when it ends. Each request is timed (sent, first chunk, last
chunk or answer) on the records it makes, so reports can show where a call's time went.
Outside a measured call the wrappers only forward.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from ..usage import CallScope, UsageRecord, combine_records, current_scope, extract_usage

C = TypeVar("C")

MARK = "_agentperf_instrumented"
"""Attribute set on an instrumented client, so that instrumenting it again does nothing."""


def instrument_methods(
    client: C, paths: Iterable[str], *, is_async: bool, provider: str | None = None
) -> C:
    """Wrap each method of ``client`` named by a dotted path (missing ones are skipped);
    ``is_async``: the methods are coroutine functions and their streams async iterators;
    ``provider`` names who serves the requests ("openai"). Returns the same client.
    Idempotent."""
    if getattr(client, MARK, False):
        return client
    wrap = functools.partial(_wrap_async if is_async else _wrap_sync, provider=provider)
    for path in paths:
        *parents, name = path.split(".")
        owner: Any = client
        for part in parents:
            owner = getattr(owner, part, None)
        original = getattr(owner, name, None) if owner is not None else None
        if original is not None:
            setattr(owner, name, wrap(original))
    setattr(client, MARK, True)
    return client


def instrument_client(
    client: C, paths: Iterable[str], sdk: ModuleType, sync: str, async_: str
) -> C:
    """``instrument_methods`` for a client of the SDK's class ``sync`` or ``async_`` (named
    in module ``sdk``); a TypeError naming them for anything else."""
    provider = sdk.__name__
    if isinstance(client, getattr(sdk, async_)):
        return instrument_methods(client, paths, is_async=True, provider=provider)
    if isinstance(client, getattr(sdk, sync)):
        return instrument_methods(client, paths, is_async=False, provider=provider)
    raise TypeError(
        f"instrument() takes an {sdk.__name__}.{sync} or {sdk.__name__}.{async_} client, "
        f"not {type(client).__name__}"
    )


@dataclass(slots=True)
class _Timing:
    """When one request was sent, saw its first chunk and ended (``time.perf_counter``)."""

    provider: str | None
    start: float
    first: float | None = None


def _record(scope: CallScope, records: list[UsageRecord], timing: _Timing, end: float) -> None:
    if records:
        for r in (combined := combine_records(records)):
            r.start, r.end, r.provider = timing.start, end, timing.provider
            r.ttft = None if timing.first is None else timing.first - timing.start
        scope.records.extend(combined)


def _returned(
    result: Any, scope: CallScope | None, stream: type[_StreamBase] | None, timing: _Timing
) -> Any:
    """What a wrapper returns: ``result`` as is outside a call, a recording proxy for a
    stream, else ``result`` after its usage was recorded."""
    if scope is None:
        return result
    if stream is not None:
        return stream(result, scope, timing)
    _record(scope, extract_usage(result) or [], timing, time.perf_counter())
    return result


def _wrap_sync(original: Any, provider: str | None) -> Any:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        timing = _Timing(provider, time.perf_counter())
        result = original(*args, **kwargs)
        streamed = kwargs.get("stream") and hasattr(result, "__iter__")
        return _returned(result, scope, _SyncStream if streamed else None, timing)

    return create


def _wrap_async(original: Any, provider: str | None) -> Any:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        scope = current_scope()
        timing = _Timing(provider, time.perf_counter())
        result = await original(*args, **kwargs)
        streamed = kwargs.get("stream") and hasattr(result, "__aiter__")
        return _returned(result, scope, _AsyncStream if streamed else None, timing)

    return create


class _StreamBase:
    """Common part of the stream proxies: collect usage from chunks, record it once."""

    def __init__(self, stream: Any, scope: CallScope, timing: _Timing) -> None:
        self._stream = stream
        self._scope = scope
        self._timing = timing
        self._records: list[UsageRecord] = []
        self._done = False

    def _see(self, chunk: Any) -> None:
        if self._timing.first is None:
            self._timing.first = time.perf_counter()
        found = extract_usage(chunk)
        if found:
            self._records.extend(found)

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            _record(self._scope, self._records, self._timing, time.perf_counter())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _SyncStream(_StreamBase):
    """Proxy of a client's stream that records the usage of its chunks when it ends."""

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
    """Proxy of a client's async stream that records the usage of its chunks when it ends."""

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
