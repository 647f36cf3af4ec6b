"""A run's plan (what to call, how often, when to stop) and its shared mutable state."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..pricing import PriceTable
from ..redact import redact
from ..settings import Settings
from .log import MAX_ERROR_MESSAGES, CallLog
from .ramp import Ramp
from .spend import SpendMeter
from .target import Target

LATE_AFTER = 0.010
"""A call that starts more than this after its intended time counts as a late start."""


@dataclass(frozen=True)
class Plan:
    """What to call and when to stop."""

    target: Target
    settings: Settings
    total: int | None
    duration: float | None
    workers: int
    late_after: float = LATE_AFTER
    detail: int = 0
    """What the logs keep of each call beyond its times (``CallLog.detail``)."""
    prices: PriceTable | None = None
    """Prices for the spend guard's live ``total_cost`` (None: the bundled table)."""
    guarded: bool = False
    """Whether the spend guard watches this plan's calls (measured calls only)."""
    ramp: Ramp | None = None
    """The stages' ramp of the arrival rate (open loop) or of the active workers (closed)."""

    @classmethod
    def measured(
        cls,
        target: Target,
        settings: Settings,
        detail: int = 0,
        prices: PriceTable | None = None,
    ) -> Plan:
        workers = settings.max_in_flight or 1
        if settings.requests is not None:  # never more workers than calls to make
            workers = min(workers, settings.requests)
        return cls(
            target,
            settings,
            settings.requests,
            settings.duration,
            workers,
            detail=detail,
            prices=prices,
            guarded=True,
            ramp=Ramp(settings.ramp_start, settings.stages) if settings.stages else None,
        )

    @classmethod
    def warmup(cls, target: Target, settings: Settings) -> Plan:
        n = settings.warmup
        return cls(target, settings, n, None, max(1, min(n, settings.max_in_flight or 1)))

    def arrivals(self) -> Iterator[tuple[int, float]]:
        """Intended start times (seconds after run start) of an open-loop run."""
        rate = self.settings.rate
        assert rate is not None
        if self.ramp is not None:
            yield from self._ramped_arrivals(self.ramp)
            return
        rng = np.random.default_rng(self.settings.seed)
        t = 0.0
        for i in itertools.count():
            if self.total is not None and i >= self.total:
                return
            if self.duration is not None and t >= self.duration:
                return
            yield i, t
            if self.settings.arrival == "constant":
                t = (i + 1) / rate
            else:
                if i % 1024 == 0:
                    block = rng.exponential(1.0 / rate, 1024)
                t += float(block[i % 1024])

    def _ramped_arrivals(self, ramp: Ramp) -> Iterator[tuple[int, float]]:
        """Arrivals at the ramp's instantaneous rate: constant, the i-th at Lambda^-1(i);
        Poisson, Lambda^-1 of a unit-rate Poisson process (same seed, same draws)."""
        rng = np.random.default_rng(self.settings.seed)
        constant = self.settings.arrival == "constant"
        c = 0.0
        for i in itertools.count():
            if self.total is not None and i >= self.total:
                return
            t = ramp.time_of(float(i) if constant else c)
            if t is None or t >= ramp.duration:
                return
            yield i, t
            if not constant:
                if i % 1024 == 0:
                    block = rng.exponential(1.0, 1024)
                c += float(block[i % 1024])


