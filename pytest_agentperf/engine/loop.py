"""The event loop a sync test's async run gets, with daemon threads behind ``to_thread``.

``asyncio.run`` would wait at its end for every thread of the loop's default executor, so an
agent whose ``asyncio.to_thread`` call hangs would hold the test long after the call timed out,
and the executor's few threads (min(32, cores + 4)) would cap a run's real concurrency. This
loop's default executor has daemon threads, as many as the run has calls in flight, and the
loop is closed without waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
GRACE = 1.0
"""Seconds cancelled calls get to finish their cleanup: once a run stops (abort, fatal error),
and again for tasks still left when the loop closes."""
_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class DaemonExecutor(ThreadPoolExecutor):
    """A thread pool whose threads are daemons and start only when work waits for one.

    A ThreadPoolExecutor only by type (asyncio accepts no other default executor): it uses
    none of the base class's threads, which the interpreter would join at exit.
    """

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=1)
        self._max = max(1, max_workers)
        self._jobs: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._started = 0
        self._idle = 0
        """Threads free for a job and not yet promised one."""
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._guard:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._idle:
                self._idle -= 1  # a free thread is promised this job
            elif self._started < self._max:
                self._started += 1
                threading.Thread(target=self._work, daemon=True, name="agentperf-executor").start()
            # else every thread is busy and there may be no more: the job waits for one
            self._jobs.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # handed to the awaiting side, as the stdlib does
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, fn, args, kwargs, item  # nothing of the job outlives it here
            with self._guard:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; idle threads exit, busy ones finish their call (never joined)."""
        with self._guard:
            self._closed = True
            threads = self._started
        if cancel_futures:
            with contextlib.suppress(queue.Empty):
                while True:
                    item = self._jobs.get_nowait()
                    if item is not None:
                        item[0].cancel()
        for _ in range(threads):
            self._jobs.put(None)


def run_coroutine(coro: Coroutine[Any, Any, T], max_workers: int) -> T:
    """Run ``coro`` to completion on a new event loop, like ``asyncio.run`` without the wait."""
    loop = asyncio.new_event_loop()
    executor = DaemonExecutor(max(min(32, (os.cpu_count() or 1) + 4), max_workers))
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:  # calls still cleaning up after an abort get a grace period, no more
                loop.run_until_complete(asyncio.wait(pending, timeout=GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            asyncio.set_event_loop(None)
            loop.close()
