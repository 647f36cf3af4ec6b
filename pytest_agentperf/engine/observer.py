"""What the engine tells the world during a run: observers (abort, memory) and progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..results import FloatArray, StatusArray
from .log import CallLog, MergedLog, snapshot


class LiveView:
    """A read-only view of a run in progress, handed to observers on every tick."""

    def __init__(
        self, logs: Sequence[CallLog], extra: CallLog, elapsed: float, t0: float = 0.0
    ) -> None:
        self._logs = logs
        self._extra = extra
        self._t0 = t0
        self.elapsed = elapsed

    @property
    def done(self) -> int:
        """Measured calls completed so far."""
        return sum(len(log) for log in list(self._logs)) + len(self._extra)

    @property
    def errors(self) -> int:
        return sum(sum(log.error_types.values()) for log in [*list(self._logs), self._extra])

    def arrays(self) -> tuple[FloatArray, FloatArray, StatusArray]:
        """start, end, status of the calls completed so far (a copy; O(n), call sparingly)."""
        return snapshot([*list(self._logs), self._extra], self._t0)


class RunObserver(Protocol):
    """Watches a run: sampled on a monitor tick (about every 100 ms), may ask to abort."""

    def on_start(self, t0: float) -> None: ...

    def on_tick(self, view: LiveView) -> str | None:
        """Return a reason to stop the run early, or None to go on."""
        ...

    def on_stop(self) -> None: ...

    def result_fields(self, log: MergedLog, duration: float) -> dict[str, Any]:
        """Fields of PerfResult this observer fills in (e.g. ``memory``, ``windows``), given the
        run's merged call log and measured duration."""
        ...


@dataclass(frozen=True)
class Progress:
    """Where a run is, for a progress line."""

    done: int
    total: int | None
    elapsed: float
    duration: float | None
    errors: int
    finished: bool = False


ProgressSink = Callable[[Progress], None]
TICK = 0.1


def tick_for(timeout: float) -> float:
    """Monitor period: 100 ms, shorter for short timeouts so they fire within a quarter of it."""
    return min(TICK, max(timeout / 4, 0.001))


PROGRESS_EVERY = 0.5
