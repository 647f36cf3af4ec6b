"""Sync execution on the plugin's own daemon threads: closed loop and open loop.

The threads are daemons so a hung agent call never keeps the interpreter from exiting; a call
that outlives its timeout is abandoned (counted as a timeout) and its thread is replaced.
"""

from __future__ import annotations

import contextvars
import inspect
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import SettingsError, describe
from ..usage import CURRENT_SCOPE, CallScope
from .log import ERROR, OK, TIMEOUT, CallLog
from .monitor import Monitor
from .observer import TICK, ProgressSink, RunObserver, tick_for
from .outcome import record_failure
from .plan import Plan, RunState
from .streams import StreamTimes, consume_sync
from .target import ASYNC_STREAM, SYNC_STREAM, returned_awaitable, stream_kind

MAX_OPEN_LOOP_THREADS = 1024
"""Threads an uncapped sync open-loop run may grow to; give concurrency= to cap it lower."""
MAX_THREADS = 100_000
"""Most threads a sync run may ask for; beyond this no machine runs them (an async agent can)."""


class _Worker:
    """One daemon thread and the call it is making, watched by the monitor for timeouts."""

    __slots__ = ("abandoned", "call_start", "call_t_int", "lock", "log")

    def __init__(self, log: CallLog) -> None:
        self.lock = threading.Lock()
        self.call_start: float | None = None
        self.call_t_int = 0.0
        self.abandoned = False
        self.log = log


class _Pool:
    """The workers of one run and the bookkeeping of how many are still active."""

    def __init__(self, plan: Plan, state: RunState, measured: bool) -> None:
        self.plan = plan
        self.state = state
        self.measured = measured
        self.workers: list[_Worker] = []
        self.logs: list[CallLog] = []
        self.lock = threading.Lock()
        self.active = 0
        self.idle = 0
        self.done = threading.Event()
        self.queue: queue.Queue[tuple[int, float] | None] | None = None
        self.dispatching = False
        # Workers run in copies of the caller's context, as asyncio.to_thread does: the test's
        # context variables (e.g. the LangChain usage hook) reach sync agents too.
        self.context = contextvars.copy_context()

    def spawn(self) -> None:
        log = CallLog()
        worker = _Worker(log)
        with self.lock:
            self.workers.append(worker)
            self.logs.append(log)
            self.active += 1
        target = self._closed_loop if self.queue is None else self._open_loop
        try:
            threading.Thread(
                target=self.context.copy().run,
                args=(target, worker),
                daemon=True,
                name="agentperf-worker",
            ).start()
        except RuntimeError as exc:  # "can't start new thread": the OS limit was reached
            with self.lock:
                self.workers.remove(worker)
                self.active -= 1
            raise SettingsError(
                f"concurrency={self.plan.settings.max_in_flight}: the system could not start "
                f"thread {len(self.workers) + 1} of this sync run ({exc}); lower concurrency, "
                "or pass an async agent (async def), which needs no thread per call",
                key="concurrency",
            ) from exc

    def _retire(self, worker: _Worker) -> None:
        with self.lock:
            if worker.abandoned:
                return
            self.active -= 1
            if self.active == 0 and not self.dispatching:
                self.done.set()

    def _closed_loop(self, worker: _Worker) -> None:
        state = self.state
        perf = time.perf_counter
        try:
            while True:
                i = state.claim()
                if i is None:
                    return
                if not self._call(worker, i, perf() - state.t0):
                    return
        finally:
            self._retire(worker)

    def _open_loop(self, worker: _Worker) -> None:
        state = self.state
        q = self.queue
        assert q is not None
        perf = time.perf_counter
        try:
            while not state.stopping:
                with self.lock:
                    self.idle += 1
                try:
                    item = q.get(timeout=TICK)
                except queue.Empty:
                    # the dispatcher puts its last arrival before it clears `dispatching`:
                    # look at the queue again, or that arrival could be left there
                    if not self.dispatching and q.empty():
                        return
                    continue
                finally:
                    with self.lock:
                        self.idle -= 1
                if item is None or state.stopping:
                    return
                i, t_int = item
                if perf() - state.t0 - t_int > self.plan.late_after:
                    with self.lock:
                        state.late += 1
                if not self._call(worker, i, t_int):
                    return
        finally:
            self._retire(worker)

    def _call(self, worker: _Worker, i: int, t_int: float) -> bool:
        """Make call ``i``; False when this thread must stop (abandoned, or a fatal error)."""
        state = self.state
        target = self.plan.target
        t0 = state.t0
        scope = CallScope()
        token = CURRENT_SCOPE.set(scope)
        stream: StreamTimes | None = None
        error: str | None = None
        value: Any = None
        with worker.lock:
            worker.call_start = time.perf_counter()
            worker.call_t_int = t_int
        cpu0 = time.thread_time()  # this thread's CPU time: contention does not stretch it
        try:
            value = target.call(target.input_for(i))
            kind = stream_kind(value)
            if kind == ASYNC_STREAM or inspect.isawaitable(value):
                if inspect.iscoroutine(value):
                    value.close()
                state.fail(returned_awaitable(target.label))
                return False
            if kind == SYNC_STREAM:
                stream = consume_sync(value, t0 + t_int, self.plan.settings.allow_empty)
        except Exception as exc:
            error = type(exc).__name__
            message = describe(exc)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop the run, propagate
            state.fail(exc)
            return False
        finally:
            CURRENT_SCOPE.reset(token)
        end = time.perf_counter() - t0
        cpu = time.thread_time() - cpu0
        with worker.lock:
            if worker.abandoned:
                return False
            worker.call_start = None
            if self.measured:
                if error is not None:
                    state.note_error(message)
                status = OK if error is None else ERROR
                model = self.plan.settings.model
                try:
                    worker.log.record(t_int, end, status, error, stream, scope, value, model, cpu)
                except Exception as exc:  # reading the result failed (usage): this call's error
                    record_failure(worker.log, state, exc, t_int, end, scope, model)
        return True

    def check_timeouts(self, now: float) -> None:
        """Abandon calls that outlived the timeout; count them and replace their threads."""
        timeout = self.plan.settings.timeout
        for worker in list(self.workers):
            with worker.lock:
                started = worker.call_start
                if started is None or worker.abandoned or now - started < timeout:
                    continue
                worker.abandoned = True
                t_int = worker.call_t_int
            with self.lock:
                self.active -= 1
                self.workers.remove(worker)
            if self.measured:  # the abandoned thread's own scope is out of reach: no usage
                end = now - self.state.t0
                self.state.extra.record(t_int, end, TIMEOUT, None, None, CallScope(), None, None)
            if not self.state.stopping:
                self.spawn()
            elif self.active == 0:
                self.done.set()

    def abandon_all(self) -> None:
        """On abort: leave in-flight calls behind without recording them."""
        for worker in list(self.workers):
            with worker.lock:
                worker.abandoned = True
        self.done.set()


