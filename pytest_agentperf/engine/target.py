"""What is being measured: a sync or async callable, a Runnable, or a call that streams."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

_NO_INPUT: Any = object()


@dataclass(frozen=True)
class Target:
    """An agent adapted for the engine: ``call(x)`` returns a value, an awaitable or an iterator."""

    call: Callable[[Any], Any]
    is_async: bool
    inputs: Sequence[Any] | None
    label: str

    def input_for(self, i: int) -> Any:
        if self.inputs is None:
            return _NO_INPUT
        return self.inputs[i % len(self.inputs)]


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return False
    call = type(fn).__dict__.get("__call__") or getattr(type(fn), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def _is_runnable(fn: Any) -> bool:
    return callable(getattr(fn, "ainvoke", None)) and callable(getattr(fn, "invoke", None))


def _as_sequence(inputs: Any) -> Sequence[Any]:
    """A list or tuple is cycled through; a single string, mapping or scalar is one input."""
    if isinstance(inputs, (list, tuple, range)):
        return inputs
    if isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable):
        return [inputs]
    return list(inputs)


def make_target(fn: Any, inputs: Any) -> Target:
    """Adapt ``fn`` for the engine; raise UsageError when it cannot be called as an agent."""
    if inputs is not None:
        inputs = _as_sequence(inputs)
        if len(inputs) == 0:
            raise UsageError("inputs= is empty; pass at least one input, or None to call fn()")
    label = getattr(fn, "__qualname__", None) or type(fn).__name__
    if _is_runnable(fn):
        if inputs is None:
            raise UsageError(
                f"{label} is a Runnable: pass inputs= (the values given to .ainvoke(input))"
            )
        return Target(fn.ainvoke, True, inputs, label)
    if not callable(fn):
        raise UsageError(
            f"agentperf.run() needs a callable agent, got {type(fn).__name__}; "
            "pass a function, a coroutine function or a Runnable"
        )
    is_async = _is_async_callable(fn)
    call = (lambda _x, _fn=fn: _fn()) if inputs is None else fn
    return Target(call, is_async, inputs, label)


PLAIN, SYNC_STREAM, ASYNC_STREAM = 0, 1, 2
_KINDS: dict[type, int] = {}


def stream_kind(value: Any) -> int:
    """PLAIN, SYNC_STREAM (an iterator) or ASYNC_STREAM (an async iterator); cached per type."""
    cls = type(value)
    kind = _KINDS.get(cls)
    if kind is None:
        if isinstance(value, AsyncIterator):
            kind = ASYNC_STREAM
        elif isinstance(value, Iterator) and not isinstance(value, (str, bytes, bytearray)):
            kind = SYNC_STREAM
        else:
            kind = PLAIN
        if len(_KINDS) < 1024:
            _KINDS[cls] = kind
    return kind


def returned_awaitable(label: str) -> UsageError:
    return UsageError(
        f"{label} returned an awaitable but is not an async function; pass the coroutine "
        "function itself (async def), or wrap it: async def agent(x): return await ..."
    )
