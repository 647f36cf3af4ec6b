"""How busy the machine was during a run, and the CPU time the agent's calls used.

An observer beside the run, like the RSS sampler: it reads the machine's CPU times
(``/proc/stat``, else psutil) and this process's CPU time (``time.process_time``) when it is
created (just before the run's warmup) and when the measured phase stops, and on async runs
keeps a low-rate ``call_later`` tick on the event loop whose lateness is the loop's scheduling
lag. It adds nothing to the measured calls: no work is
done on a call's path, only on the monitor's start and stop and one timer handle every 50 ms.

Other processes' CPU = the machine's busy CPU time minus this process's CPU time over the run,
as a fraction of the machine's whole capacity (wall time x cores).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import RunObserver
from ..engine.log import OK, MergedLog
from ..engine.observer import LiveView
from ..results import Contention, CpuTime
from ..settings import Settings
from .looplag import LoopLag

MIN_WINDOW = 0.1
"""Seconds a window must last for its CPU figures: ``/proc/stat`` counts in 10 ms ticks."""


@dataclass(frozen=True)
class CpuTimes:
    """The machine's cumulative CPU times in seconds, summed over all cores."""

    busy: float
    """user + nice + system + irq + softirq (guest time is already inside user)."""
    idle: float
    """idle + iowait."""
    steal: float
    """Time the hypervisor ran other virtual machines while this one wanted to run."""

    @property
    def total(self) -> float:
        return self.busy + self.idle + self.steal


def parse_proc_stat(text: str, ticks_per_second: float = 100.0) -> CpuTimes | None:
    """The aggregate ``cpu`` line of Linux's ``/proc/stat`` as seconds; None when absent.

    Fields: user nice system idle iowait irq softirq steal guest guest_nice (in USER_HZ ticks;
    older kernels give fewer fields, missing ones count as zero).
    """
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] != "cpu":
            continue
        try:
            values = [float(v) for v in parts[1:11]]
        except ValueError:
            return None
        if len(values) < 4:
            return None
        values += [0.0] * (10 - len(values))
        user, nice, system, idle, iowait, irq, softirq, steal = values[:8]
        return CpuTimes(
            busy=(user + nice + system + irq + softirq) / ticks_per_second,
            idle=(idle + iowait) / ticks_per_second,
            steal=steal / ticks_per_second,
        )
    return None


def _ticks_per_second() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


def read_cpu_times() -> tuple[CpuTimes | None, str]:
    """The machine's CPU times now and where they came from ("/proc/stat" or "psutil")."""
    try:
        with open("/proc/stat", encoding="ascii", errors="replace") as f:
            parsed = parse_proc_stat(f.read(), _ticks_per_second())
        if parsed is not None:
            return parsed, "/proc/stat"
    except OSError:
        pass
    try:
        import psutil

        t = psutil.cpu_times()
    except Exception:  # psutil may not support this platform
        return None, "unavailable"
    busy = sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
    idle = getattr(t, "idle", 0.0) + getattr(t, "iowait", 0.0)
    return CpuTimes(busy=busy, idle=idle, steal=getattr(t, "steal", 0.0)), "psutil"


def process_cpu_time() -> float:
    """CPU seconds used so far by this process (all threads, user + system), precisely."""
    return time.process_time()


def load_average() -> float | None:
    """The 1-minute load average; None where the platform has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def contention_between(
    start: CpuTimes,
    end: CpuTimes,
    own_cpu: float,
    *,
    cores: int | None,
    interval: float | None = None,
) -> tuple[float | None, float | None, float | None]:
    """(other_cpu, steal, own_cpu) as fractions of the machine's capacity between two readings.

    ``own_cpu`` is this process's CPU seconds over the same span. Each fraction is clipped to
    0-1: the readings have 10 ms ticks. None for a window shorter than ``MIN_WINDOW``.
    """
    total = end.total - start.total
    if total <= 0 or (interval is not None and interval < MIN_WINDOW):
        return None, None, None  # too short for 10 ms ticks to say anything
    busy = end.busy - start.busy
    steal = end.steal - start.steal

    def frac(x: float) -> float:
        return min(1.0, max(0.0, x / total))

    return frac(busy - own_cpu), frac(steal), frac(own_cpu)


class ContentionSampler:
    """Observer: contention figures and the CPU time per call of one run."""

    def __init__(self) -> None:
        # the window opens now, before the warmup, so that short runs still span a few ticks
        self._t0 = time.perf_counter()
        self._start, self._source = read_cpu_times()
        self._own0 = process_cpu_time()
        self._end: CpuTimes | None = None
        self._own = 0.0
        self._own_measured0 = 0.0
        self._own_measured: float | None = None
        self._interval: float | None = None
        self._load: float | None = None
        self._lag = LoopLag()

    # --- RunObserver

    def on_start(self, t0: float) -> None:
        self._own_measured0 = process_cpu_time()  # for CPU per call: the measured phase only
        self._lag.start()

    def on_tick(self, view: LiveView) -> str | None:
        return None

    def on_stop(self) -> None:
        self._lag.stop()  # on_stop runs on the loop's own thread in async runs
        now_cpu = process_cpu_time()
        self._own_measured = now_cpu - self._own_measured0
        self._interval = time.perf_counter() - self._t0
        self._end, _ = read_cpu_times()
        self._own = now_cpu - self._own0
        self._load = load_average()

    def result_fields(self, log: MergedLog, duration: float) -> dict[str, Any]:
        return {"contention": self.contention(), "cpu": self.cpu_time(log)}

    # --- figures

    def contention(self) -> Contention:
        """The run's contention figures (after ``on_stop``)."""
        cores = os.cpu_count()
        other = steal = own = None
        if self._start is not None and self._end is not None:
            other, steal, own = contention_between(
                self._start, self._end, self._own, cores=cores, interval=self._interval
            )
        lag50 = lag95 = lagmax = None
        lags = self._lag.lags()
        if lags.size:
            lag50, lag95 = (float(v) for v in np.quantile(lags, [0.5, 0.95]))
            lagmax = float(lags.max())
        return Contention(
            interval=self._interval,
            cores=cores,
            other_cpu=other,
            steal=steal,
            own_cpu=own,
            load_avg=self._load,
            loop_lag_p50=lag50,
            loop_lag_p95=lag95,
            loop_lag_max=lagmax,
            source=self._source if other is not None else "unavailable",
        )

    def cpu_time(self, log: MergedLog) -> CpuTime:
        """CPU time per call: per call from the worker threads, else the process's over the
        run divided by the calls (async agents)."""
        return cpu_time_of(log, self._own_measured)


def cpu_time_of(log: MergedLog, process_cpu: float | None) -> CpuTime:
    """CPU time per call of ``log``: thread times when the calls carry them, else
    ``process_cpu`` (the process's CPU seconds over the measured phase) / calls."""
    n = len(log)
    if n == 0:
        return CpuTime()
    ok = log.latency[log.status == OK]
    lat50 = float(np.quantile(ok, 0.5)) if ok.size else None
    if log.cpu_per_call is not None:  # sync agents: the worker threads' CPU time per call
        per_call, p50, source = log.cpu_per_call, None, "thread"
    elif process_cpu is not None and math.isfinite(process_cpu):
        per_call, p50, source = max(0.0, process_cpu) / n, None, "process"
    else:
        return CpuTime()
    share = per_call / lat50 if lat50 else None
    return CpuTime(per_call=per_call, p50=p50, share=share, source=source)


def contention_observers(settings: Settings) -> list[RunObserver]:
    """The observer factory of every run: one ``ContentionSampler``."""
    return [ContentionSampler()]