class RunState:
    """Mutable state shared by the workers of one run."""

    def __init__(self, plan: Plan, cancel: threading.Event | None = None) -> None:
        self._cancel = cancel
        self._stopping = False
        self._counter = itertools.count()
        self._refused = 0
        self._refused_lock = threading.Lock()
        self.scheduled = 0
        """Open loop: arrivals handed out by the dispatcher (the only one that counts them)."""
        self.issued = 0
        """Calls the run started (closed loop: claims granted; open loop: arrivals
        dispatched); set by ``finish``. A run that was not stopped records each of them."""
        self._total = plan.total
        self._duration = plan.duration
        self.ramp = plan.ramp if plan.settings.rate is None else None
        """Closed-loop stages: which workers may claim calls when (``claims``)."""
        self._over = False
        self.t0 = 0.0
        self.t_end = 0.0
        self.deadline = float("inf")
        self.aborted: str | None = None
        self.fatal: BaseException | None = None
        self.late = 0
        self.messages: list[str] = []
        self.errors_noted = 0
        """Calls that raised (``note_error``), warmup calls included; counted without a lock,
        for messages only."""
        self.on_fatal: Callable[[], None] = lambda: None
        """How the executor stops its other workers when one call raised a BaseException."""
        self.extra = CallLog()
        """Calls recorded by the monitor itself: abandoned (timed-out) sync calls."""
        self.meter = (
            SpendMeter.of(plan.settings.budgets, plan.prices, self.abort) if plan.guarded else None
        )
        """The spend guard every measured log reports to (None: no spend budget)."""

    def start(self) -> None:
        self.t0 = time.perf_counter()
        if self._duration is not None:
            self.deadline = self.t0 + self._duration

    def finish(self) -> None:
        """Stop the clock and count the calls issued (once no worker claims any more)."""
        self.t_end = time.perf_counter()
        # every claim took one index: the granted ones are all taken minus the refused ones
        self.issued = self.scheduled + next(self._counter) - self._refused

    @property
    def stopping(self) -> bool:
        """True once the run must start no more calls: aborted, failed, or cancelled."""
        if not self._stopping and self._cancel is not None and self._cancel.is_set():
            self._stopping = True
        return self._stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stopping = value

    def claim(self) -> int | None:
        """Index of the next call to make, or None when the run is over (thread-safe)."""
        if self._stopping:  # the ``stopping`` property, inlined: this runs once per call
            return None
        cancel = self._cancel
        if cancel is not None and cancel.is_set():
            self._stopping = True
            return None
        i = next(self._counter)
        if (self._total is not None and i >= self._total) or (
            self._duration is not None and time.perf_counter() >= self.deadline
        ):
            with self._refused_lock:  # once per worker at the end of a run: off the hot path
                self._refused += 1
            return None
        return i

    def claims(self, worker: int | None = None) -> Iterator[int]:
        """The indices ``claim`` would grant, as an iterator for one worker: each worker (task
        or thread) iterates its own, over the counter they share (thread-safe). Resuming it
        costs less than a call of ``claim``: a closed-loop worker's hot path.

        With closed-loop stages, worker number ``worker`` claims only while the ramp's level is
        above it, and the iterator ends when it falls to it (see ``wake_at``)."""
        if self.ramp is not None and worker is not None:
            yield from self._ramp_claims(self.ramp, worker)
            return
        total = self._total
        if self._cancel is not None or self._duration is not None or total is None:
            claim = self.claim
            while (i := claim()) is not None:
                yield i
            return
        for i in self._counter:  # a for loop over the counter: no call of next() per index
            if i >= total or self._stopping:
                with self._refused_lock:  # i was taken from the counter but is not granted
                    self._refused += 1
                return
            yield i

    def abort(self, reason: str) -> None:
        """Stop the run early for ``reason`` (from any thread): no call starts after this, and
        the monitor leaves the calls in flight behind on its next tick, as for ``abort_on``."""
        if self.aborted is None:
            self.aborted = f"aborted: {reason}"
        self._stopping = True

    def _ramp_claims(self, ramp: Ramp, worker: int) -> Iterator[int]:
        perf = time.perf_counter
        while ramp.level(perf() - self.t0) > worker:
            i = self.claim()
            if i is None:
                self._over = True
                return
            yield i

    def wake_at(self, worker: int) -> float | None:
        """Closed-loop stages: when (a perf_counter reading) worker ``worker`` may claim again,
        or None when the run is over for it."""
        if self._over or self.stopping or self.ramp is None:
            return None
        t = self.ramp.next_active(worker, time.perf_counter() - self.t0)
        if t is None or t >= self.ramp.duration:
            return None
        return self.t0 + t

    def fail(self, exc: BaseException) -> None:
        """A BaseException that is not an agent error (KeyboardInterrupt...): stop the run."""
        if self.fatal is None:
            self.fatal = exc
        self.stopping = True
        self.on_fatal()

    def note_error(self, message: str) -> None:
        """Keep the first few distinct error messages for the report.

        Redacted before the cut, so a key cut in half cannot slip past the redaction.
        """
        self.errors_noted += 1
        if len(self.messages) < MAX_ERROR_MESSAGES:
            message = redact(message)[:500]
            if message not in self.messages:
                self.messages.append(message)

    @property
    def elapsed(self) -> float:
        return (self.t_end or time.perf_counter()) - self.t0
