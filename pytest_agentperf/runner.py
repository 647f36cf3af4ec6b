"""The ``agentperf`` fixture object and the per-process session state behind it.

No pytest here: plugin.py builds one ``Session`` per process and an ``AgentPerf`` per test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .budgets import raise_if_broken, small_sample_warnings
from .collect import build_result
from .engine import ProgressSink, RawRun, RunObserver, arun_load, run_load
from .pricing import PriceTable
from .results import PerfResult
from .settings import Settings, parse_settings

SCHEMA_VERSION = 1
MAX_REPORTED_SAMPLES = 100_000


class ObserverFactory(Protocol):
    """Builds the observers of one run (memory sampler, early abort, ...)."""

    def __call__(self, settings: Settings) -> Sequence[RunObserver]: ...


class AfterRun(Protocol):
    """Runs after a result is built and before it is recorded (e.g. baseline comparison)."""

    def __call__(self, test_id: str, result: PerfResult) -> PerfResult: ...


class Gate(Protocol):
    """Runs after a result is recorded; raises to fail the test (e.g. a regression)."""

    def __call__(self, test_id: str, result: PerfResult) -> None: ...


@dataclass
class Session:
    """Per-process plugin state: options, prices and the hooks each run goes through."""

    scale: float = 1.0
    prices: PriceTable | None = None
    progress: Callable[[str], ProgressSink | None] | None = None
    observer_factories: list[ObserverFactory] = field(default_factory=list)
    after_run: list[AfterRun] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)


def _status(result: PerfResult) -> str:
    if result.aborted:
        return "ABORTED"
    broken = [b.name for b in result.budgets if not b.passed]
    if broken:
        return "FAIL " + ", ".join(broken)
    return "PASS"


def record_of(test_id: str, result: PerfResult, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON-ready record of one run, as it travels to reports (and across xdist)."""
    data = result.to_dict(samples=True)
    for key in ("latency", "ttft", "itl"):
        samples = data[key].get("samples", [])
        if len(samples) > MAX_REPORTED_SAMPLES:
            step = len(samples) / MAX_REPORTED_SAMPLES
            data[key]["samples"] = [samples[int(i * step)] for i in range(MAX_REPORTED_SAMPLES)]
    return {
        "test": test_id,
        "name": result.name,
        "status": _status(result),
        "warnings": list(warnings),
        "result": data,
    }


class AgentPerf:
    """Runs an agent under load from a test: ``run`` (sync tests) or ``await arun`` (async)."""

    def __init__(
        self,
        session: Session,
        test_id: str,
        marker_settings: Sequence[Mapping[str, Any]] = (),
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self._test_id = test_id
        self._layers = tuple(marker_settings)
        self._warn = warn
        self._names: set[str] = set()
        self.results: list[PerfResult] = []
        """Every result of this test, in run order."""
        self.records: list[dict[str, Any]] = []

    def settings(self, **overrides: Any) -> Settings:
        """The settings a run would use: marker, then ``overrides``, scaled by the session."""
        return parse_settings(*self._layers, overrides).scaled(self._session.scale)

    def _name(self, name: str | None, fn: Any) -> str:
        base = name or getattr(fn, "__name__", None) or type(fn).__name__
        unique, k = base, 2
        while unique in self._names:
            unique, k = f"{base}-{k}", k + 1
        self._names.add(unique)
        return unique

    def _observers(self, settings: Settings) -> list[RunObserver]:
        return [obs for make in self._session.observer_factories for obs in make(settings)]

    def _progress(self, name: str) -> ProgressSink | None:
        factory = self._session.progress
        return factory(f"{self._test_id}[{name}]") if factory else None

    def run(
        self,
        fn: Any,
        inputs: Any = None,
        *,
        name: str | None = None,
        check: bool = True,
        **settings: Any,
    ) -> PerfResult:
        """Run ``fn`` under load from a sync test and check its budgets."""
        __tracebackhide__ = True
        parsed = self.settings(**settings)
        run_name = self._name(name, fn)
        observers = self._observers(parsed)
        raw = run_load(fn, inputs, parsed, observers=observers, progress=self._progress(run_name))
        return self._finish(run_name, parsed, raw, observers, check)

    async def arun(
        self,
        fn: Any,
        inputs: Any = None,
        *,
        name: str | None = None,
        check: bool = True,
        **settings: Any,
    ) -> PerfResult:
        """Run ``fn`` under load from an async test and check its budgets."""
        __tracebackhide__ = True
        parsed = self.settings(**settings)
        run_name = self._name(name, fn)
        observers = self._observers(parsed)
        raw = await arun_load(
            fn, inputs, parsed, observers=observers, progress=self._progress(run_name)
        )
        return self._finish(run_name, parsed, raw, observers, check)

    def _finish(
        self,
        name: str,
        settings: Settings,
        raw: RawRun,
        observers: Sequence[RunObserver],
        check: bool,
    ) -> PerfResult:
        __tracebackhide__ = True
        extra = [obs.result_fields() for obs in observers]
        result = build_result(name, settings, raw, prices=self._session.prices, extra_fields=extra)
        for hook in self._session.after_run:
            result = hook(self._test_id, result)
        warnings = small_sample_warnings(settings.budgets, result)
        for message in warnings:
            if self._warn is not None:
                self._warn(f"{self._test_id} [{name}]: {message}")
        record = record_of(self._test_id, result, warnings)
        self.results.append(result)
        self.records.append(record)
        if check:
            raise_if_broken(result)
        for gate in self._session.gates:
            gate(self._test_id, result)
        return result
