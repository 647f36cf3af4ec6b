"""Per-window statistics of a run: calls, errors, throughput, p50/p95 and RSS per time window.

A call belongs to the window in which it *completed* (its end time), so a window's throughput is
the calls it finished and a stall shows up as a window with few calls and a high p95, not as
calls spread back over the windows in which they started.

Windows are ``[k*w, (k+1)*w)`` seconds after the measured start. A trailing remainder shorter than
half a window is merged into the window before it instead of standing alone, so the last window
(which the ``p95_drift`` budget divides by the first) is never a sliver holding a handful of calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..progress import SHOW_AFTER
from ..results import FloatArray, Window
from ..units import format_seconds

MIN_WINDOW = 1.0
TARGET_WINDOWS = 15
MIN_CALLS_PER_WINDOW = 20
_NICE = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)


def _nice(seconds: float) -> float:
    """The smallest 'round' length (1 s, 2 s, 5 s, 10 s, ... 1 h, then whole hours) >= seconds."""
    for value in _NICE:
        if value >= seconds:
            return float(value)
    return float(math.ceil(seconds / 3600.0) * 3600)


MAX_WINDOWS = 1000
"""At most this many windows per run, whatever ``window=`` says."""


def choose_window(duration: float, calls: int = 0, requested: float | None = None) -> float:
    """Window length in seconds: ``requested`` when given, else one that cuts the run into about
    15 windows of at least 1 s, rounded up to a round value, and long enough to hold about 20
    completed calls each on average (so a window's p95 is not just its maximum)."""
    if requested is not None:
        # a window= far shorter than the run would make a table nobody reads: cap the count
        if duration > 0 and math.isfinite(duration):
            return max(float(requested), duration / MAX_WINDOWS)
        return float(requested)
    if duration <= 0 or not math.isfinite(duration):
        return MIN_WINDOW
    length = duration / TARGET_WINDOWS
    if calls > 0:
        length = max(length, duration * MIN_CALLS_PER_WINDOW / calls)
    return _nice(max(MIN_WINDOW, length))


def _edges(duration: float, window: float) -> list[tuple[float, float]]:
    full = max(1, math.ceil(duration / window - 1e-9))
    edges = [(k * window, min((k + 1) * window, duration)) for k in range(full)]
    if len(edges) >= 2 and edges[-1][1] - edges[-1][0] < window / 2:
        last = edges.pop()
        edges[-1] = (edges[-1][0], last[1])
    return edges


def window_edges(
    duration: float, calls: int = 0, window: float | None = None
) -> list[tuple[float, float]]:
    """The (start, end) of each window of a run of ``duration`` seconds and ``calls`` calls,
    as ``compute_windows`` cuts it (other per-window series use the same edges)."""
    return _edges(duration, choose_window(duration, calls, window))


def compute_windows(
    start: npt.ArrayLike,
    end: npt.ArrayLike,
    status: npt.ArrayLike,
    *,
    duration: float,
    window: float | None = None,
    rss: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
) -> tuple[Window, ...]:
    """Windows of a run from its call log (``start``/``end`` seconds since the measured start,
    ``status`` 0 for success) and optional RSS samples (``(seconds, MB)``).

    ``duration`` is the run's measured duration; calls ending after it fall in the last window.
    Throughput is successful calls per second of the window, p50/p95 are of successful calls'
    latency (None when a window has none), errors count failures and timeouts, and ``rss_mb`` is
    the highest RSS sampled inside the window (None when no sample fell in it).
    """
    s = np.asarray(start, dtype=np.float64)
    e = np.asarray(end, dtype=np.float64)
    st = np.asarray(status)
    if not duration > 0:
        if e.size == 0:
            return ()
        duration = max(float(e.max()), 1e-9)
    edges = window_edges(duration, int(e.size), window)
    bounds = np.array([lo for lo, _ in edges[1:]], dtype=np.float64)
    which = np.searchsorted(bounds, e, side="right")
    ok = st == 0
    latency = e - s
    rss_t: FloatArray | None = None
    rss_v: FloatArray | None = None
    if rss is not None:
        rss_t = np.asarray(rss[0], dtype=np.float64)
        rss_v = np.asarray(rss[1], dtype=np.float64)
    out = []
    for k, (lo, hi) in enumerate(edges):
        here = which == k
        good = latency[here & ok]
        p50 = p95 = None
        if good.size:
            p50, p95 = (float(v) for v in np.percentile(good, (50.0, 95.0)))
        rss_mb = None
        if rss_t is not None and rss_v is not None:
            last = k == len(edges) - 1
            inside = (rss_t >= lo) & ((rss_t <= hi) if last else (rss_t < hi))
            if last:
                inside |= rss_t > hi
            if inside.any():
                rss_mb = float(rss_v[inside].max())
        span = hi - lo
        out.append(
            Window(
                start=lo,
                end=hi,
                calls=int(here.sum()),
                errors=int((here & ~ok).sum()),
                throughput=float(good.size / span) if span > 0 else 0.0,
                p50=p50,
                p95=p95,
                rss_mb=rss_mb,
            )
        )
    return tuple(out)


class _View(Protocol):
    """The part of the engine's LiveView the live window reads."""

    @property
    def done(self) -> int: ...

    @property
    def elapsed(self) -> float: ...

    def arrays(self) -> tuple[FloatArray, FloatArray, npt.NDArray[Any]]: ...


class LiveWindow:
    """RunObserver summarising the last completed window of a run in progress, for the live
    progress line of long runs: "last 10 s: 48/s, p95 1.2 s, 2 errors, RSS 152 MB".

    The window length is ``window`` when given, else chosen like ``choose_window`` from the
    planned ``duration`` (or, for a count-bound run, from the duration its pace so far
    predicts). The call log is copied once per completed window, never per tick.
    """

    def __init__(
        self,
        *,
        window: float | None = None,
        duration: float | None = None,
        total: int | None = None,
        rss_mb: Callable[[], float | None] | None = None,
    ) -> None:
        self._requested = window
        self._duration = duration
        self._total = total
        self._rss_mb = rss_mb
        self.length: float | None = None
        self._k = 0
        self._text: str | None = None

    def on_start(self, t0: float) -> None:
        self.length = self._requested
        self._k = 0
        self._text = None

    def on_stop(self) -> None:
        return None

    def result_fields(self, log: object = None, duration: float = 0.0) -> dict[str, Any]:
        return {}

    def describe(self) -> str | None:
        """The latest window's figures, or None before the first window completes."""
        return self._text

    def on_tick(self, view: _View) -> str | None:
        elapsed = float(view.elapsed)
        if self.length is None:
            if elapsed < SHOW_AFTER:
                return None
            planned = self._duration
            if planned is None and self._total and view.done:
                planned = elapsed * self._total / view.done
            self.length = choose_window(planned or elapsed)
        k = int(elapsed // self.length)
        if k > self._k:
            self._k = k
            self._text = self._summarise(view, (k - 1) * self.length, k * self.length)
        return None

    def _summarise(self, view: _View, lo: float, hi: float) -> str:
        start, end, status = view.arrays()
        here = (end >= lo) & (end < hi)
        ok = here & (status == 0)
        latency = (end - start)[ok]
        parts = [f"{int(ok.sum()) / (hi - lo):.3g}/s"]
        if latency.size:
            parts.append(f"p95 {format_seconds(float(np.percentile(latency, 95.0)))}")
        errors = int(here.sum() - ok.sum())
        if errors:
            parts.append(f"{errors} error{'s' if errors != 1 else ''}")
        rss = self._rss_mb() if self._rss_mb is not None else None
        if rss is not None:
            parts.append(f"RSS {rss:.0f} MB")
        return f"last {format_seconds(hi - lo)}: " + ", ".join(parts)
