"""The periodic check shared by both executors: observers, early abort and progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from .log import CallLog
from .observer import PROGRESS_EVERY, LiveView, Progress, ProgressSink, RunObserver
from .plan import Plan, RunState


class Monitor:
    """Called on every tick; asks observers whether to abort and reports progress."""

    def __init__(
        self,
        plan: Plan,
        state: RunState,
        logs: Sequence[CallLog],
        observers: Sequence[RunObserver],
        progress: ProgressSink | None,
        stop_workers: Callable[[], None],
    ) -> None:
        self._plan = plan
        self._state = state
        self._logs = logs
        self._observers = observers
        self._progress = progress
        self._stop_workers = stop_workers
        self._last_progress = time.perf_counter()
        self._stopped = False

    def start(self) -> None:
        for obs in self._observers:
            obs.on_start(self._state.t0)

    def tick(self) -> None:
        state = self._state
        now = time.perf_counter()
        if state.aborted is not None and not self._stopped:
            # aborted between ticks (the spend guard, on a worker's thread): only the monitor
            # leaves the calls in flight behind, so the executors need no thread-safe stop
            self._stopped = True
            self._stop_workers()
        view = LiveView(self._logs, state.extra, now - state.t0, state.t0)
        for obs in self._observers:
            reason = obs.on_tick(view)
            if reason and state.aborted is None:
                state.aborted = reason
                state.stopping = True
                self._stopped = True
                self._stop_workers()
        if self._progress is not None and now - self._last_progress >= PROGRESS_EVERY:
            self._last_progress = now
            self._progress(
                Progress(
                    view.done, self._plan.total, view.elapsed, self._plan.duration, view.errors
                )
            )

    def stop(self) -> None:
        for obs in self._observers:
            obs.on_stop()
        if self._progress is not None:
            view = LiveView(self._logs, self._state.extra, self._state.elapsed)
            self._progress(
                Progress(
                    view.done,
                    self._plan.total,
                    view.elapsed,
                    self._plan.duration,
                    view.errors,
                    True,
                )
            )
