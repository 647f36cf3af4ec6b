"""What is being measured: a sync or async callable, a Runnable, or a call that streams."""

from __future__ import annotations

import functools
import inspect
import itertools
import threading
import types
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from inspect import CO_COROUTINE
from typing import Any

from ..errors import UsageError

_NO_INPUT: Any = object()


class LazyInputs:
    """Inputs from an iterable of unknown length, read only as far as the run needs.

    Item ``i`` reads the iterator up to ``i``; what was read is kept, so once the iterator is
    exhausted the inputs are cycled like a list's. An endless generator is thus read for as
    many calls as the run makes (warmup calls reuse the first ones), never whole.
    """

    __slots__ = ("_items", "_iterator", "_lock", "_size")

    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator
        self._items: list[Any] = []
        self._size: int | None = None
        """The number of inputs, once the iterator is exhausted."""
        self._lock = threading.Lock()  # workers on several threads must not next() at once

    def __getitem__(self, i: int) -> Any:
        items = self._items
        if i < len(items):  # already read: no lock (list reads are atomic)
            return items[i]
        with self._lock:
            while self._size is None and len(items) <= i:
                try:
                    items.append(next(self._iterator))
                except StopIteration:
                    self._size = len(items)
            if self._size is not None:
                return items[i % self._size]
            return items[i]

    @property
    def read(self) -> int:
        """How many items were taken from the iterator so far."""
        return len(self._items)


@dataclass(frozen=True)
class Target:
    """An agent adapted for the engine: ``call(x)`` returns a value, an awaitable or an iterator."""

    call: Callable[[Any], Any]
    is_async: bool
    inputs: Sequence[Any] | LazyInputs | None
    label: str
    bare: Callable[[], Any] | None = None
    """The agent itself when it takes no input: the hot path calls it with no wrapper frame."""
    coroutine: bool = False
    """Every call returns a coroutine (an ``async def`` function): awaited without a check."""

    def input_for(self, i: int) -> Any:
        inputs = self.inputs
        if inputs is None:
            return _NO_INPUT
        if isinstance(inputs, LazyInputs):
            return inputs[i]
        return inputs[i % len(inputs)]


def _is_async_callable(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return False
    call = type(fn).__dict__.get("__call__") or getattr(type(fn), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def _returns_coroutine(fn: Any) -> bool:
    """Whether ``fn`` is an ``async def`` function (or a method or partial of one).

    Read from the code flags, not ``inspect.iscoroutinefunction``, which is also true for a
    function marked with ``inspect.markcoroutinefunction`` that may return any awaitable.
    """
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)  # a bound method
    return isinstance(fn, types.FunctionType) and bool(fn.__code__.co_flags & CO_COROUTINE)


def _is_runnable(fn: Any) -> bool:
    return callable(getattr(fn, "ainvoke", None)) and callable(getattr(fn, "invoke", None))


def as_inputs(inputs: Any) -> Sequence[Any] | LazyInputs:
    """A list or tuple is cycled through; a single string, mapping or scalar is one input.

    Another iterable with a length (a set, an array) is copied into a list; one without (a
    generator, an iterator, possibly endless) is read lazily (``LazyInputs``).
    """
    if isinstance(inputs, (list, tuple, range)):
        if len(inputs) == 0:
            raise UsageError(_EMPTY)
        return inputs
    if isinstance(inputs, LazyInputs):  # already prepared (``readable_again``)
        return inputs
    if isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable):
        return [inputs]
    if isinstance(inputs, Sized):
        items = list(inputs)
        if not items:
            raise UsageError(_EMPTY)
        return items
    iterator = iter(inputs)
    try:
        first = next(iterator)  # an empty iterable is refused before the run, not during it
    except StopIteration:
        raise UsageError(_EMPTY) from None
    return LazyInputs(itertools.chain((first,), iterator))


_EMPTY = "inputs= is empty; pass at least one input, or None to call fn()"


def readable_again(inputs: Any) -> Any:
    """``inputs`` in a form that several passes over one agent can share: a generator or
    iterator becomes ``LazyInputs``, which keeps what the first pass read, so a later pass
    (the memory profile, a confirming run) reads the same items instead of an exhausted
    iterator. Anything else is returned as it is."""
    if inputs is None or isinstance(inputs, (str, bytes, Mapping, Sized, LazyInputs)):
        return inputs
    if not isinstance(inputs, Iterable):
        return inputs
    return as_inputs(inputs)


def make_target(fn: Any, inputs: Any) -> Target:
    """Adapt ``fn`` for the engine; raise UsageError when it cannot be called as an agent."""
    if inputs is not None:
        inputs = as_inputs(inputs)
    label = getattr(fn, "__qualname__", None) or type(fn).__name__
    if _is_runnable(fn):
        if inputs is None:
            raise UsageError(
                f"{label} is a Runnable: pass inputs= (the values given to .ainvoke(input))"
            )
        return Target(fn.ainvoke, True, inputs, label, coroutine=_returns_coroutine(fn.ainvoke))
    if not callable(fn):
        raise UsageError(
            f"agentperf.run() needs a callable agent, got {type(fn).__name__}; "
            "pass a function, a coroutine function or a Runnable"
        )
    is_async = _is_async_callable(fn)
    coroutine = _returns_coroutine(fn)
    if inputs is None:

        def call(_x: Any) -> Any:
            return fn()

        return Target(call, is_async, None, label, fn, coroutine)
    return Target(fn, is_async, inputs, label, coroutine=coroutine)


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


AWAITABLE = 3
"""A value that can be awaited (a coroutine...): the kind ``KindCache`` adds to ``stream_kind``."""


class KindCache:
    """The kind of one target's values, detected once per type.

    An agent returns values of one type call after call, so the hot path compares the type
    with the last one seen (``type(v) is cache.cls``) and calls ``detect`` only when it
    changes. Generators are never cached: whether one is awaitable (``types.coroutine``)
    depends on the instance, not its type; ``detect`` calls them SYNC_STREAM, as
    ``stream_kind`` does.
    """

    __slots__ = ("cls", "kind")

    def __init__(self) -> None:
        self.cls: type | None = None
        self.kind = PLAIN

    def detect(self, value: Any) -> int:
        """PLAIN, SYNC_STREAM, ASYNC_STREAM or AWAITABLE; remembered for ``type(value)``."""
        kind = stream_kind(value)
        if kind == PLAIN and inspect.isawaitable(value):
            kind = AWAITABLE
        if not isinstance(value, types.GeneratorType):
            self.cls = type(value)
            self.kind = kind
        return kind