def _dispatch(pool: _Pool) -> None:
    state = pool.state
    q = pool.queue
    assert q is not None
    cap = pool.plan.settings.max_in_flight
    perf = time.perf_counter
    try:
        for i, t_int in pool.plan.arrivals():
            if state.stopping:
                break
            delay = state.t0 + t_int - perf()
            if delay > 0:
                time.sleep(delay)
            if cap is None and pool.idle == 0 and len(pool.workers) < MAX_OPEN_LOOP_THREADS:
                pool.spawn()
            state.scheduled += 1  # this thread alone counts arrivals
            q.put((i, t_int))
    except BaseException as exc:  # the schedule broke: fail the run, never end it short
        state.fail(exc)
    finally:
        with pool.lock:
            pool.dispatching = False
            waiting = len(pool.workers)
            if pool.active == 0:
                pool.done.set()
        # one sentinel per worker: none is left waiting on the queue for a call that never comes
        for _ in range(waiting):
            q.put(None)


def execute_threads(
    plan: Plan,
    observers: Sequence[RunObserver] = (),
    progress: ProgressSink | None = None,
    *,
    measured: bool = True,
    cancel: threading.Event | None = None,
) -> tuple[RunState, list[CallLog]]:
    """Run ``plan`` on daemon threads, monitoring from the calling thread.

    Setting ``cancel`` stops the run as an abort does: in-flight calls are left behind.
    """
    state = RunState(plan, cancel)
    pool = _Pool(plan, state, measured)
    state.on_fatal = pool.done.set
    open_loop = plan.settings.rate is not None and measured
    if open_loop:
        pool.queue = queue.Queue()
        pool.dispatching = True

    def stop() -> None:
        state.stopping = True
        pool.abandon_all()

    monitor = Monitor(plan, state, pool.logs, observers, progress, stop)
    state.start()
    monitor.start()
    try:
        if open_loop:
            threads = plan.settings.max_in_flight or 1
            if plan.total is not None:  # never more threads than calls to make
                threads = min(threads, plan.total)
        else:
            threads = plan.workers
        if threads > MAX_THREADS:
            raise SettingsError(
                f"concurrency={plan.settings.max_in_flight}: a sync agent needs a thread per "
                f"call in flight, and more than {MAX_THREADS:,} threads cannot work; lower "
                "concurrency, or pass an async agent (async def)",
                key="concurrency",
            )
        try:
            for _ in range(threads):
                pool.spawn()
        except SettingsError:
            stop()  # the threads already started finish their call and find nothing to claim
            raise
        if open_loop:
            threading.Thread(target=_dispatch, args=(pool,), daemon=True).start()
        tick = tick_for(plan.settings.timeout)
        while not pool.done.wait(tick):
            if state.stopping and state.aborted is None and state.fatal is None:
                stop()  # cancelled from outside: leave in-flight calls behind, as an abort does
                break
            pool.check_timeouts(time.perf_counter())
            monitor.tick()
    except BaseException:
        state.stopping = True
        raise
    finally:
        state.finish()
        monitor.stop()
    if state.fatal is not None:
        raise state.fatal
    return state, pool.logs
