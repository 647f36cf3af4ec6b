"""One comparison end to end: the plan, the warmup and measured runs, and the split by arm."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from ..budgets import raise_if_broken as raise_arm
from ..engine import KEEP_CALLS, RawRun, RunObserver, arun_load, run_load
from ..engine.spend import SPEND_BUDGETS
from ..errors import BudgetExceeded
from ..pricing import PriceTable
from ..results import ArmSummary, BudgetCheck, PerfResult
from ..settings import Settings
from .arms import CompareOptions, check_arms, split_options
from .result import CompareResult, budget_checks, frozen, summaries
from .schedule import Dispatch, Schedule, block_size, normalize_inputs
from .split import ArmCalls, split

DEFAULT_NAME = "compare"
"""The name of a comparison made without ``name=``."""


@dataclass
class ComparePlan:
    """What a comparison will run: the arms, the per-arm settings, the shuffled schedule and
    the settings of the one interleaved engine run."""

    arms: list[tuple[str, Any]]
    options: CompareOptions
    settings: Settings
    """Each arm's settings (``requests`` and ``warmup`` per arm)."""
    engine_settings: Settings
    """The interleaved run's: every arm's calls, the load as the settings describe it."""
    schedule: Schedule
    warmup: Schedule | None
    dispatch: Dispatch
    blocks: int
    seed: int

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.arms]

    def observer_settings(self) -> Settings:
        """The settings the interleaved run's observers are built from: the engine's, with the
        arms' ``abort_on`` and the budgets it names, so that early abort judges every arm's
        calls together (the other budgets are judged per arm, after the split)."""
        abort_on = self.settings.abort_on
        budgets = {n: self.settings.budgets[n] for n in abort_on if n in self.settings.budgets}
        return replace(self.engine_settings, abort_on=abort_on, budgets=MappingProxyType(budgets))

    def _measured_inputs(self) -> Any:
        if self.settings.requests is not None:
            return self.schedule.all()
        return iter(self.schedule)  # bounded by time only: blocks are made as they are read

    def _warm_settings(self) -> Settings:
        assert self.warmup is not None
        n = self.settings.warmup * len(self.arms)
        return replace(self.engine_settings, requests=n, duration=None, rate=None)

    def _warmed(self, warm: Dispatch, on_warmup: Callable[[str], None] | None) -> None:
        """Say at once which arms' warmup calls failed."""
        if on_warmup is None:
            return
        for (name, _), errors, messages in zip(self.arms, warm.errors, warm.messages, strict=True):
            if errors:
                first = messages[0] if messages else "(no message)"
                on_warmup(
                    f"{errors} of {self.settings.warmup} warmup calls of arm {name!r} failed "
                    f"before the measured calls started; first error: {first}"
                )

    def run(self, **engine: Any) -> RawRun:
        """Warm every arm, then run the measured calls, from sync code; ``engine``: the
        keywords of ``run_load``."""
        if self.warmup is not None:
            warm = Dispatch(self.arms, self.schedule.inputs is not None)
            run_load(warm.agent(), self.warmup.all(), self._warm_settings())
            self._warmed(warm, engine.get("on_warmup"))
        return run_load(
            self.dispatch.agent(), self._measured_inputs(), self.engine_settings, **_kept(engine)
        )

    async def arun(self, **engine: Any) -> RawRun:
        """As ``run``, from a coroutine."""
        if self.warmup is not None:
            warm = Dispatch(self.arms, self.schedule.inputs is not None)
            await arun_load(warm.agent(), self.warmup.all(), self._warm_settings())
            self._warmed(warm, engine.get("on_warmup"))
        return await arun_load(
            self.dispatch.agent(), self._measured_inputs(), self.engine_settings, **_kept(engine)
        )

    def split(
        self, raw: RawRun, *, detail: int, prices: PriceTable | None
    ) -> list[tuple[str, RawRun, ArmCalls]]:
        """The interleaved run cut into each arm's raw run and per-call figures."""
        parts = split(
            raw,
            self.schedule.calls,
            self.dispatch.marks,
            self.dispatch.messages,
            len(self.arms),
            detail=detail,
            model=self.settings.model,
            prices=prices,
        )
        return [(name, r, c) for name, (r, c) in zip(self.names, parts, strict=True)]


PROCESS_FIELDS = ("memory",)
"""Observer fields of the whole process: an arm gets those of the whole comparison (its
memory grew with every arm's calls), and the rest (e.g. ``windows``) of its own calls."""


