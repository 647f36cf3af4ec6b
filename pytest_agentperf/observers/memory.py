"""Process memory during a run: an RSS sampler, a leak-slope fit and an optional allocation view.

The sampler is a :class:`RunObserver`: a daemon thread reads the process RSS at a fixed interval
(5 ms at first, growing to 100 ms as the run gets longer) and appends it to plain arrays, so the
timed calls never wait on a lock. Stored samples are decimated (every other one dropped, then only
every second one kept) when the buffer fills, so a one-hour soak keeps a few thousand points; the
peak is tracked over every sample read, stored or not.

The leak slope (``Memory.per_1k_calls``) is a Theil-Sen fit of RSS against the number of calls
completed at each sample time: the median of all pairwise slopes, so a one-off jump (a cache
filling, the allocator grabbing a new arena) does not pass for a trend.

``profile_allocations`` is a separate, short pass under ``tracemalloc``; it never runs during the
timed calls because tracing slows every allocation.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import threading
import time
import tracemalloc
from array import array
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import psutil

from ..engine.target import ASYNC_STREAM, PLAIN, SYNC_STREAM, make_target, stream_kind
from ..results import Allocation, FloatArray, Memory
from .windows import compute_windows

MB = 1e6
MIN_INTERVAL = 0.005
MAX_INTERVAL = 0.1
MAX_STORED = 4096
_FIT_POINTS = 512


class _Progress(Protocol):
    """The part of the engine's LiveView the sampler reads."""

    @property
    def done(self) -> int: ...

    @property
    def elapsed(self) -> float: ...


class _Log(Protocol):
    """The part of the engine's merged call log the sampler reads."""

    @property
    def start(self) -> FloatArray: ...

    @property
    def end(self) -> FloatArray: ...

    @property
    def status(self) -> npt.NDArray[Any]: ...


class _Series:
    """Append-only (x, y) pairs with a single writer, decimated to at most ``limit`` points."""

    __slots__ = ("_count", "limit", "stride", "x", "y")

    def __init__(self, limit: int) -> None:
        self.limit = max(4, limit)
        self.stride = 1
        self._count = 0
        self.x = array("d")
        self.y = array("d")

    def append(self, x: float, y: float) -> None:
        index = self._count
        self._count += 1
        if index % self.stride:
            return
        if len(self.x) >= self.limit:
            self.x = self.x[::2]
            self.y = self.y[::2]
            self.stride *= 2
        self.x.append(x)
        self.y.append(y)

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        x, y = self.x, self.y
        n = min(len(x), len(y))
        return np.array(x[:n], dtype=np.float64), np.array(y[:n], dtype=np.float64)


def interval_for(elapsed: float) -> float:
    """Sampling interval after ``elapsed`` seconds: 5 ms, growing with the run up to 100 ms."""
    return min(MAX_INTERVAL, max(MIN_INTERVAL, elapsed / 1000.0))


