"""Randomized blocks: which arm gets which input when, and the one agent that dispatches them.

The run is cut into blocks. In block ``b`` every arm gets the same inputs (the per-arm calls
``b*k`` to ``b*k+k-1`` of the inputs, cycled), and the block's calls of all arms are shuffled
together (seeded). The engine runs the shuffled calls as one load: closed loop they are
interleaved at the same concurrency, open loop they share one arrival stream, each arrival
going to a random arm. Drift of the machine (another process, thermal throttling, a noisy
neighbour) thus hits every arm alike within a block, and pairing arms by block cancels it.
"""

from __future__ import annotations

import inspect
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.log import MAX_ERROR_MESSAGES
from ..engine.target import LazyInputs, as_inputs, make_target
from ..errors import SettingsError, describe
from .arms import DEFAULT_BLOCKS

_NO_INPUT: Any = object()


@dataclass(frozen=True)
class Call:
    """One scheduled call: its index in the schedule, its arm, its block and its input."""

    i: int
    arm: int
    block: int
    x: Any

    def __repr__(self) -> str:
        # what the per-call log shows as the call's input (``--agentperf-log-content``)
        if self.x is _NO_INPUT:
            return ""
        return self.x if isinstance(self.x, str) else repr(self.x)


def block_size(per_arm: int | None, blocks: int | None) -> int:
    """Calls per arm in each block: ``per_arm`` split into ``blocks`` (default
    ``DEFAULT_BLOCKS``, at most one block per call); 10 for a run bounded only by time."""
    if per_arm is None:
        return max(1, math.ceil(10 * DEFAULT_BLOCKS / (blocks or DEFAULT_BLOCKS)))
    return max(1, math.ceil(per_arm / min(blocks or DEFAULT_BLOCKS, per_arm)))


def normalize_inputs(inputs: Any) -> Sequence[Any] | LazyInputs | None:
    """``inputs`` as the engine reads them (``engine.target.as_inputs``); None: no input."""
    return None if inputs is None else as_inputs(inputs)


class Schedule:
    """The shuffled calls of every block, made block by block as the engine reads them.

    ``calls`` holds each call made so far, by index: the engine reads them in order (through
    ``LazyInputs``, under its lock), so a run bounded only by time gets as many blocks as it
    needs, and ``calls[i]`` is call ``i`` afterwards.
    """

    def __init__(
        self,
        arms: int,
        per_arm: int | None,
        k: int,
        inputs: Sequence[Any] | LazyInputs | None,
        seed: int,
    ) -> None:
        self.arms = arms
        self.per_arm = per_arm
        self.k = k
        self.inputs = inputs
        """As ``normalize_inputs`` made them: shared by the warmup and the measured calls."""
        self.rng = np.random.default_rng(seed)
        self.calls: list[Call] = []

    def _input(self, j: int) -> Any:
        inputs = self.inputs
        if inputs is None:
            return _NO_INPUT
        if isinstance(inputs, LazyInputs):
            return inputs[j]
        return inputs[j % len(inputs)]

    def __iter__(self) -> Iterator[Call]:
        for b in itertools.count():
            first = b * self.k
            last = first + self.k if self.per_arm is None else min(first + self.k, self.per_arm)
            if last <= first:
                return
            xs = [self._input(j) for j in range(first, last)]
            pairs = [(a, x) for a in range(self.arms) for x in xs]
            for p in self.rng.permutation(len(pairs)).tolist():
                a, x = pairs[p]
                call = Call(len(self.calls), a, b, x)
                self.calls.append(call)
                yield call

    def all(self) -> list[Call]:
        """Every call, made now (a run bounded by ``requests``)."""
        return list(self)


class Dispatch:
    """The one agent the engine runs: it calls the arm a scheduled call names.

    At the call's entry it notes (time.perf_counter(), call index) in ``marks``: the engine
    reads its start right before calling this, so the marks say which logged row was which
    call (``split.rows_to_calls``). An arm's errors are noted for its own result, then
    re-raised for the engine to count as usual.
    """

    def __init__(self, agents: Sequence[tuple[str, Any]], inputs: bool) -> None:
        probe = [0] if inputs else None
        targets = [make_target(agent, probe) for _, agent in agents]
        kinds = {t.is_async for t in targets}
        if len(kinds) > 1:
            sync = [n for (n, _), t in zip(agents, targets, strict=True) if not t.is_async]
            raise SettingsError(
                f"arms {', '.join(map(repr, sync))} are sync and the others async: the arms of "
                "one comparison must all be sync or all be async (an async agent on a thread "
                "or a sync one on the event loop would not be timed alike); wrap them alike",
                key="arms",
            )
        self.is_async = kinds == {True}
        self.label = f"compare({', '.join(name for name, _ in agents)})"
        """How the engine names the dispatcher (``Target.label``, in its messages)."""
        self.calls: list[Callable[[Any], Any]] = [t.call for t in targets]
        self.marks: list[tuple[float, int]] = []
        self.messages: list[list[str]] = [[] for _ in agents]
        self.errors = [0] * len(agents)
        """Calls of each arm that raised."""
        self._lock = threading.Lock()

    def note(self, arm: int, exc: BaseException) -> None:
        with self._lock:
            self.errors[arm] += 1
            messages = self.messages[arm]
            if len(messages) < MAX_ERROR_MESSAGES:
                text = describe(exc)[:500]
                if text not in messages:
                    messages.append(text)

    def agent(self) -> Callable[[Call], Any]:
        """The function the engine calls: sync or async as the arms are."""
        perf = time.perf_counter
        mark = self.marks.append  # list.append is atomic: safe from every worker thread
        calls = self.calls
        note = self.note

        if self.is_async:

            async def run_async(call: Call) -> Any:
                mark((perf(), call.i))
                try:
                    value = calls[call.arm](call.x)
                    if inspect.isawaitable(value):
                        value = await value
                    return value
                except Exception as exc:
                    note(call.arm, exc)
                    raise

            run_async.__qualname__ = self.label
            return run_async

        def run_sync(call: Call) -> Any:
            mark((perf(), call.i))
            try:
                return calls[call.arm](call.x)
            except Exception as exc:
                note(call.arm, exc)
                raise

        run_sync.__qualname__ = self.label
        return run_sync
