"""Async execution: closed loop (worker coroutines) and open loop (scheduled tasks)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..usage import CallScope, _current, extract_usage
from .log import ERROR, OK, TIMEOUT, CallLog
from .monitor import Monitor
from .observer import TICK, ProgressSink, RunObserver
from .plan import Plan, RunState
from .streams import consume_async, consume_sync
from .target import is_async_stream, is_sync_stream

_NAN = float("nan")

if sys.version_info >= (3, 11):

    def _deadline(seconds: float) -> Any:
        return asyncio.timeout(seconds)

else:  # pragma: no cover - exercised on Python 3.10 only

    class _Deadline:
        """asyncio.timeout for Python 3.10: cancels the current task after ``seconds``."""

        def __init__(self, seconds: float) -> None:
            self._seconds = seconds
            self._fired = False
            self._handle: asyncio.TimerHandle | None = None

        def _fire(self, task: asyncio.Task[Any]) -> None:
            self._fired = True
            task.cancel()

        async def __aenter__(self) -> _Deadline:
            task = asyncio.current_task()
            assert task is not None
            self._handle = asyncio.get_running_loop().call_later(self._seconds, self._fire, task)
            return self

        async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
            assert self._handle is not None
            self._handle.cancel()
            if self._fired and exc_type is asyncio.CancelledError:
                raise TimeoutError
            return False

        def expired(self) -> bool:
            return self._fired

    def _deadline(seconds: float) -> Any:
        return _Deadline(seconds)


async def _one_call(
    plan: Plan, state: RunState, i: int, t_int: float, log: CallLog, measured: bool
) -> None:
    """Run call ``i`` (intended to start at ``t_int``) and append its row to ``log``."""
    target = plan.target
    t0 = state.t0
    scope = CallScope()
    token = _current.set(scope)
    status = OK
    ttft = _NAN
    deadline = _deadline(plan.settings.timeout)
    try:
        async with deadline:
            value = target.call(target.input_for(i))
            if not is_async_stream(value):
                value = await value
            if is_async_stream(value):
                ttft = await consume_async(value, t_int, t0, log)
            elif is_sync_stream(value):
                ttft = consume_sync(value, t_int, t0, log)
    except asyncio.CancelledError:
        if state.stopping:
            return
        raise
    except Exception as exc:  # the agent's failure is a measurement, not a crash
        if isinstance(exc, TimeoutError) and deadline.expired():
            status = TIMEOUT
            log.error_types["Timeout"] += 1
        else:
            status = ERROR
            name = type(exc).__name__
            log.error_types[name] += 1
            state.note_error(f"{name}: {exc}")
        value = None
    finally:
        _current.reset(token)
    end = time.perf_counter() - t0
    if not measured:
        return
    log.start.append(t_int)
    log.end.append(end)
    log.status.append(status)
    log.ttft.append(ttft)
    if status == OK:
        log.usage.add_call(scope.records or extract_usage(value) or (), plan.settings.model)
    if scope.tools:
        log.usage.add_tools(scope.tools)


async def _closed_worker(plan: Plan, state: RunState, log: CallLog, measured: bool) -> None:
    perf = time.perf_counter
    t0 = state.t0
    while True:
        i = state.claim()
        if i is None:
            return
        await _one_call(plan, state, i, perf() - t0, log, measured)


async def _open_dispatch(plan: Plan, state: RunState, log: CallLog) -> None:
    perf = time.perf_counter
    loop = asyncio.get_running_loop()
    cap = plan.settings.max_in_flight
    sem = asyncio.Semaphore(cap) if cap else None
    tasks: set[asyncio.Task[None]] = set()

    async def capped(i: int, t_int: float) -> None:
        assert sem is not None
        try:
            await _one_call(plan, state, i, t_int, log, True)
        finally:
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
            if perf() - state.t0 - t_int > plan.late_after:
                state.late += 1
            coro = (
                capped(i, t_int) if sem is not None else _one_call(plan, state, i, t_int, log, True)
            )
            task = loop.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for t in list(tasks):
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if not state.stopping:
            raise


async def _monitor_loop(monitor: Monitor) -> None:
    while True:
        await asyncio.sleep(TICK)
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
    if plan.settings.rate is not None and measured:
        logs = [CallLog()]
        coros = [_open_dispatch(plan, state, logs[0])]
    else:
        n = plan.workers
        logs = [CallLog() for _ in range(n)]
        coros = [_closed_worker(plan, state, log, measured) for log in logs]
    tasks: list[asyncio.Task[None]] = []

    def cancel_workers() -> None:
        for t in tasks:
            t.cancel()

    monitor = Monitor(plan, state, logs, observers, progress, cancel_workers)
    state.start()
    monitor.start()
    tasks.extend(loop.create_task(c) for c in coros)
    ticker = loop.create_task(_monitor_loop(monitor))
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        state.stopping = True
        cancel_workers()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        state.finish()
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        monitor.stop()
    for r in results:
        if isinstance(r, BaseException) and not (
            isinstance(r, asyncio.CancelledError) and state.stopping
        ):
            raise r
    return state, logs