class _RssReader:
    """Reads this process's RSS in bytes: on Linux straight from an open /proc/self/statm
    (under 1 µs, a tenth of psutil's open-read-close), elsewhere through psutil."""

    def __init__(self) -> None:
        self._proc = psutil.Process(os.getpid())
        self._page = 0
        self._fd: int | None = None
        try:
            fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            return
        try:
            self._page = os.sysconf("SC_PAGE_SIZE")
            int(os.pread(fd, 256, 0).split()[1])
        except (OSError, ValueError, IndexError, AttributeError):
            os.close(fd)
            return
        self._fd = fd

    def __call__(self) -> int:
        fd = self._fd
        if fd is not None:
            return int(os.pread(fd, 256, 0).split()[1]) * self._page
        return int(self._proc.memory_info().rss)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class MemorySampler:
    """Samples the process RSS on a daemon thread between ``on_start`` and ``on_stop``.

    ``rss`` (bytes) and ``clock`` can be injected for tests; ``interval`` fixes the interval
    instead of the adaptive one. Also records (elapsed, calls done) at each engine tick, to fit
    the leak slope when the call log is not at hand. Given the call log at the end, it also cuts
    the run into windows (``window`` seconds, or chosen from the run length), each with its RSS.
    """

    def __init__(
        self,
        *,
        window: float | None = None,
        interval: float | None = None,
        max_stored: int = MAX_STORED,
        rss: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._window = window
        self._fixed_interval = interval
        self._rss = rss
        self._reader: _RssReader | None = None
        self._clock = clock
        self._samples = _Series(max_stored)
        self._ticks = _Series(max_stored)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self.count = 0
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self.last_bytes: int | None = None

    # RunObserver -----------------------------------------------------------------------------
    def on_start(self, t0: float) -> None:
        self._t0 = t0
        self._stop.clear()
        if self._rss is None:
            self._reader = _RssReader()
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="agentperf-rss", daemon=True)
        self._thread.start()

    def on_tick(self, view: _Progress) -> str | None:
        self._ticks.append(float(view.elapsed), float(view.done))
        return None

    def on_stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=1.0)
        if self.start_bytes is not None:
            self.sample()
        reader, self._reader = self._reader, None
        if reader is not None and (thread is None or not thread.is_alive()):
            reader.close()

    # sampling --------------------------------------------------------------------------------
    def sample(self) -> None:
        """Read RSS once and store it (called by the thread; also at start and stop)."""
        read = self._rss or self._reader
        if read is None:
            return
        try:
            value = read()
        except (psutil.Error, OSError, ValueError):
            return
        now = self._clock() - self._t0
        if self.start_bytes is None:
            self.start_bytes = value
        if self.peak_bytes is None or value > self.peak_bytes:
            self.peak_bytes = value
        self.last_bytes = value
        self.count += 1
        self._samples.append(now, float(value))

    def _loop(self) -> None:
        while True:
            if self._fixed_interval is not None:
                wait = self._fixed_interval
            else:
                wait = interval_for(self._clock() - self._t0)
            if self._stop.wait(wait):
                return
            self.sample()

    @property
    def current_mb(self) -> float | None:
        """The latest RSS read, in MB."""
        last = self.last_bytes
        return None if last is None else last / MB

    @property
    def growth_mb(self) -> float | None:
        """Peak RSS minus RSS at start so far, in MB (safe to read while the run goes on)."""
        start, peak = self.start_bytes, self.peak_bytes
        if start is None or peak is None:
            return None
        return (peak - start) / MB

    def series(self) -> tuple[FloatArray, FloatArray]:
        """Stored samples: seconds since the measured start, and RSS in MB."""
        t, rss = self._samples.arrays()
        return t, rss / MB

    # results ---------------------------------------------------------------------------------
    def memory(self, end: Sequence[float] | FloatArray | None = None) -> Memory:
        """The run's ``Memory``; ``end`` is the completion times of the measured calls (seconds
        since the measured start); without it the calls done at each engine tick are used."""
        if self.start_bytes is None or self.peak_bytes is None:
            return Memory()
        t, rss = self.series()
        done = self._done_at(t, end)
        slope = None if done is None else theil_sen_slope(done, rss)
        return Memory(
            rss_start_mb=self.start_bytes / MB,
            rss_peak_mb=self.peak_bytes / MB,
            rss_delta_mb=(self.peak_bytes - self.start_bytes) / MB,
            per_1k_calls=None if slope is None else slope * 1000.0,
            samples=self.count,
        )

    def result_fields(self, log: _Log | None = None, duration: float = 0.0) -> dict[str, Any]:
        """Fields of ``PerfResult`` this observer fills: ``memory``, and ``windows`` when the
        run's merged call ``log`` is given (``duration``: the run's measured duration)."""
        if log is None:
            return {"memory": self.memory()}
        t, rss = self.series()
        windows = compute_windows(
            log.start, log.end, log.status, duration=duration, window=self._window, rss=(t, rss)
        )
        return {"memory": self.memory(log.end), "windows": windows}

    def _done_at(
        self, t: FloatArray, end: Sequence[float] | FloatArray | None
    ) -> FloatArray | None:
        if end is not None:
            ends = np.sort(np.asarray(end, dtype=np.float64))
            return np.searchsorted(ends, t, side="right").astype(np.float64)
        tick_t, tick_done = self._ticks.arrays()
        if tick_t.size == 0:
            return None
        # Calls done is a step function known at tick times; before the first tick none were done.
        idx = np.searchsorted(tick_t, t, side="right") - 1
        return np.where(idx >= 0, tick_done[np.clip(idx, 0, None)], 0.0)


def theil_sen_slope(
    x: npt.ArrayLike, y: npt.ArrayLike, *, max_points: int = _FIT_POINTS
) -> float | None:
    """Median of the slopes between every pair of points with different x (Theil-Sen).

    Matches ``scipy.stats.theilslopes(y, x)[0]``. Longer inputs are thinned evenly to
    ``max_points`` first (the pair count grows as n^2). None when x takes fewer than three values.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    if xs.size > max_points:
        idx = np.unique(np.linspace(0, xs.size - 1, max_points).round().astype(np.int64))
        xs, ys = xs[idx], ys[idx]
    if np.unique(xs).size < 3:
        return None
    dx = xs[:, None] - xs[None, :]
    dy = ys[:, None] - ys[None, :]
    mask = dx > 0
    return float(np.median(dy[mask] / dx[mask]))


# Allocation view (tracemalloc) ---------------------------------------------------------------

_IGNORED = (
    tracemalloc.__file__,
    __file__,
    "<frozen importlib._bootstrap>",
    "<frozen importlib._bootstrap_external>",
    "<unknown>",
)


@contextmanager
def _tracing() -> Iterator[list[tracemalloc.Snapshot]]:
    """Trace allocations inside the block; yields a list that ends up holding (before, after)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    snaps: list[tracemalloc.Snapshot] = []
    try:
        gc.collect()
        snaps.append(tracemalloc.take_snapshot())
        yield snaps
        gc.collect()
        snaps.append(tracemalloc.take_snapshot())
    finally:
        if started:
            tracemalloc.stop()


