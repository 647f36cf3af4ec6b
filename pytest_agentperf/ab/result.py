"""``CompareResult``: every arm's ``PerfResult`` and the paired ratios between arms, with the
comparison's budgets (``max_slowdown``, ``max_cost_increase``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import SettingsError
from ..results import ArmSummary, BudgetCheck, PerfResult, Ratio
from .arms import CompareOptions
from .paired import (
    COMPARED_METRICS,
    CONFIDENCE,
    ERROR_RATE,
    error_rate_difference,
    paired_ratio,
)
from .split import ArmCalls

SLOWDOWN_METRICS = ("p50", "p95")
"""The metrics ``max_slowdown`` judges (as the baseline gate does)."""


def describe_ratio(r: Ratio) -> str:
    """``1.21x [1.12x, 1.30x] worse`` (a difference in percentage points for the error rate)."""
    return r.text


@dataclass(frozen=True)
class CompareResult:
    """What ``agentperf.compare`` measured: one ``PerfResult`` per arm (``arms``, the reference
    first) and, on demand, any arm against any other (``ratio``)."""

    name: str
    """The comparison's run name; each arm's run is named ``name/arm``."""
    reference: str
    """The first arm: what the others are compared with."""
    seed: int
    """The seed of the block shuffle and of the bootstrap (``seed=`` to repeat it)."""
    blocks: int
    """Randomized blocks the run was split into."""
    arms: Mapping[str, PerfResult]
    budgets: tuple[BudgetCheck, ...] = ()
    """The comparison's own budgets, one check per arm and budget."""
    calls: Mapping[str, ArmCalls] = field(default_factory=dict, repr=False, compare=False)
    """Each arm's per-call figures by block (what the ratios are computed from)."""

    @property
    def passed(self) -> bool:
        """True when every arm's budgets and the comparison's budgets held."""
        return all(b.passed for b in self.budgets) and all(r.passed for r in self.arms.values())

    def _pair(self, arm: str, reference: str | None) -> tuple[ArmCalls, ArmCalls, str]:
        ref = self.reference if reference is None else reference
        for name in (arm, ref):
            if name not in self.calls:
                raise SettingsError(
                    f"no arm named {name!r}; the arms are {', '.join(map(repr, self.calls))}",
                    key="arm",
                )
        return self.calls[arm], self.calls[ref], ref

    def ratio(self, metric: str, arm: str, reference: str | None = None) -> Ratio:
        """``metric`` of ``arm`` over that of ``reference`` (default: the first arm), with a
        paired bootstrap interval over the blocks and a verdict; ``metric`` is one of
        ``p50 p95 mean_latency ttft_p95 tokens_per_call cost_per_call``, or ``error_rate``
        (a difference, arm minus reference)."""
        a, r, _ = self._pair(arm, reference)
        if metric not in (*COMPARED_METRICS, ERROR_RATE):
            raise SettingsError(
                f"metric={metric!r}: not a compared metric; one of "
                f"{', '.join((*COMPARED_METRICS, ERROR_RATE))}",
                key="metric",
            )
        if metric == ERROR_RATE:
            return error_rate_difference(a, r)
        return paired_ratio(metric, a, r, seed=self.seed)

    def ratios(self, arm: str, reference: str | None = None) -> tuple[Ratio, ...]:
        """Every compared metric of ``arm`` against ``reference``, then the error rate."""
        return tuple(self.ratio(m, arm, reference) for m in (*COMPARED_METRICS, ERROR_RATE))

    def rows(self) -> list[dict[str, Any]]:
        """One row per arm against the reference: its p50, p95, cost per call, and the ratio
        and verdict of each metric (the reference's row has no ratios)."""
        out = []
        for name, result in self.arms.items():
            row: dict[str, Any] = {
                "arm": name,
                "n": result.requests,
                "p50": result.latency.p50,
                "p95": result.latency.p95,
                "error_rate": result.error_rate,
                "tokens_per_call": result.usage.per_call.total_tokens,
                "cost_per_call": result.cost.per_call,
            }
            if name != self.reference:
                for r in self.ratios(name):
                    row[f"{r.metric} vs {self.reference}"] = describe_ratio(r)
            out.append(row)
        return out

    def table(self) -> str:
        """``rows`` as a text table (tabulate)."""
        from tabulate import tabulate

        return tabulate(self.rows(), headers="keys", floatfmt=".4g", missingval="reference")


