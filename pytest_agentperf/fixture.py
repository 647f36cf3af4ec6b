"""The ``agentperf`` fixture object: runs an agent under load and records each run.

No pytest here: plugin.py builds one ``RunPipeline`` per process and an ``AgentPerf`` per test.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from . import ab
from .assemble import build_result
from .baseline.comparison import with_first_run
from .budgets import raise_if_broken, small_sample_warnings
from .capacity import (
    SEARCH_KEYS,
    CapacityResult,
    CapacitySearch,
    outcome,
    search_options,
    step_layer,
)
from .engine import ProgressSink, RawRun, RunObserver, arun_load, readable_again, run_load
from .engine.spend import SPEND_BUDGETS
from .errors import SettingsError
from .findings import run_findings, warnings_of
from .integrations.langchain import activate as langchain_hook
from .observers.memory import PROFILE_CALLS, aprofile_agent, profile_agent
from .observers.windows import LiveWindow
from .pipeline import RunPipeline
from .pricing import cost_projection
from .progress import ProgressLine
from .record import DEFAULT_RUN_NAME, RunRecord, run_label
from .results import Allocation, ArmSummary, PerfResult
from .settings import Settings, parse_settings
from .workers.controller import WorkerRun
from .workers.spec import local_specs


def _profile_calls(settings: Settings, raw: RawRun) -> int:
    """Calls of the memory_profile pass; 0 (no pass) after an abort or a timeout, since an
    agent that hangs would hang the untimed pass too."""
    if not settings.memory_profile or raw.aborted is not None or raw.timeouts:
        return 0
    return min(PROFILE_CALLS, settings.requests or PROFILE_CALLS)


def _with_live_window(sink: ProgressSink | None, observers: Sequence[RunObserver]) -> None:
    live = next((o for o in observers if isinstance(o, LiveWindow)), None)
    if live is not None and isinstance(sink, ProgressLine):
        sink.detail = live.describe


@dataclass(frozen=True)
class _RunSetup:
    """What one run needs before it starts: its name, settings, observers and progress line."""

    name: str
    settings: Settings
    observers: list[RunObserver]
    progress: ProgressSink | None


@dataclass(frozen=True)
class _CapacityPlan:
    """What every step of a capacity search shares: the settings layers (marker, call) and
    the budgets the search is recorded against (the SLO and ``min_capacity``)."""

    layers: list[Mapping[str, Any]]
    budgets: Mapping[str, float]

    def settings(self) -> Settings:
        """The settings the search is recorded (and compared) with."""
        return replace(parse_settings(*self.layers), budgets=self.budgets)


def check_run_name(name: object) -> None:
    """Raise SettingsError unless ``name`` is a usable run name: a non-empty ``str`` that can be
    written as UTF-8 (no lone surrogates) and holds no control characters (it is shown in the
    terminal table and saved in the baseline)."""
    if not isinstance(name, str):
        raise SettingsError(
            f"name={name!r}: a run name must be a str, got {type(name).__name__}", key="name"
        )
    if not name.strip():
        raise SettingsError(
            f"name={name!r}: a run name must not be empty; leave name= out for the test's "
            "default run",
            key="name",
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError(
            f"name={name!r}: a run name must be valid text (it holds a lone surrogate)",
            key="name",
        ) from None
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise SettingsError(
            f"name={name!r}: a run name must not hold control characters (newline, tab, ...)",
            key="name",
        )


class AgentPerf:
    """Runs an agent under load from a test: ``run`` (sync tests) or ``await arun`` (async)."""

    def __init__(
        self,
        pipeline: RunPipeline,
        test_id: str,
        marker_settings: Sequence[Mapping[str, Any]] = (),
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._test_id = test_id
        self._layers = tuple(marker_settings)
        self._warn = warn
        self._names: set[str] = set()
        self.results: list[PerfResult] = []
        """Every result of this test, in run order."""
        self.records: list[RunRecord] = []
        """The record of every run of this test, in run order."""
        self._reported = 0

    def take_new_records(self) -> list[RunRecord]:
        """The records of runs made since the last call (each test phase reports its own)."""
        new = self.records[self._reported :]
        self._reported = len(self.records)
        return new

    def settings(self, **overrides: Any) -> Settings:
        """The settings a run would use: marker, then ``overrides``, scaled by the session."""
        return parse_settings(*self._layers, overrides).scaled(self._pipeline.scale)

    def _name(self, name: str | None) -> str:
        """``name``, or "default" for a run not named, made unique within the test ("-2",
        "-3", ...). Not the function's name: wrapping the agent differently (a lambda, a
        class) must not turn its baseline entry into a new one."""
        if name is not None:
            check_run_name(name)
        base = DEFAULT_RUN_NAME if name is None else name
        unique, k = base, 2
        while unique in self._names:
            unique, k = f"{base}-{k}", k + 1
        self._names.add(unique)
        return unique

    def _observers(self, settings: Settings, split: bool = True) -> list[RunObserver]:
        specs = self._worker_specs(settings) if split else ()
        if specs:  # split over workers: the controller is the run's only observer
            return [WorkerRun(specs, warn=self._warn)]
        return [obs for make in self._pipeline.observer_factories for obs in make(settings)]

    def _worker_specs(self, settings: Settings) -> tuple[str, ...]:
        """The gateways a run is split over: ``--agentperf-workers``, else ``workers=N``
        local processes; empty: this process runs it."""
        if self._pipeline.workers:
            return self._pipeline.workers
        if settings.workers is not None:
            return local_specs(settings.workers)
        return ()

    def _label(self, name: str) -> str:
        return run_label(self._test_id, name)

    def _warmup_warning(self, name: str) -> Callable[[str], None] | None:
        """Warns at once (before the measured calls) when warmup calls failed."""
        warn = self._warn
        if warn is None:
            return None
        return lambda message: warn(f"{self._label(name)}: {message}")

    def _progress(self, name: str) -> ProgressSink | None:
        factory = self._pipeline.progress
        return factory(self._label(name)) if factory else None

    def _prepare(self, name: str | None, overrides: dict[str, Any]) -> _RunSetup:
        settings = self.settings(**overrides)
        run_name = self._name(name)
        observers = self._observers(settings)
        sink = self._progress(run_name)
        _with_live_window(sink, observers)
        return _RunSetup(run_name, settings, observers, sink)

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
        setup = self._prepare(name, settings)
        inputs = readable_again(inputs)  # the profile pass and a confirming run read it again
        raw = self._load(fn, inputs, setup)
        calls = _profile_calls(setup.settings, raw) if _worker_run(setup) is None else 0
        allocations = profile_agent(fn, inputs, calls) if calls else ()
        result = self._result(setup, raw, allocations)
        if self._confirming(result):  # a regression: measured once more before failing
            again = self._again(setup)
            result = confirmed(result, self._result(again, self._load(fn, inputs, again)))
        return self._finish(setup, result, check)

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
        setup = self._prepare(name, settings)
        inputs = readable_again(inputs)  # the profile pass and a confirming run read it again
        raw = await self._aload(fn, inputs, setup)
        calls = _profile_calls(setup.settings, raw) if _worker_run(setup) is None else 0
        timeout = setup.settings.timeout
        allocations = await aprofile_agent(fn, inputs, calls, timeout=timeout) if calls else ()
        result = self._result(setup, raw, allocations)
        if self._confirming(result):
            again = self._again(setup)
            result = confirmed(result, self._result(again, await self._aload(fn, inputs, again)))
        return self._finish(setup, result, check)

    def capacity(
        self,
        fn: Any,
        inputs: Any = None,
        *,
        slo: Mapping[str, Any],
        start: Any = "1/s",
        limit: Any = "1000/s",
        name: str | None = None,
        check: bool = True,
        **settings: Any,
    ) -> CapacityResult:
        """Find the highest arrival rate at which ``slo`` holds (see ``capacity.py``), from a
        sync test; record it as one run and check ``min_capacity``."""
        __tracebackhide__ = True
        search, plan = self._capacity_search(slo, start, limit, settings)
        inputs = readable_again(inputs)  # every step reads it from the start
        self._search(search, plan, fn, inputs)
        run_name = self._name("capacity" if name is None else name)
        found = self._capacity_found(search, plan, run_name)
        if self._confirming(found.result):  # a regression: the whole search once more
            again = CapacitySearch(search.options)
            self._search(again, plan, fn, inputs)
            found = confirmed_capacity(found, self._capacity_found(again, plan, run_name))
        return self._capacity_done(found, plan, check)

    async def acapacity(
        self,
        fn: Any,
        inputs: Any = None,
        *,
        slo: Mapping[str, Any],
        start: Any = "1/s",
        limit: Any = "1000/s",
        name: str | None = None,
        check: bool = True,
        **settings: Any,
    ) -> CapacityResult:
        """``capacity`` from an async test."""
        __tracebackhide__ = True
        search, plan = self._capacity_search(slo, start, limit, settings)
        inputs = readable_again(inputs)  # every step reads it from the start
        await self._asearch(search, plan, fn, inputs)
        run_name = self._name("capacity" if name is None else name)
        found = self._capacity_found(search, plan, run_name)
        if self._confirming(found.result):  # a regression: the whole search once more
            again = CapacitySearch(search.options)
            await self._asearch(again, plan, fn, inputs)
            found = confirmed_capacity(found, self._capacity_found(again, plan, run_name))
        return self._capacity_done(found, plan, check)

    def _search(self, search: CapacitySearch, plan: _CapacityPlan, fn: Any, inputs: Any) -> None:
        """Make the search's steps, one run each, until it has found what it looks for."""
        while (rate := search.next_rate()) is not None:
            setup = self._capacity_step(plan, search, rate)
            search.add(self._step_result(setup, self._load(fn, inputs, setup)))

    async def _asearch(
        self, search: CapacitySearch, plan: _CapacityPlan, fn: Any, inputs: Any
    ) -> None:
        """``_search`` from an async test."""
        while (rate := search.next_rate()) is not None:
            setup = self._capacity_step(plan, search, rate)
            search.add(self._step_result(setup, await self._aload(fn, inputs, setup)))

    def _capacity_search(
        self, slo: Any, start: Any, limit: Any, settings: dict[str, Any]
    ) -> tuple[CapacitySearch, _CapacityPlan]:
        own = {k: settings.pop(k) for k in SEARCH_KEYS if k in settings}
        options = search_options(slo, start, limit, **own)
        # the steps' rates are the search's: with one, open-loop settings (arrival=) are valid
        layers = [*self._layers, settings, {"rate": options.start}]
        whole = parse_settings(*layers)  # the marker's and the call's settings must be valid
        spend = {k: v for k, v in whole.budgets.items() if k in SPEND_BUDGETS}
        options = replace(options, spend=spend)
        budgets = {**options.slo}
        if "min_capacity" in whole.budgets:
            budgets["min_capacity"] = whole.budgets["min_capacity"]
        return CapacitySearch(options), _CapacityPlan(layers, MappingProxyType(budgets))

    def _capacity_step(self, plan: _CapacityPlan, search: CapacitySearch, rate: float) -> _RunSetup:
        slo = search.options.slo
        left = search.step_spend()
        layer = step_layer(plan.layers, rate, search.calls_at(rate), slo, left)
        settings = replace(parse_settings(layer), budgets=MappingProxyType({**slo, **left}))
        observers = self._observers(settings)
        sink = self._progress(f"capacity @ {rate:.4g}/s")
        _with_live_window(sink, observers)
        return _RunSetup(f"{rate:.4g}/s", settings, observers, sink)

    def _step_result(self, setup: _RunSetup, raw: RawRun) -> PerfResult:
        """One step of a search: its result, not compared (the search is, as a whole)."""
        return self._built(setup, raw)

    def _built(
        self, setup: _RunSetup, raw: RawRun, extra: Sequence[Mapping[str, Any]] | None = None
    ) -> PerfResult:
        """The result of ``raw`` with its observers' fields (``extra``: those fields, when
        not the observers' of ``raw``, as for an A/B arm)."""
        if extra is None:
            extra = [obs.result_fields(raw.log, raw.duration) for obs in setup.observers]
        return build_result(
            setup.name, setup.settings, raw, prices=self._pipeline.prices, extra_fields=extra
        )

    def _after_run(self, result: PerfResult, settings: Settings) -> PerfResult:
        """``result`` through the after-run hooks (the baseline comparison among them)."""
        for hook in self._pipeline.after_run:
            result = hook(self._test_id, result, settings)
        return result

    def _capacity_found(
        self, search: CapacitySearch, plan: _CapacityPlan, run_name: str
    ) -> CapacityResult:
        """What the search found, compared with its baseline search (the after-run hooks)."""
        found = outcome(search, run_name, plan.budgets)
        return replace(found, result=self._after_run(found.result, plan.settings()))

    def _capacity_done(
        self, found: CapacityResult, plan: _CapacityPlan, check: bool
    ) -> CapacityResult:
        """Record the search as one run; fail the test on ``min_capacity``, a broken SLO
        budget or a regressed capacity."""
        __tracebackhide__ = True
        setup = _RunSetup(found.result.name, plan.settings(), [], None)
        self._finish(setup, found.result, check)
        return found

    def compare(
        self,
        arms: Mapping[str, Any],
        inputs: Any = None,
        *,
        name: str | None = None,
        check: bool = True,
        **settings: Any,
    ) -> ab.CompareResult:
        """Compare agents under one interleaved load from a sync test (``arms``: name ->
        agent, the first is the reference); see ``pytest_agentperf.ab``."""
        __tracebackhide__ = True
        plan, setup = self._compare_setup(arms, inputs, name, settings)
        with langchain_hook():
            raw = plan.run(**self._engine_options(setup))
        return self._compare_result(plan, setup, raw, check)

    async def acompare(
        self,
        arms: Mapping[str, Any],
        inputs: Any = None,
        *,
        name: str | None = None,
        check: bool = True,
        **settings: Any,
    ) -> ab.CompareResult:
        """As ``compare``, from an async test."""
        __tracebackhide__ = True
        plan, setup = self._compare_setup(arms, inputs, name, settings)
        with langchain_hook():
            raw = await plan.arun(**self._engine_options(setup))
        return self._compare_result(plan, setup, raw, check)

    def _compare_setup(
        self, arms: Any, inputs: Any, name: str | None, settings: dict[str, Any]
    ) -> tuple[ab.ComparePlan, _RunSetup]:
        plan = ab.plan_compare(arms, inputs, settings, lambda rest: self.settings(**rest))
        run_name = self._name(ab.DEFAULT_NAME if name is None else name)
        if plan.engine_settings.workers is not None:
            raise SettingsError(
                "workers= does not apply to agentperf.compare: its arms are interleaved in one "
                "process; leave workers= out (--agentperf-workers does not split it either)",
                key="workers",
            )
        observers = self._observers(plan.observer_settings(), split=False)
        sink = self._progress(run_name)
        _with_live_window(sink, observers)
        return plan, _RunSetup(run_name, plan.engine_settings, observers, sink)

    def _compare_result(
        self, plan: ab.ComparePlan, setup: _RunSetup, raw: RawRun, check: bool
    ) -> ab.CompareResult:
        """Each arm's result and record (named ``name/arm``), then the comparison's."""
        __tracebackhide__ = True
        arm_setups = {
            arm: replace(setup, name=self._name(f"{setup.name}/{arm}"), settings=plan.settings)
            for arm in plan.names
        }

        def record(arm: str, result: PerfResult, summary: ArmSummary) -> None:
            self._finish(arm_setups[arm], result, check=False)
            made = replace(self.records[-1], arm=summary, checked=check)
            self.records[-1] = replace(made, findings=run_findings(made))

        result = ab.assemble(
            plan,
            raw,
            setup.name,
            detail=self._pipeline.detail,
            prices=self._pipeline.prices,
            result_of=lambda arm, arm_raw: self._result(
                arm_setups[arm], arm_raw, extra=ab.arm_fields(setup.observers, arm_raw, raw)
            ),
            record=record,
        )
        if check:
            ab.raise_if_broken(result)
        return result

    def _engine_options(self, setup: _RunSetup) -> dict[str, Any]:
        """The keywords ``run_load`` and ``arun_load`` take beside the agent and settings."""
        return {
            "observers": setup.observers,
            "progress": setup.progress,
            "on_warmup": self._warmup_warning(setup.name),
            "detail": self._pipeline.detail,
            "prices": self._pipeline.prices,
        }

    def _split_options(self, setup: _RunSetup) -> dict[str, Any]:
        """The keywords ``WorkerRun.run`` takes beside the agent and settings."""
        pipeline = self._pipeline
        return {"progress": setup.progress, "detail": pipeline.detail, "prices": pipeline.prices}

    def _load(self, fn: Any, inputs: Any, setup: _RunSetup) -> RawRun:
        split = _worker_run(setup)
        if split is not None:
            return split.run(fn, inputs, setup.settings, **self._split_options(setup))
        with langchain_hook():
            return run_load(fn, inputs, setup.settings, **self._engine_options(setup))

    async def _aload(self, fn: Any, inputs: Any, setup: _RunSetup) -> RawRun:
        split = _worker_run(setup)
        if split is not None:  # the controller blocks on its workers: off the event loop
            options = self._split_options(setup)
            return await asyncio.to_thread(split.run, fn, inputs, setup.settings, **options)
        with langchain_hook():
            return await arun_load(fn, inputs, setup.settings, **self._engine_options(setup))

    def _confirming(self, result: PerfResult) -> bool:
        """Re-measure a regressed run (``--agentperf-confirm``)? One-shot inputs are no
        obstacle: ``readable_again`` kept what the first measurement read."""
        if not self._pipeline.confirm or result.comparison is None:
            return False
        return result.comparison.regressed

    def _again(self, setup: _RunSetup) -> _RunSetup:
        """The same run once more, with fresh observers."""
        observers = self._observers(setup.settings)
        sink = self._progress(f"{setup.name} (confirming)")
        _with_live_window(sink, observers)
        return replace(setup, observers=observers, progress=sink)

    def _result(
        self,
        setup: _RunSetup,
        raw: RawRun,
        allocations: tuple[Allocation, ...] = (),
        *,
        extra: Sequence[Mapping[str, Any]] | None = None,
    ) -> PerfResult:
        """The result of ``raw``, compared with the baseline (the after-run hooks);
        ``extra``: the observers' fields, when not those of ``raw`` (an A/B arm)."""
        result = self._built(setup, raw, extra)
        if allocations:
            memory = replace(result.memory, top_allocations=allocations)
            result = replace(result, memory=memory)
        return self._after_run(result, setup.settings)

    def _finish(self, setup: _RunSetup, result: PerfResult, check: bool) -> PerfResult:
        """Record the run, then fail the test on a broken budget or a regression."""
        __tracebackhide__ = True
        name, settings = setup.name, setup.settings
        warnings = small_sample_warnings(settings.budgets, result)
        for message in warnings:
            if self._warn is not None:
                self._warn(f"{self._label(name)}: {message}")
        projection = cost_projection(
            result.usage,
            result.requests,
            result.cost,
            self._pipeline.prices,
            whatif=self._pipeline.whatif_models,
            monthly_calls=self._pipeline.monthly_calls,
        )
        record = RunRecord.of(self._test_id, result, cost_projection=projection, checked=check)
        findings = run_findings(record)
        for message in warnings_of(findings):  # e.g. the load generator saturated
            warnings.append(message)
            if self._warn is not None:
                self._warn(f"{self._label(name)}: {message}")
        record = replace(record, warnings=tuple(warnings), findings=findings)
        self.results.append(result)
        self.records.append(record)
        if check:
            raise_if_broken(result)
        for gate in self._pipeline.gates:
            gate(self._test_id, result)
        return result


def _worker_run(setup: _RunSetup) -> WorkerRun | None:
    """The controller of a run split over workers (then its one observer), or None."""
    first = setup.observers[0] if setup.observers else None
    return first if isinstance(first, WorkerRun) else None


def confirmed_capacity(first: CapacityResult, second: CapacityResult) -> CapacityResult:
    """``second`` (the search made again, ``--agentperf-confirm``) with ``confirmed``'s flag
    on its result: a capacity regression fails only when both searches show it."""
    return replace(second, result=confirmed(first.result, second.result))


def confirmed(first: PerfResult, second: PerfResult) -> PerfResult:
    """``second`` (the re-measured run) with a flag saying what the first run showed; a
    regression fails only when the second run regresses too."""
    if first.comparison is None or second.comparison is None:
        return second
    return replace(second, comparison=with_first_run(second.comparison, first.comparison))