def _top(snaps: list[tracemalloc.Snapshot], top: int) -> tuple[Allocation, ...]:
    filters = [tracemalloc.Filter(False, name) for name in _IGNORED]
    before, after = (s.filter_traces(filters) for s in snaps)
    diffs = [d for d in after.compare_to(before, "lineno") if d.size_diff > 0]
    diffs.sort(key=lambda d: d.size_diff, reverse=True)
    return tuple(
        Allocation(
            location=_location(d.traceback[0]),
            size_mb=d.size_diff / MB,
            count=max(0, d.count_diff),
        )
        for d in diffs[:top]
    )


def _location(frame: tracemalloc.Frame) -> str:
    name = frame.filename
    try:
        rel = os.path.relpath(name)
        if not rel.startswith(".."):
            name = rel
    except ValueError:  # another drive on Windows
        pass
    return f"{name}:{frame.lineno}"


def profile_allocations(
    call_once: Callable[[], object], calls: int, *, top: int = 10
) -> tuple[Allocation, ...]:
    """Run ``call_once`` ``calls`` times under tracemalloc; the sites whose memory grew most.

    Each row is memory still held after the calls (by file:line of the allocating line), so what
    a call allocates and frees again does not show. Exceptions from a call are ignored: the timed
    pass already counted them. Never call this during the timed calls.
    """
    with _tracing() as snaps:
        for _ in range(calls):
            try:
                result = call_once()
            except Exception:
                continue
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError("call_once returned an awaitable; use aprofile_allocations")
    return _top(snaps, top)


async def aprofile_allocations(
    call_once: Callable[[], Awaitable[object]], calls: int, *, top: int = 10
) -> tuple[Allocation, ...]:
    """``profile_allocations`` for an async ``call_once``, awaited ``calls`` times in sequence."""
    with _tracing() as snaps:
        for _ in range(calls):
            with suppress(Exception):
                await call_once()
    return _top(snaps, top)


# Allocation view of an agent (used by the runner for memory_profile=True) ----------------------

PROFILE_CALLS = 20
"""Calls made by the allocation pass (fewer when the run itself had fewer)."""


def _drain_sync(value: Any) -> None:
    if stream_kind(value) == SYNC_STREAM:
        for _ in value:
            pass


def profile_agent(fn: Any, inputs: Any, calls: int, *, top: int = 10) -> tuple[Allocation, ...]:
    """The allocation pass for an agent as ``agentperf.run`` takes it (sync or async, streaming
    or not), its calls made one after another; for sync code with no running event loop."""
    target = make_target(fn, inputs)
    if target.is_async:
        return asyncio.run(aprofile_agent(fn, inputs, calls, top=top))
    counter = iter(range(calls))

    def once() -> None:
        value = target.call(target.input_for(next(counter)))
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            return
        _drain_sync(value)

    return profile_allocations(once, calls, top=top)


async def aprofile_agent(
    fn: Any, inputs: Any, calls: int, *, top: int = 10, timeout: float | None = None
) -> tuple[Allocation, ...]:
    """``profile_agent`` from a coroutine; a sync agent runs on a daemon thread meanwhile, so an
    agent calling a server on this same loop does not deadlock. ``timeout`` bounds each async
    call (a call that exceeds it is cancelled and counted as any other failure)."""
    target = make_target(fn, inputs)
    if not target.is_async:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Allocation, ...]] = loop.create_future()

        def settle(value: tuple[Allocation, ...] | BaseException) -> None:
            if future.done():
                return
            if isinstance(value, BaseException):
                future.set_exception(value)
            else:
                future.set_result(value)

        def body() -> None:
            try:
                rows: tuple[Allocation, ...] | BaseException = profile_agent(
                    fn, inputs, calls, top=top
                )
            except BaseException as exc:  # handed to the awaiting coroutine
                rows = exc
            loop.call_soon_threadsafe(settle, rows)

        threading.Thread(target=body, daemon=True, name="agentperf-profile").start()
        return await future
    counter = iter(range(calls))

    async def consume() -> None:
        value = target.call(target.input_for(next(counter)))
        kind = stream_kind(value)
        if kind == PLAIN:
            value = await value
            kind = stream_kind(value)
        if kind == ASYNC_STREAM:
            async for _ in value:
                pass
        elif kind == SYNC_STREAM:
            _drain_sync(value)

    async def once() -> None:
        await asyncio.wait_for(consume(), timeout)

    return await aprofile_allocations(once, calls, top=top)
