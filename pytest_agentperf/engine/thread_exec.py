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
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import SettingsError, describe
from ..usage import CURRENT_SCOPE, CallScope
from .log import ERROR, KEEP_CONTENT, OK, TIMEOUT, CallLog
from .monitor import Monitor
from .observer import TICK, ProgressSink, RunObserver, tick_for
from .outcome import record_failure
from .plan import Plan, RunState
from .streams import StreamTimes, consume_sync
from .target import PLAIN, SYNC_STREAM, KindCache, returned_awaitable

MAX_OPEN_LOOP_THREADS = 1024
"""Threads an uncapped sync open-loop run may grow to; give concurrency= to cap it lower."""
MAX_THREADS = 100_000
"""Most threads a sync run may ask for; beyond this no machine runs them (an async agent can)."""


class _Worker:
    """One daemon thread and the call it is making, watched by the monitor for timeouts."""

    __slots__ = ("abandoned", "call_t_int", "flight", "index", "kinds", "lock", "log")

    def __init__(self, log: CallLog, index: int = 0) -> None:
        self.index = index
        """Its place among the workers: closed-loop stages activate workers in this order."""
        self.lock = threading.Lock()
        self.flight: dict[int, float] = {}
        """``{0: start}`` while a call is in flight (perf_counter); empty between calls."""
        self.call_t_int: float | None = None
        """The intended start (open loop), or None: the call started when it did."""
        self.abandoned = False
        self.log = log
        self.kinds = KindCache()  # one per thread: a shared cache would be updated in a race


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
        self.spawned = 0
        # Workers run in copies of the caller's context, as asyncio.to_thread does: the test's
        # context variables (e.g. the LangChain usage hook) reach sync agents too.
        self.context = contextvars.copy_context()

    def spawn(self, index: int | None = None) -> None:
        """Start a worker thread; ``index``: the place of the worker it replaces."""
        measured = self.measured
        log = CallLog(self.plan.detail if measured else 0, self.state.meter if measured else None)
        if index is None:
            index, self.spawned = self.spawned, self.spawned + 1
        worker = _Worker(log, index)
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
        try:
            if state.ramp is None:
                self._calls(worker, None)
                return
            # closed-loop stages: work while the ramp has this worker active, else wait
            while (wake := state.wake_at(worker.index)) is not None:
                delay = wake - time.perf_counter()
                if delay > 0:
                    time.sleep(min(delay, TICK))  # wakes each tick to notice a stop
                elif not self._calls(worker, None) or worker.abandoned:
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
                if not self._calls(worker, (i, t_int)):
                    return
        finally:
            self._retire(worker)

    def _calls(self, worker: _Worker, one: tuple[int, float] | None) -> bool:
        """Make the call ``one`` (index, intended start), or, closed loop, calls claimed from
        the run until it is over; False when this thread must stop (abandoned, fatal error).

        The usage scope is set once for all the calls made here, and this thread's CPU time is
        read once at either end of them (``CallLog.add_cpu``): a CPU-time read is a system
        call on Linux, dearer than a no-op call. The two timestamps sit right around the
        agent call; the bookkeeping stays outside them.
        """
        log = worker.log
        scope = CallScope()
        token = CURRENT_SCOPE.set(scope)
        rows = len(log)
        cpu0 = time.thread_time()  # this thread's CPU time: contention does not stretch it
        done = False
        try:
            done = self._loop(worker, one, scope)
            return done
        finally:
            # an abandoned call is counted too (it was recorded as a timeout), so the calls
            # this thread made are its rows plus the one left behind
            if self.measured and self.state.fatal is None:
                log.add_cpu(time.thread_time() - cpu0, len(log) - rows + (not done))
            CURRENT_SCOPE.reset(token)

    def _loop(self, worker: _Worker, one: tuple[int, float] | None, scope: CallScope) -> bool:
        """``_calls`` without its set-up: the hot path.

        The call in flight is ``worker.flight[0]`` (its start): the worker takes it back with
        one atomic ``dict.pop`` when the call returns, so the common case needs no lock (see
        ``check_timeouts`` for the monitor's side).
        """
        state = self.state
        target = self.plan.target
        bare = target.bare
        call = target.call
        input_for = target.input_for
        measured = self.measured
        model = self.plan.settings.model
        kinds = worker.kinds
        flight = worker.flight
        take = flight.pop
        log = worker.log
        add_start = log.start.append
        add_actual = log.actual.append
        add_end = log.end.append
        content = log.detail == KEEP_CONTENT  # every call through ``record``: it keeps text
        perf = time.perf_counter
        # rows hold perf_counter readings: the run's start is subtracted once, at the merge
        t_int: float | None = None  # the intended start (open loop), a perf_counter reading
        if one is None:
            indices: Iterable[int] = state.claims(worker.index)  # this thread's own
        else:
            indices = (one[0],)
            worker.call_t_int = one[1]  # before the start: the monitor reads it first
            t_int = state.t0 + one[1]
        for i in indices:
            stream: StreamTimes | None = None
            x: Any = None
            try:
                if bare is not None:
                    flight[0] = start = perf()
                    value = bare()
                else:
                    start = 0.0  # reading the input may fail: then the call never started
                    x = input_for(i)
                    flight[0] = start = perf()
                    value = call(x)
                end = perf()
                if value is not None:  # None is plain: no check of the return type
                    kind = kinds.kind if type(value) is kinds.cls else kinds.detect(value)
                    if kind == SYNC_STREAM and not inspect.isawaitable(value):
                        t_stream = start if t_int is None else t_int
                        stream = consume_sync(value, t_stream, self.plan.settings.allow_empty)
                        end = perf()
                    elif kind != PLAIN:  # an awaitable or an async iterator: a misuse
                        if inspect.iscoroutine(value):
                            value.close()
                        state.fail(returned_awaitable(target.label))
                        return False
            except Exception as exc:
                end = perf()
                if start and take(0, None) is None and not self._reclaim(worker):
                    return False  # abandoned: the monitor recorded this call as a timeout
                taken = scope.take() if scope.records or scope.tools else None
                state.note_error(describe(exc))  # warmup errors too: the run says so at once
                if measured:
                    t_call = (start or end) if t_int is None else t_int  # no start: no input
                    error = type(exc).__name__
                    actual = None if t_int is None else (start or end)
                    log.record(t_call, end, ERROR, error, None, taken, None, model, actual, x)
                continue
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop the run, propagate
                state.fail(exc)
                return False
            if take(0, None) is None and not self._reclaim(worker):
                return False  # abandoned: the monitor recorded this call as a timeout
            if measured:
                if value is None and not (scope.records or scope.tools or content):
                    # the hot path: a plain call that recorded nothing
                    if t_int is None:
                        add_start(start)
                    else:  # open loop: the intended start, then the actual one
                        add_start(t_int)
                        add_actual(start)
                    add_end(end)
                else:
                    t_call = start if t_int is None else t_int
                    actual = None if t_int is None else start
                    taken = scope.take() if scope.records or scope.tools else None
                    try:
                        log.record(t_call, end, OK, None, stream, taken, value, model, actual, x)
                    except Exception as exc:  # reading the result failed (usage): its error
                        record_failure(log, state, exc, t_call, end, taken, model, actual)
            elif scope.records or scope.tools:
                scope.take()  # warmup: what the call recorded is dropped
        return True

    def _reclaim(self, worker: _Worker) -> bool:
        """The call's start was not in ``flight``: the monitor took it. Whether it gave it
        back (the call had not timed out) rather than abandoning the call."""
        with worker.lock:  # the monitor holds it while it has the start: wait for its verdict
            if worker.abandoned:
                return False
            worker.flight.pop(0, None)
            return True

    def check_timeouts(self, now: float) -> None:
        """Abandon calls that outlived the timeout; count them and replace their threads.

        The worker clears its call with one ``flight.pop`` and takes the lock only when the
        start was gone; the monitor takes the start out under the lock, so the two never both
        think they own a call: a call is either recorded by its worker or abandoned here.
        """
        timeout = self.plan.settings.timeout
        t0 = self.state.t0
        for worker in list(self.workers):
            started = worker.flight.get(0)
            if started is None or now - started < timeout:
                continue
            with worker.lock:
                if worker.abandoned:
                    continue
                t_int = worker.call_t_int
                taken = worker.flight.pop(0, None)
                if taken is None:  # the call ended meanwhile
                    continue
                if now - taken < timeout:  # a new call started meanwhile: give it back
                    worker.flight[0] = taken
                    continue
                worker.abandoned = True
            # closed loop: the call was meant to start when it did
            start = taken if t_int is None else t0 + t_int
            with self.lock:
                self.active -= 1
                self.workers.remove(worker)
            if self.measured:  # the abandoned thread's own scope is out of reach: no usage
                self.state.extra.record(start, now, TIMEOUT, None, None, None, None, None)
            if not self.state.stopping:
                self.spawn(worker.index)
            elif self.active == 0:
                self.done.set()

    def abandon_all(self) -> None:
        """On abort: leave in-flight calls behind without recording them."""
        for worker in list(self.workers):
            with worker.lock:
                worker.abandoned = True
                worker.flight.pop(0, None)  # the worker finds its call taken: not recorded
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
