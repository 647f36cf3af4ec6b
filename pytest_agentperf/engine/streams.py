"""Consuming a streamed response: time to first chunk, gaps between chunks, usage in chunks."""

from __future__ import annotations

import time
from array import array
from collections.abc import AsyncIterator, Iterable
from typing import Any

from ..errors import EmptyStream, ResultHandlingError, describe
from ..usage import UsageRecord, chunk_carries_output, combine_records, current_scope, read_usage

_NAN = float("nan")


def _keep_usage(found: list[UsageRecord]) -> None:
    """Usage seen in chunks counts only when nothing was recorded during the call; the chunks
    of one stream are one LLM request (summed per model, e.g. Anthropic's start and delta)."""
    scope = current_scope()
    if scope is not None and not scope.records and found:
        scope.records.extend(combine_records(found))


def carries_output(chunk: Any) -> bool:
    """Whether a chunk carries generated output, so that it counts for TTFT and ITL.

    Providers also stream bookkeeping: OpenAI Responses and Anthropic lifecycle events
    (``response.created``, ``message_start``...), an OpenAI chat chunk with an empty delta or
    only usage, a LangChain chunk with no content, an empty string from a text parser. Those
    would make the first "token" arrive before the model produced anything. Anything not
    recognised counts as output. Each provider's rule lives in its module under
    ``integrations/`` (``UsageReader.chunk_output``).
    """
    if isinstance(chunk, (str, bytes)):
        return bool(chunk)  # a text stream's empty pieces (a role chunk, say) are not output
    found = chunk_carries_output(chunk)  # the provider's own rule (integrations/)
    return True if found is None else found


class StreamTimes:
    """Time to first chunk and the gaps between chunks of one streamed response."""

    __slots__ = ("_found", "_last", "_start", "first", "gaps")

    def __init__(self, start: float) -> None:
        self._start = start
        self._last = 0.0
        self._found: list[UsageRecord] = []
        self.first = _NAN
        """Seconds from the call's intended start to its first chunk."""
        self.gaps = array("d")

    def chunk(self, chunk: Any) -> None:
        usage = read_usage(chunk)
        if usage:
            self._found.extend(usage)
        try:
            output = carries_output(chunk)
        except Exception as exc:  # the chunk's attributes raise: that is this call's error
            raise ResultHandlingError(
                f"inspecting a streamed {type(chunk).__name__} failed: {describe(exc)}"
            ) from exc
        if not output:
            return
        now = time.perf_counter()
        if self.first != self.first:  # NaN: this is the first chunk
            self.first = now - self._start
        else:
            self.gaps.append(now - self._last)
        self._last = now

    def close(self, allow_empty: bool) -> StreamTimes:
        """Keep the usage seen; raise ``EmptyStream`` when no chunk carried output, unless
        ``allow_empty`` (an interrupted stream must not pass for a fast answer)."""
        _keep_usage(self._found)  # tokens of an empty stream were still billed
        if self.first != self.first and not allow_empty:  # NaN: no output chunk came
            raise EmptyStream(
                "the stream ended without a single output chunk (a server that cuts streams "
                "short, or a gateway that drops the body?); set allow_empty=True if an empty "
                "answer is a valid one"
            )
        return self


async def consume_async(
    stream: AsyncIterator[Any], start: float, allow_empty: bool = False
) -> StreamTimes:
    """Iterate ``stream`` to its end; ``start`` is the call's intended start (perf_counter)."""
    times = StreamTimes(start)
    async for chunk in stream:
        times.chunk(chunk)
    return times.close(allow_empty)


def consume_sync(stream: Iterable[Any], start: float, allow_empty: bool = False) -> StreamTimes:
    """Iterate ``stream`` to its end; ``start`` is the call's intended start (perf_counter)."""
    times = StreamTimes(start)
    for chunk in stream:
        times.chunk(chunk)
    return times.close(allow_empty)