def summaries(
    name: str, reference: str, seed: int, blocks: int, calls: Mapping[str, ArmCalls]
) -> dict[str, ArmSummary]:
    """Each arm's ``ArmSummary``: its ratios against the reference (none for the reference)."""
    ref = calls[reference]
    out = {}
    for arm, figures in calls.items():
        ratios: tuple[Ratio, ...] = ()
        if arm != reference:
            ratios = tuple(paired_ratio(m, figures, ref, seed=seed) for m in COMPARED_METRICS)
            ratios += (error_rate_difference(figures, ref),)
        out[arm] = ArmSummary(name, arm, reference, seed, blocks, ratios, CONFIDENCE)
    return out


def _pct(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 else f"{value:.1%}"


def budget_checks(summary: ArmSummary, options: CompareOptions) -> tuple[BudgetCheck, ...]:
    """The comparison's budgets judged for one arm (none for the reference): broken when the
    whole interval of the ratio is above 1 + the limit."""
    if summary.is_reference:
        return ()
    out = []
    conf = f"{CONFIDENCE:.0%} CI"
    arm, ref = summary.arm, summary.reference
    if options.max_slowdown is not None:
        limit = options.max_slowdown
        worst: Ratio | None = None
        for metric in SLOWDOWN_METRICS:
            r = summary.ratio(metric)
            if r is not None and r.low is not None and (worst is None or r.low > (worst.low or 0)):
                worst = r
        if worst is None or worst.estimate is None:
            out.append(
                BudgetCheck(
                    "max_slowdown",
                    limit,
                    None,
                    False,
                    0,
                    f"max_slowdown: arm {arm!r} could not be compared with {ref!r} (no "
                    "successful calls in a shared block)",
                )
            )
        else:
            passed = not (worst.low is not None and worst.low > 1.0 + limit)
            relation = "beyond" if not passed else "within"
            out.append(
                BudgetCheck(
                    "max_slowdown",
                    limit,
                    worst.estimate - 1.0,
                    passed,
                    worst.blocks,
                    f"max_slowdown: arm {arm!r} {worst.metric} latency is "
                    f"{worst.estimate:.3g}x that of {ref!r} ({conf} {worst.low:.3g}x-"
                    f"{worst.high:.3g}x), {relation} the {_pct(limit)} allowed "
                    f"({worst.blocks} blocks)",
                )
            )
    if options.max_cost_increase is not None:
        limit = options.max_cost_increase
        r = summary.ratio("cost_per_call")
        if r is None or r.estimate is None or r.low is None:
            out.append(
                BudgetCheck(
                    "max_cost_increase",
                    limit,
                    None,
                    False,
                    0,
                    f"max_cost_increase: the cost of arm {arm!r} or {ref!r} is unknown (no "
                    "usage recorded, or a model without a price); record usage, or add the "
                    "model's price (ini agentperf_prices)",
                )
            )
        else:
            passed = not r.low > 1.0 + limit
            relation = "beyond" if not passed else "within"
            out.append(
                BudgetCheck(
                    "max_cost_increase",
                    limit,
                    r.estimate - 1.0,
                    passed,
                    r.blocks,
                    f"max_cost_increase: arm {arm!r} costs {r.estimate:.3g}x per call what "
                    f"{ref!r} costs ({conf} {r.low:.3g}x-{r.high:.3g}x), {relation} the "
                    f"{_pct(limit)} allowed",
                )
            )
    return tuple(out)


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))
