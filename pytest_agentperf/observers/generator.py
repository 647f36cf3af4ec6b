"""A watch on the load generator: how busy the test process itself was while a run was measured.

The calls of a run are made by this process. When it runs out of CPU (an async run's event loop
is one thread, so one core is its ceiling) or its event loop falls behind, a call waits for the
generator before it starts or before its answer is read, and that wait is measured as the agent's
latency. This observer samples, beside the run and never on a call's path:

- the process's CPU time (user + system, ``time.process_time``) and its thread count, on the
  engine's monitor tick at most every ``SAMPLE_EVERY`` seconds;
- on async runs, a ``call_at`` tick every ``looplag.LAG_PERIOD`` seconds whose lateness is the
  loop's scheduling lag.

Its figures go to ``PerfResult.generator`` (``LoadGenerator``): over the run and per window.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np

from ..engine import RunObserver
from ..engine.log import MergedLog
from ..engine.observer import LiveView
from ..results import GeneratorWindow, LoadGenerator
from ..settings import Settings
from .looplag import LATE_TICK, LoopLag
from .windows import window_edges

SAMPLE_EVERY = 0.1
"""Seconds between CPU and thread samples (taken on the monitor's tick, so at most this often)."""
MAX_SAMPLES = 50_000
"""Samples kept per series (an hour at ``SAMPLE_EVERY``); later ones only move the totals."""
MIN_INTERVAL = 0.05
"""Seconds a span must last for a CPU share (``process_time`` has a coarse tick on some OSes)."""


class ThreadCounter:
    """This process's thread count: on Linux from an open ``/proc/self/stat`` (a few µs), else
    ``threading.active_count()`` (Python threads only)."""

    def __init__(self) -> None:
        self._fd: int | None = None
        try:
            fd = os.open("/proc/self/stat", os.O_RDONLY)
        except OSError:
            return
        self._fd = fd
        if self._read() is None:
            self.close()

    def _read(self) -> int | None:
        fd = self._fd
        if fd is None:
            return None
        try:
            text = os.pread(fd, 1024, 0)
            # fields after the command name "(...)": state is field 3, num_threads field 20
            return int(text[text.rindex(b")") + 2 :].split()[17])
        except (OSError, ValueError, IndexError):
            return None

    def __call__(self) -> int:
        count = self._read()
        return threading.active_count() if count is None else count

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class GeneratorWatch:
    """Observer: the test process's CPU, thread count and event-loop lag during one run."""

    def __init__(self, *, window: float | None = None, cores: int | None = None) -> None:
        self._window = window
        self._cores = cores if cores is not None else os.cpu_count()
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._stopped: tuple[float, float] | None = None
        self._samples: list[tuple[float, float, int]] = []
        self._last = -SAMPLE_EVERY
        self._threads: ThreadCounter | None = None  # opened when the run starts, closed at its end
        self._most_threads = 0
        self._lag = LoopLag(limit=MAX_SAMPLES)

    # --- RunObserver

    def on_start(self, t0: float) -> None:
        self._t0 = t0
        self._threads = ThreadCounter()
        self._cpu0 = time.process_time()
        self._sample(max(0.0, time.perf_counter() - t0))
        self._lag.start()

    def on_tick(self, view: LiveView) -> str | None:
        elapsed = float(view.elapsed)
        if elapsed - self._last >= SAMPLE_EVERY:
            self._sample(elapsed)
        return None

    def on_stop(self) -> None:
        self._lag.stop()  # on_stop runs on the loop's own thread in async runs
        elapsed = time.perf_counter() - self._t0
        self._sample(elapsed, force=True)
        self._stopped = (elapsed, time.process_time())
        counter, self._threads = self._threads, None
        if counter is not None:
            counter.close()

    def result_fields(self, log: MergedLog, duration: float) -> dict[str, Any]:
        return {"generator": self.figures(len(log), duration)}

    # --- sampling

    def _sample(self, elapsed: float, *, force: bool = False) -> None:
        self._last = elapsed
        counter = self._threads
        threads = counter() if counter is not None else threading.active_count()
        self._most_threads = max(self._most_threads, threads)
        if force or len(self._samples) < MAX_SAMPLES:
            self._samples.append((elapsed, time.process_time(), threads))

    # --- figures

    def figures(self, calls: int, duration: float) -> LoadGenerator:
        """The run's ``LoadGenerator`` (after ``on_stop``); windows cut as the run's own
        (``calls`` measured calls over ``duration`` seconds)."""
        if self._stopped is None:
            return LoadGenerator()
        interval, cpu_end = self._stopped
        cores = self._cores
        one = (cpu_end - self._cpu0) / interval if interval >= MIN_INTERVAL else None
        lags = self._lag.lags()
        return LoadGenerator(
            interval=interval,
            cpu_one_core=one,
            cpu_all_cores=None if one is None or not cores else min(1.0, one / cores),
            cores=cores,
            event_loop=self._lag.on_loop,
            loop_lag_p99=float(np.quantile(lags, 0.99)) if lags.size else None,
            loop_lag_max=float(lags.max()) if lags.size else None,
            loop_lag_ticks=int(lags.size) if self._lag.on_loop else None,
            loop_lag_late=int(np.count_nonzero(lags >= LATE_TICK)) if self._lag.on_loop else None,
            loop_lag_late_seconds=float(lags[lags >= LATE_TICK].sum())
            if self._lag.on_loop
            else None,
            threads=self._most_threads or None,
            windows=self._windows(calls, duration),
        )

    def _windows(self, calls: int, duration: float) -> tuple[GeneratorWindow, ...]:
        if not duration > 0 or not self._samples:
            return ()
        series = np.asarray(self._samples, dtype=np.float64)
        t, cpu, threads = series[:, 0], series[:, 1], series[:, 2]
        lag_t = self._lag.times() - self._t0  # seconds into the run
        lag_v = self._lag.lags()
        edges = window_edges(duration, calls, self._window)
        out = []
        for k, (lo, hi) in enumerate(edges):
            last = k == len(edges) - 1
            share = None
            if hi - lo >= MIN_INTERVAL and t.size >= 2:
                # CPU time is cumulative: read it at the window's edges between samples
                used = float(np.interp(hi, t, cpu) - np.interp(lo, t, cpu))
                share = max(0.0, used / (hi - lo))
            inside = (t >= lo) & ((t >= lo) if last else (t < hi))
            lag_in = (lag_t >= lo) & ((lag_t >= lo) if last else (lag_t < hi))
            out.append(
                GeneratorWindow(
                    start=lo,
                    end=hi,
                    cpu=share,
                    loop_lag_p99=float(np.quantile(lag_v[lag_in], 0.99)) if lag_in.any() else None,
                    threads=int(threads[inside].max()) if inside.any() else None,
                )
            )
        return tuple(out)


def generator_observers(settings: Settings) -> list[RunObserver]:
    """The observer factory of every run: one ``GeneratorWatch``."""
    return [GeneratorWatch(window=settings.window)]
