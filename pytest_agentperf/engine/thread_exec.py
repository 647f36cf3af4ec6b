"""Sync execution on the plugin's own daemon threads: closed loop and open loop.

The threads are daemons so a hung agent call never keeps the interpreter from exiting; a call
that outlives its timeout is abandoned (counted as a timeout) and its thread is replaced.
"""

from __future__ import annotations

import contextvars
import inspect
import math
import queue
import sys
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

LOCKED_HAND_OFF = not getattr(sys, "_is_gil_enabled", lambda: True)()
"""A free-threaded build without the GIL: the worker's side of the timeout hand-off takes the
lock (see ``_Worker``)."""
MAX_OPEN_LOOP_THREADS = 1024
"""Threads an uncapped sync open-loop run may grow to; give concurrency= to cap it lower."""
MAX_THREADS = 100_000
"""Most threads a sync run may ask for; beyond this no machine runs them (an async agent can)."""
SETTLE_TIMEOUT = 0.1
"""Seconds a stopped run waits for the workers between two calls to hand their rows over (one
reading a slow generator of inputs may take longer: then its rows of the last ms are lost)."""
FLUSH_EVERY = 0.005
"""Seconds a closed-loop worker keeps the rows of plain calls in its lists before it hands
them to its log (``CallLog.extend``): how far the observers and the progress line may lag."""


