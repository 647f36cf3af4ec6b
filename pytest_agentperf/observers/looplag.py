"""Event-loop lag: how late a tick scheduled on the running loop fires.

A ``call_at`` tick every ``period`` seconds; how much later than asked it ran is the time the
loop was busy with other work (the agent's calls, the plugin's bookkeeping). The contention
sampler and the load generator watch each keep one.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import numpy.typing as npt

LAG_PERIOD = 0.05
"""Seconds between two ticks."""
LATE_TICK = 0.010
"""A tick at least this many seconds late counts as late (``LoadGenerator.loop_lag_late``)."""
MAX_LAG_SAMPLES = 20_000
"""Ticks kept at most (about 17 minutes at the default period)."""


class LoopLag:
    """Ticks on the event loop running when ``start`` is called (none in a sync run)."""

    def __init__(self, period: float = LAG_PERIOD, limit: int = MAX_LAG_SAMPLES) -> None:
        self._period = period
        self._limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.samples: list[tuple[float, float]] = []
        """(when the tick ran, ``time.perf_counter``; how late it was, seconds)."""

    @property
    def on_loop(self) -> bool:
        """Whether ``start`` found an event loop to watch."""
        return self._loop is not None

    def start(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:  # a sync run: its monitor is a plain thread, no loop to watch
            self._loop = None
        else:
            self._schedule()

    def stop(self) -> None:
        """Cancel the next tick; call it on the loop's own thread (``on_stop`` of an async
        run runs there)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def lags(self) -> npt.NDArray[np.float64]:
        return np.asarray([lag for _, lag in self.samples], dtype=np.float64)

    def times(self) -> npt.NDArray[np.float64]:
        return np.asarray([at for at, _ in self.samples], dtype=np.float64)

    def _schedule(self) -> None:
        loop = self._loop
        assert loop is not None
        expected = loop.time() + self._period
        self._handle = loop.call_at(expected, self._tick, expected)

    def _tick(self, expected: float) -> None:
        loop = self._loop
        assert loop is not None
        if len(self.samples) < self._limit:
            self.samples.append((time.perf_counter(), max(0.0, loop.time() - expected)))
        self._schedule()