def arm_fields(
    observers: Sequence[RunObserver], arm: RawRun, whole: RawRun
) -> list[dict[str, Any]]:
    """The observers' ``PerfResult`` fields for one arm: of the arm's own calls, but for
    ``PROCESS_FIELDS``, which are of the whole comparison (a leak slope per arm's call would
    count every arm's calls against one arm)."""
    out = []
    for obs in observers:
        fields = dict(obs.result_fields(arm.log, whole.duration))
        if any(k in fields for k in PROCESS_FIELDS):
            overall = obs.result_fields(whole.log, whole.duration)
            fields.update({k: overall[k] for k in PROCESS_FIELDS if k in overall})
        out.append(fields)
    return out


def _kept(engine: Mapping[str, Any]) -> dict[str, Any]:
    """The engine keywords of the measured run: each call's usage and tools are kept
    (``KEEP_CALLS``) whatever the session asked for, to split them by arm."""
    return {**engine, "detail": max(int(engine.get("detail", 0)), KEEP_CALLS)}


def plan_compare(
    arms: object,
    inputs: Any,
    settings: Mapping[str, Any],
    parse: Callable[[dict[str, Any]], Settings],
) -> ComparePlan:
    """Validate ``arms`` and ``settings`` and lay out the blocks; ``parse`` turns the per-arm
    settings into ``Settings`` (the marker's, then these, scaled by the session)."""
    pairs = check_arms(arms)
    options, rest = split_options(settings)
    arm_settings = parse(rest)
    n = len(pairs)
    per_arm = arm_settings.requests
    k = block_size(per_arm, options.blocks)
    blocks = 0 if per_arm is None else -(-per_arm // k)
    seed = arm_settings.seed
    items = normalize_inputs(inputs)
    dispatch = Dispatch(pairs, items is not None)
    # the spend guard watches the comparison's calls live: all arms together may spend what
    # each arm may, times the arms; each arm's own total is judged after the split
    spend = {k: v * n for k, v in arm_settings.budgets.items() if k in SPEND_BUDGETS}
    engine_settings = replace(
        arm_settings,
        requests=None if per_arm is None else per_arm * n,
        warmup=0,  # each arm is warmed by a run of its own first (``ComparePlan.run``)
        abort_on=(),  # judged on every arm's calls together: ``observer_settings``
        budgets=MappingProxyType(spend),  # the rest: judged per arm, after the split
    )
    warm = arm_settings.warmup
    warmup = Schedule(n, warm, warm, items, seed) if warm else None
    schedule = Schedule(n, per_arm, k, items, seed)
    return ComparePlan(
        pairs, options, arm_settings, engine_settings, schedule, warmup, dispatch, blocks, seed
    )


def assemble(
    plan: ComparePlan,
    raw: RawRun,
    name: str,
    *,
    detail: int,
    prices: PriceTable | None,
    result_of: Callable[[str, RawRun], PerfResult],
    record: Callable[[str, PerfResult, ArmSummary], None],
) -> CompareResult:
    """The ``CompareResult`` of ``raw``: each arm's result (``result_of``: its ``PerfResult``
    with the session's after-run hooks), its ratios and the comparison's budgets, each arm
    handed to ``record`` (reference first)."""
    parts = plan.split(raw, detail=detail, prices=prices)
    calls = {arm: figures for arm, _, figures in parts}
    blocks = plan.blocks or len({c.block for c in plan.schedule.calls})
    reference = plan.names[0]
    arm_summaries = summaries(name, reference, plan.seed, blocks, calls)
    results: dict[str, PerfResult] = {}
    checks: list[BudgetCheck] = []
    for arm, arm_raw, _ in parts:
        result = result_of(arm, arm_raw)
        own = budget_checks(arm_summaries[arm], plan.options)
        if own:  # the comparison's budgets are the arm's too: its status and message say so
            result = replace(result, budgets=(*result.budgets, *own))
        checks += own
        record(arm, result, arm_summaries[arm])
        results[arm] = result
    return CompareResult(
        name, reference, plan.seed, blocks, frozen(results), tuple(checks), frozen(calls)
    )


def raise_if_broken(result: CompareResult) -> None:
    """Raise BudgetExceeded listing every broken budget of every arm (the comparison's
    budgets included), after every arm was recorded."""
    __tracebackhide__ = True
    failures: list[str] = []
    for arm, arm_result in result.arms.items():
        try:
            raise_arm(arm_result)
        except BudgetExceeded as exc:
            failures += [f"arm {arm!r}: {f}" for f in exc.failures]
    if failures:
        n = len(failures)
        head = f"{n} budget{'s' if n > 1 else ''} exceeded in comparison {result.name!r}"
        raise BudgetExceeded(head + ":\n  " + "\n  ".join(failures), tuple(failures))
