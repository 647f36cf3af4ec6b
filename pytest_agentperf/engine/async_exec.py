"""Async execution: closed loop (worker coroutines) and open loop (scheduled tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ..errors import describe
from ..usage import CURRENT_SCOPE, CallScope
from .log import ERROR, KEEP_CONTENT, OK, TIMEOUT, CallLog
from .loop import GRACE
from .monitor import Monitor
from .observer import TICK, ProgressSink, RunObserver, tick_for
from .outcome import record_failure
from .plan import Plan, RunState
from .streams import StreamTimes, consume_async, consume_sync
from .target import ASYNC_STREAM, PLAIN, SYNC_STREAM, KindCache

_STREAMS = frozenset((SYNC_STREAM, ASYNC_STREAM))


class _Slot:
    """A call in flight, watched by the monitor: it cancels the call when the timeout passes.

    One timer check per tick for all calls is far cheaper than a timer handle per call.
    """

    __slots__ = ("cancelled_at", "cancels", "start", "task", "timed_out")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task
        self.start: float | None = None
        self.timed_out = False
        self.cancels = 0
        self.cancelled_at = 0.0


async def _calls(
    plan: Plan,
    state: RunState,
    slot: _Slot,
    log: CallLog,
    measured: bool,
    kinds: tuple[KindCache, KindCache],
    one: tuple[int, float] | None = None,
    worker: int | None = None,
) -> None:
    """Make calls and append their rows to ``log``: the one call ``one`` (index, intended
    start), or, closed loop, calls claimed from ``state`` until the run is over.

    A closed-loop worker makes all its calls in this one coroutine (no coroutine per call),
    with one usage scope set for all of them (see ``CallScope``).
    """
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        await _loop(plan, state, slot, log, measured, kinds, one, scope, worker)
    finally:
        slot.start = None  # the hot path leaves it set between calls
        # try/except, not contextlib.suppress: free on the normal path (no context manager)
        try:  # noqa: SIM105
            CURRENT_SCOPE.reset(token)
        except ValueError:  # a coroutine closed by the GC runs in no context of its own
            pass


async def _loop(
    plan: Plan,
    state: RunState,
    slot: _Slot,
    log: CallLog,
    measured: bool,
    kinds: tuple[KindCache, KindCache],
    one: tuple[int, float] | None,
    scope: CallScope,
    worker: int | None = None,
) -> None:
    """``_calls`` without its set-up: the hot path.

    A call's start is taken right before the agent is called, its end right after it returns;
    the bookkeeping stays outside the two timestamps. A plain call that returned None and
    recorded nothing costs two appends (``log.start``, ``log.end``).
    """
    target = plan.target
    bare = target.bare
    call = target.call
    input_for = target.input_for
    coroutine = target.coroutine
    allow_empty = plan.settings.allow_empty
    model = plan.settings.model
    first, second = kinds
    add_start = log.start.append
    add_actual = log.actual.append
    add_end = log.end.append
    content = measured and log.detail == KEEP_CONTENT  # every call through ``record``
    perf = time.perf_counter
    # rows hold perf_counter readings: the run's start is subtracted once, at the merge
    closed = one is None
    if one is None:
        indices: Iterable[int] = state.claims(worker)  # this worker's own: none is shared
        t_int = 0.0  # the intended start (open loop), a perf_counter reading
    else:
        indices = (one[0],)
        t_int = state.t0 + one[1]
    for i in indices:
        error: str | None = None
        stream: StreamTimes | None = None
        value: Any = None
        x: Any = None
        start = 0.0
        try:
            if bare is None:
                x = input_for(i)
                slot.start = start = perf()
                value = call(x)
            else:
                slot.start = start = perf()
                value = bare()
            if coroutine:  # an async def function: its coroutine needs no check
                value = await value
                end = perf()
                # the hot path, unless the call timed out or recorded usage. ``slot.start``
                # is left set: the worker does not suspend before its next call sets it again
                if value is None and not (
                    slot.timed_out or scope.records or scope.tools or content
                ):
                    if measured:
                        if closed:
                            add_start(start)
                        else:  # open loop: the intended start, then the actual one
                            add_start(t_int)
                            add_actual(start)
                        add_end(end)
                    continue
                kind = PLAIN
            else:
                kind = first.kind if type(value) is first.cls else first.detect(value)
                if kind in _STREAMS:
                    end = perf()
                else:  # an awaitable (or a plain value, which fails to be awaited)
                    value = await value
                    end = perf()
                    kind = PLAIN
            if kind == PLAIN and value is not None:  # what the call awaited to: None is plain
                kind = second.kind if type(value) is second.cls else second.detect(value)
            if kind in _STREAMS:
                if closed:
                    t_int = start
                if kind == ASYNC_STREAM:
                    stream = await consume_async(value, t_int, allow_empty)
                else:
                    stream = consume_sync(value, t_int, allow_empty)
                end = perf()
        except asyncio.CancelledError as exc:
            end = perf()
            if not slot.timed_out:
                if state.stopping:  # the run is being stopped (abort, fatal error, cancelled)
                    return
                if _cancel_requested(slot.task):  # someone cancelled this task: let it end
                    raise
                # Nobody cancelled this task: the agent raised CancelledError itself (e.g. it
                # awaited an inner task that was cancelled). That is this call's failure.
                error = type(exc).__name__
                state.note_error(describe(exc))
        except Exception as exc:  # the agent's failure is a measurement, not a crash
            end = perf()
            if not slot.timed_out:  # else it is the agent's answer to our cancellation: a timeout
                error = type(exc).__name__
                state.note_error(describe(exc))
        except BaseException as exc:  # KeyboardInterrupt, SystemExit...: stop the run, propagate
            state.fail(exc)
            raise
        slot.start = None
        if slot.timed_out:
            # The deadline fired. The agent may have swallowed or converted the cancellation;
            # either way the call outlived its timeout, and the task must stay usable.
            slot.timed_out = False
            for _ in range(slot.cancels):
                _uncancel(slot.task)
            slot.cancels = 0
            status = TIMEOUT
        elif error is None:
            if value is None and not (scope.records or scope.tools or content):
                if measured:  # a plain call that recorded nothing
                    if closed:
                        add_start(start)
                    else:
                        add_start(t_int)
                        add_actual(start)
                    add_end(end)
                continue
            status = OK
        else:
            status = ERROR
        taken = scope.take() if scope.records or scope.tools else None
        if measured:
            actual = None if closed else (start or end)
            if closed:
                t_int = start or end  # no start: the input could not be read
            try:
                log.record(t_int, end, status, error, stream, taken, value, model, actual, x)
            except Exception as exc:  # reading the result failed (usage): this call's error
                record_failure(log, state, exc, t_int, end, taken, model, actual)


def _uncancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


def _cancel_requested(task: asyncio.Task[Any] | None) -> bool:
    """Whether ``task`` has a pending cancellation request (Python 3.11+).

    Python 3.10 cannot tell; there a CancelledError that neither a timeout nor a stopping run
    explains is taken as the agent's own.
    """
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0


RECANCEL = 1.0
"""Seconds after which a timed-out call that is still running is cancelled again."""


def _expire(slots: Iterable[_Slot], now: float, timeout: float) -> None:
    """Cancel every call that has run longer than ``timeout``.

    A call that swallowed the cancellation is cancelled again every ``RECANCEL`` seconds, so
    cleanup shorter than that is never cut short. An agent that swallows every cancellation
    cannot be stopped from outside; its call ends when it chooses to.
    """
    for slot in list(slots):
        start = slot.start
        if start is None or now - start <= timeout or slot.task is None:
            continue
        if slot.timed_out and now - slot.cancelled_at < RECANCEL:
            continue
        slot.timed_out = True
        slot.cancelled_at = now
        slot.cancels += 1
        slot.task.cancel()


async def _closed_worker(
    plan: Plan,
    state: RunState,
    slot: _Slot,
    log: CallLog,
    measured: bool,
    kinds: tuple[KindCache, KindCache],
    index: int = 0,
) -> None:
    slot.task = asyncio.current_task()
    if state.ramp is None:
        await _calls(plan, state, slot, log, measured, kinds)
        return
    # closed-loop stages: work while the ramp has this worker active, else wait
    while (wake := state.wake_at(index)) is not None:
        delay = wake - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await _calls(plan, state, slot, log, measured, kinds, worker=index)


async def _open_dispatch(
    plan: Plan,
    state: RunState,
    log: CallLog,
    slots: set[_Slot],
    kinds: tuple[KindCache, KindCache],
) -> None:
    perf = time.perf_counter
    loop = asyncio.get_running_loop()
    cap = plan.settings.max_in_flight
    sem = asyncio.Semaphore(cap) if cap else None
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, t_int: float) -> None:
        if perf() - state.t0 - t_int > plan.late_after:
            state.late += 1
        slot = _Slot(asyncio.current_task())
        slots.add(slot)
        try:
            await _calls(plan, state, slot, log, True, kinds, (i, t_int))
        finally:
            slots.discard(slot)
            if sem is not None:
                sem.release()

    try:
        for i, t_int in plan.arrivals():
            if state.stopping:
                break
            delay = state.t0 + t_int - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            if sem is not None:
                await sem.acquire()
            if state.stopping:
                break
            state.scheduled += 1  # this coroutine alone counts arrivals
            task = loop.create_task(one(i, t_int))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except asyncio.CancelledError:
        for t in list(tasks):
            t.cancel()
        if not state.stopping:
            raise
    finally:
        # a fatal outcome is raised by execute_async; a stopped run waits only a grace period
        await settle(tasks, state)


async def settle(tasks: Collection[asyncio.Task[Any]], state: RunState) -> None:
    """Wait for ``tasks``; once the run is stopping, wait at most ``GRACE`` more seconds.

    A call whose cleanup outlasts the grace is left to finish in the background; its outcome
    is retrieved when it ends, so nothing is reported as never retrieved.
    """
    pending = {t for t in tasks if not t.done()}
    stop_seen: float | None = None
    while pending:
        if state.stopping and stop_seen is None:
            stop_seen = time.perf_counter()
        wait = None if stop_seen is None else stop_seen + GRACE - time.perf_counter()
        if wait is not None and wait <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(TICK, wait) if wait else TICK)
    for task in tasks:
        if task.done():
            _retrieve(task)
        else:
            task.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _monitor_loop(monitor: Monitor, slots: Iterable[_Slot], timeout: float) -> None:
    tick = tick_for(timeout)
    while True:
        await asyncio.sleep(tick)
        _expire(slots, time.perf_counter(), timeout)
        monitor.tick()


async def execute_async(
    plan: Plan,
    observers: Sequence[RunObserver] = (),
    progress: ProgressSink | None = None,
    *,
    measured: bool = True,
) -> tuple[RunState, list[CallLog]]:
    """Run ``plan`` on the running event loop; returns its state and per-worker logs."""
    state = RunState(plan)
    loop = asyncio.get_running_loop()
    slots: set[_Slot] = set()
    kinds = (KindCache(), KindCache())  # of what the call returns, of what it awaits to
    if plan.settings.rate is not None and measured:
        logs = [CallLog(plan.detail, state.meter)]
        coros = [_open_dispatch(plan, state, logs[0], slots, kinds)]
    else:
        # One log for every worker: they all run on this thread, and a log per worker would
        # cost memory per unit of concurrency even when few calls are made.
        logs = [CallLog(plan.detail if measured else 0, state.meter if measured else None)]
        slots.update(_Slot(None) for _ in range(plan.workers))
        coros = [
            _closed_worker(plan, state, slot, logs[0], measured, kinds, index)
            for index, slot in enumerate(slots)
        ]
    tasks: list[asyncio.Task[None]] = []

    def cancel_workers() -> None:
        current = asyncio.current_task()
        for t in tasks:
            if t is not current:
                t.cancel()

    state.on_fatal = cancel_workers

    monitor = Monitor(plan, state, logs, observers, progress, cancel_workers)
    state.start()
    monitor.start()
    tasks.extend(loop.create_task(c) for c in coros)
    ticker = loop.create_task(_monitor_loop(monitor, slots, plan.settings.timeout))
    try:
        await settle(tasks, state)
    except BaseException:
        state.stopping = True
        cancel_workers()
        with contextlib.suppress(BaseException):
            await settle(tasks, state)
        raise
    finally:
        state.finish()
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        monitor.stop()
    # retrieve every outcome (so asyncio reports none as lost), then raise the first that matters
    errors = [t.exception() for t in tasks if t.done() and not t.cancelled()]
    if state.fatal is not None:
        raise state.fatal
    for error in errors:
        if error is not None:
            raise error
    return state, logs