class _Worker:
    """One daemon thread and the call it is making, watched by the monitor for timeouts.

    The timeout hand-off, by which a call is recorded either by its worker or by the monitor
    as a timeout, never both, costs the worker two attribute stores and a load per call:

    - worker: ``start = s`` before the call; after it ``start = None`` (W), then it reads
      ``claim`` (R): None, the call is its own; else it waits on ``lock`` for the verdict
      (``abandoned``).
    - monitor (``check_timeouts``), holding ``lock`` throughout: having seen ``start is s``
      expired, it sets ``claim = s`` (W'), then reads ``start`` (R'): still ``s``, it abandons
      the call; else it clears ``claim`` and leaves the call to the worker.

    Under the GIL one thread runs bytecode at a time and each hand-over of the GIL is a full
    memory barrier, so the stores and loads above happen in one order: of W-then-R and
    W'-then-R', at least one load sees the other's store (Dekker's argument). Either the
    monitor sees the call ended, or the worker sees the claim and waits for the verdict. ``s``
    is compared by identity: the monitor holds it, so a later call's start is another object.
    A free-threaded build does not order plain stores and loads of two attributes, so there
    the worker makes W under ``lock`` (``LOCKED_HAND_OFF``), which orders it with W'-R'.
    """

    __slots__ = (
        "abandoned",
        "call_t_int",
        "claim",
        "ends",
        "index",
        "kinds",
        "lock",
        "log",
        "start",
        "starts",
    )

    def __init__(self, log: CallLog, index: int = 0) -> None:
        self.index = index
        """Its place among the workers: closed-loop stages activate workers in this order."""
        self.lock = threading.Lock()
        self.start: float | None = None
        """The start (perf_counter) of the call in flight; None between calls."""
        self.claim: float | None = None
        """The start of the call the monitor is judging or has abandoned (set under
        ``lock``); ``-inf`` for a call a stop left behind (``abandon_all``)."""
        self.call_t_int: float | None = None
        """The intended start (open loop), or None: the call started when it did."""
        self.abandoned = False
        self.log = log
        self.kinds = KindCache()  # one per thread: a shared cache would be updated in a race
        self.starts: list[float] = []
        self.ends: list[float] = []
        """Rows of plain calls not yet handed to ``log`` (closed loop, see ``_loop``). Only
        the thread that owns the call in flight touches them: the worker, or the monitor once
        it has taken the worker's call (``check_timeouts``, ``abandon_all``)."""

    def flush(self) -> None:
        """Hand the rows kept in ``starts`` and ``ends`` to the log."""
        self.log.extend(self.starts, self.ends)


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
        self.settled = threading.Event()
        """Set when no worker is active: each one has handed its rows to its log."""
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
            if self.active == 0:
                self.settled.set()
                if not self.dispatching:
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
            worker.flush()  # abandoned: a no-op, the monitor handed the rows over
            # an abandoned call is counted too (it was recorded as a timeout), so the calls
            # this thread made are its rows plus the one left behind
            if self.measured and self.state.fatal is None:
                log.add_cpu(time.thread_time() - cpu0, len(log) - rows + (not done))
            CURRENT_SCOPE.reset(token)

    def _loop(self, worker: _Worker, one: tuple[int, float] | None, scope: CallScope) -> bool:
        """``_calls`` without its set-up: the hot path.

        The call in flight is ``worker.start``: the worker clears it when the call returns and
        needs the lock only when the monitor has claimed the call meanwhile (the hand-off is
        described on ``_Worker``).
        """
        state = self.state
        target = self.plan.target
        bare = target.bare
        call = target.call
        input_for = target.input_for
        measured = self.measured
        model = self.plan.settings.model
        kinds = worker.kinds
        locked = LOCKED_HAND_OFF
        lock = worker.lock
        log = worker.log
        add_actual = log.actual.append
        # the rows of plain calls are appended here; with KEEP_CONTENT every call goes
        # through ``record``, which keeps its text
        plain = measured and log.detail != KEEP_CONTENT
        perf = time.perf_counter
        # rows hold perf_counter readings: the run's start is subtracted once, at the merge
        t_int: float | None = None  # the intended start (open loop), a perf_counter reading
        starts, ends = worker.starts, worker.ends
        hand_over = worker.flush
        if one is None:
            indices: Iterable[int] = state.claims(worker.index)  # this thread's own
            # closed loop: plain rows go to two lists, handed to the log every FLUSH_EVERY
            # (a list append is a third of an array append); before any row that goes
            # through ``record``, which numbers its sparse pairs by the log's length
            add_start, add_end = starts.append, ends.append
            flush_at = perf() + FLUSH_EVERY
        else:
            indices = (one[0],)
            worker.call_t_int = one[1]  # before the start: the monitor reads it first
            t_int = state.t0 + one[1]
            add_start, add_end = log.start.append, log.end.append
            flush_at = float("inf")
        stream: StreamTimes | None = None  # set by a call that streamed, reset once recorded
        x: Any = None  # the call's input
        for i in indices:
            try:
                if bare is not None:
                    worker.start = start = perf()
                    value = bare()
                else:
                    start = 0.0  # reading the input may fail: then the call never started
                    x = None
                    x = input_for(i)
                    worker.start = start = perf()
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
                if start and not self._hand_back(worker):
                    return False  # abandoned: the monitor recorded this call as a timeout
                taken = scope.take() if scope.records or scope.tools else None
                state.note_error(describe(exc))  # warmup errors too: the run says so at once
                if measured:
                    hand_over()
                    t_call = (start or end) if t_int is None else t_int  # no start: no input
                    error = type(exc).__name__
                    actual = None if t_int is None else (start or end)
                    log.record(t_call, end, ERROR, error, None, taken, None, model, actual, x)
                continue
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop the run, propagate
                state.fail(exc)
                return False
            # ``_hand_back``, inlined: this runs once per call
            if locked:
                with lock:
                    worker.start = None
            else:
                worker.start = None  # W, then R: see _Worker
            if worker.claim is not None and not self._reclaim(worker):
                return False  # abandoned: the monitor recorded this call as a timeout
            if value is None and plain and not (scope.records or scope.tools):
                # the hot path: a plain call that recorded nothing
                if t_int is None:
                    add_start(start)
                else:  # open loop: the intended start, then the actual one
                    add_start(t_int)
                    add_actual(start)
                add_end(end)
                if end >= flush_at:
                    hand_over()
                    flush_at = end + FLUSH_EVERY
            elif measured:
                hand_over()
                t_call = start if t_int is None else t_int
                actual = None if t_int is None else start
                taken = scope.take() if scope.records or scope.tools else None
                try:
                    log.record(t_call, end, OK, None, stream, taken, value, model, actual, x)
                except Exception as exc:  # reading the result failed (usage): its error
                    record_failure(log, state, exc, t_call, end, taken, model, actual)
                stream = None
            elif scope.records or scope.tools:
                scope.take()  # warmup: what the call recorded is dropped
        return True

    def _hand_back(self, worker: _Worker) -> bool:
        """The worker's side of the hand-off when its call returned (see ``_Worker``): whether
        the call is still the worker's to record, rather than abandoned by the monitor."""
        if LOCKED_HAND_OFF:
            with worker.lock:
                worker.start = None
        else:
            worker.start = None  # W, then R
        return worker.claim is None or self._reclaim(worker)

    def _reclaim(self, worker: _Worker) -> bool:
        """The monitor claimed the worker's call: wait for its verdict (it holds the lock until
        the verdict is written). Whether the call is still the worker's."""
        with worker.lock:
            return not worker.abandoned

    def check_timeouts(self, now: float) -> None:
        """Abandon calls that outlived the timeout; count them and replace their threads.

        The hand-off with the worker is described on ``_Worker``: a call is either recorded by
        its worker or abandoned here, never both.
        """
        timeout = self.plan.settings.timeout
        t0 = self.state.t0
        for worker in list(self.workers):
            started = worker.start
            if started is None or now - started < timeout:
                continue
            with worker.lock:
                if worker.abandoned:
                    continue
                worker.claim = started  # W', then R'
                if worker.start is not started:  # the call ended meanwhile: the worker's
                    worker.claim = None
                    continue
                worker.abandoned = True
                t_int = worker.call_t_int  # the worker is still in this call
                worker.flush()  # its earlier rows: it may never return to hand them over
            # closed loop: the call was meant to start when it did
            start = started if t_int is None else t0 + t_int
            with self.lock:
                self.active -= 1
                self.workers.remove(worker)
                if self.active == 0:
                    self.settled.set()
            if self.measured:  # the abandoned thread's own scope is out of reach: no usage
                self.state.extra.record(start, now, TIMEOUT, None, None, None, None, None)
            if not self.state.stopping:
                self.spawn(worker.index)
            elif self.active == 0:
                self.done.set()

    def abandon_all(self) -> None:
        """On abort: leave in-flight calls behind without recording them.

        A worker between two calls is left to stop by itself (the run is stopping: it claims
        no more) and hands its rows over as it retires; ``settle`` waits for that.
        """
        for worker in list(self.workers):
            with worker.lock:
                if worker.abandoned:
                    continue
                worker.claim = -math.inf  # W', then R' (see _Worker)
                if worker.start is None:  # between calls: it records the call it may start
                    worker.claim = None
                    continue
                worker.abandoned = True  # the worker finds its call claimed: not recorded
                worker.flush()
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    self.settled.set()
        self.done.set()

    def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the workers still active to retire, so that the
        rows they made before a stop are handed over before the logs are merged."""
        self.settled.wait(timeout)


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
        if state.stopping and state.fatal is None:  # stopped early: let the workers between
            pool.settle(SETTLE_TIMEOUT)  # two calls hand their rows over before the merge
    except BaseException:
        state.stopping = True
        raise
    finally:
        state.finish()
        monitor.stop()
    if state.fatal is not None:
        raise state.fatal
    return state, pool.logs
