"""The stages every run of a process goes through, set up once per process by the plugin.

``RunPipeline`` holds the session's options (scale, prices, what-if models), the progress line
factory, the observer factories (memory, live windows, early abort, contention, the load
generator watch) and the hooks after a run (baseline comparison) and after its record (the
regression gate). No pytest here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .engine import ProgressSink, RunObserver
from .observers.abort import AbortMonitor
from .observers.contention import contention_observers
from .observers.generator import generator_observers
from .observers.memory import MemorySampler
from .observers.windows import LiveWindow
from .pricing import PriceTable
from .results import PerfResult
from .settings import Settings


class ObserverFactory(Protocol):
    """Builds the observers of one run (memory sampler, early abort, ...)."""

    def __call__(self, settings: Settings) -> Sequence[RunObserver]: ...


def soak_observers(settings: Settings) -> list[RunObserver]:
    """Observers of every run: the RSS sampler (which also cuts the run into windows), the live
    window figures for the progress line, and early abort when ``abort_on`` is set."""
    sampler = MemorySampler(window=settings.window)
    live = LiveWindow(
        window=settings.window,
        duration=settings.duration,
        total=settings.requests,
        rss_mb=lambda: sampler.current_mb,
    )
    observers: list[RunObserver] = [sampler, live]
    if settings.abort_on:
        observers.append(AbortMonitor(settings.abort_on, settings.budgets, memory=sampler))
    return observers


class AfterRun(Protocol):
    """Runs after a result is built and before it is recorded (e.g. baseline comparison)."""

    def __call__(self, test_id: str, result: PerfResult, settings: Settings) -> PerfResult: ...


class Gate(Protocol):
    """Runs after a result is recorded; raises to fail the test (e.g. a regression)."""

    def __call__(self, test_id: str, result: PerfResult) -> None: ...


@dataclass
class RunPipeline:
    """Per-process state every run goes through: options, prices, observers and hooks."""

    scale: float = 1.0
    prices: PriceTable | None = None
    whatif_models: tuple[str, ...] = ()
    monthly_calls: int | None = None
    progress: Callable[[str], ProgressSink | None] | None = None
    observer_factories: list[ObserverFactory] = field(
        default_factory=lambda: [soak_observers, contention_observers, generator_observers]
    )
    confirm: bool = False
    """``--agentperf-confirm``: a regressed run is measured once more before it fails."""
    detail: int = 0
    """What each run keeps of each call for the outputs that read them (``CallLog.detail``):
    0 nothing (``PerfResult.calls`` is None), 1 the call table, 2 also its input and output
    text."""
    workers: tuple[str, ...] = ()
    """``--agentperf-workers``: the execnet gateway specs every run is split over (empty:
    each run's own ``workers=``, else this process)."""
    after_run: list[AfterRun] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
