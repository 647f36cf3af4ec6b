"""One run of the engine: warmup calls, then the measured calls, into a ``RawRun``.

``run_load`` (from sync code) and ``arun_load`` (from a coroutine) pick the executor (threads
for a sync agent, coroutines for an async one), run the plan, and return every call's timing in
flat arrays plus usage totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ..errors import UsageError
from ..pricing import PriceTable
from ..settings import Settings
from ..usage import UsageAccumulator
from .async_exec import execute_async
from .log import TIMEOUT, CallLog, MergedLog, merge, merge_counters, merge_usage
from .loop import run_coroutine
from .observer import ProgressSink, RunObserver
from .plan import Plan, RunState
from .target import Target, make_target
from .thread_exec import MAX_OPEN_LOOP_THREADS, execute_threads

T = TypeVar("T")


@dataclass(frozen=True)
class RawRun:
    """What the engine measured, before any statistic is computed."""

    log: MergedLog
    usage: UsageAccumulator
    error_types: dict[str, int]
    error_messages: tuple[str, ...]
    duration: float
    late_starts: int
    aborted: str | None
    target: str
    issued: int | None = None
    """Calls the engine started (or, open loop, dispatched); each must be in ``log``."""
    t0_unix: float = 0.0
    """The run's start as a Unix time (time 0 of the log)."""

    @property
    def timeouts(self) -> int:
        return int(np.count_nonzero(self.log.status == TIMEOUT))


def _raw(target: Target, state: RunState, logs: list[CallLog]) -> RawRun:
    all_logs = [*logs, state.extra]
    log = merge(all_logs, state.t0)
    ran = state.aborted is None and len(log) > 0
    duration = float(log.end.max()) if ran else state.elapsed
    return RawRun(
        log=log,
        usage=merge_usage(all_logs),
        error_types=merge_counters(all_logs),
        error_messages=tuple(state.messages),
        duration=max(duration, 1e-9),
        late_starts=state.late,
        aborted=state.aborted,
        target=target.label,
        issued=state.issued,
        # the wall clock at the run's start: now, minus the perf_counter time since then
        t0_unix=time.time() - (time.perf_counter() - state.t0),
    )


WarmupSink = Callable[[str], None]
"""Told at once, before the measured calls start, when warmup calls failed."""


def _say_warmup(state: RunState, settings: Settings, sink: WarmupSink | None) -> None:
    if sink is not None and state.errors_noted:
        first = state.messages[0] if state.messages else "(no message)"
        sink(
            f"{state.errors_noted} of {settings.warmup} warmup calls failed before the "
            f"measured calls started; first error: {first}"
        )


@dataclass(frozen=True)
class _Extras:
    """What a run takes beside its agent and settings (the keywords of ``run_load``)."""

    observers: Sequence[RunObserver] = ()
    progress: ProgressSink | None = None
    on_warmup: WarmupSink | None = None
    detail: int = 0
    prices: PriceTable | None = None


def _threads(
    target: Target, settings: Settings, x: _Extras, cancel: threading.Event | None = None
) -> RawRun:
    if settings.warmup:
        warm, _ = execute_threads(Plan.warmup(target, settings), measured=False, cancel=cancel)
        _say_warmup(warm, settings, x.on_warmup)
    plan = Plan.measured(target, settings, x.detail, x.prices)
    state, logs = execute_threads(plan, x.observers, x.progress, cancel=cancel)
    return _raw(target, state, logs)


async def _in_thread(fn: Callable[[threading.Event], T]) -> T:
    """Await ``fn(cancel)`` run on a fresh daemon thread (never the loop's default executor).

    When the awaiting task is cancelled, ``cancel`` is set so that the run stops too.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    cancel = threading.Event()

    def settle(value: Any, exc: BaseException | None) -> None:
        if future.done():  # the awaiting side gave up (cancelled) meanwhile
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def body() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = fn(cancel)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop may be closed by now
            loop.call_soon_threadsafe(settle, value, error)

    ctx = contextvars.copy_context()  # the test's context variables reach the workers
    threading.Thread(target=ctx.run, args=(body,), daemon=True, name="agentperf-controller").start()
    try:
        return await future
    except asyncio.CancelledError:
        cancel.set()
        raise


async def arun_load(
    fn: Any,
    inputs: Any,
    settings: Settings,
    *,
    observers: Sequence[RunObserver] = (),
    progress: ProgressSink | None = None,
    on_warmup: WarmupSink | None = None,
    detail: int = 0,
    prices: PriceTable | None = None,
) -> RawRun:
    """Run ``fn`` under the load ``settings`` describe, from a coroutine; ``on_warmup`` hears
    at once about failed warmup calls; ``detail``: what the log keeps of each call
    (``CallLog.detail``); ``prices``: for the spend guard's live ``total_cost``."""
    extras = _Extras(observers, progress, on_warmup, detail, prices)
    return await _arun_target(make_target(fn, inputs), settings, extras)


async def _arun_target(target: Target, settings: Settings, x: _Extras) -> RawRun:
    # made once per run: an iterator of inputs must not be read again by a second target
    if not target.is_async:
        return await _in_thread(lambda cancel: _threads(target, settings, x, cancel))
    if settings.warmup:
        warm, _ = await execute_async(Plan.warmup(target, settings), measured=False)
        _say_warmup(warm, settings, x.on_warmup)
    plan = Plan.measured(target, settings, x.detail, x.prices)
    state, logs = await execute_async(plan, x.observers, x.progress)
    return _raw(target, state, logs)


def run_load(
    fn: Any,
    inputs: Any,
    settings: Settings,
    *,
    observers: Sequence[RunObserver] = (),
    progress: ProgressSink | None = None,
    on_warmup: WarmupSink | None = None,
    detail: int = 0,
    prices: PriceTable | None = None,
) -> RawRun:
    """Run ``fn`` under the load ``settings`` describe, from sync code (no running loop);
    otherwise as ``arun_load``."""
    __tracebackhide__ = True
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise UsageError(
            "agentperf.run() was called inside a running event loop (an async test?); "
            "use `await agentperf.arun(...)` there instead"
        )
    target = make_target(fn, inputs)
    extras = _Extras(observers, progress, on_warmup, detail, prices)
    if not target.is_async:
        return _threads(target, settings, extras)
    run = _arun_target(target, settings, extras)
    # an uncapped open loop may have any number of calls in flight: threads start on demand
    return run_coroutine(run, settings.max_in_flight or MAX_OPEN_LOOP_THREADS)
