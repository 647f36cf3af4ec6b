"""Budgets: what each one measures, its evaluation, and the failure message."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BudgetExceeded
from .results import BudgetCheck, PerfResult, Stats
from .stats import min_samples_for
from .units import Unit, format_value
from .usage import UNNAMED_MODEL

Measure = Callable[[PerfResult], "tuple[float | None, int]"]
"""Reads a budget's value from a result: (value or None when unknown, sample size)."""


class Early(enum.Enum):
    """How ``abort_on`` judges a budget on the calls completed so far (see ``abort.py``)."""

    ERRORS = "errors"
    """Share of calls that failed: its Wilson lower confidence bound is above the limit."""
    TIMEOUTS = "timeouts"
    """Share of calls that timed out, judged like ``ERRORS``."""
    PERCENTILE = "percentile"
    """A latency percentile (the spec's ``percentile``): an order-statistic lower bound."""
    MEAN = "mean"
    """Mean latency: its normal-theory lower confidence bound."""
    MAX = "max"
    """Maximum latency: one successful call slower than the limit (it only grows)."""
    PEAK_MEMORY = "peak_memory"
    """Peak RSS growth so far, from the memory sampler (it only grows)."""
    SPEND = "spend"
    """Tokens or dollars spent so far (they only grow): judged by the spend guard
    (``engine/spend.py``) as each call finishes, in every run, with or without ``abort_on``."""


@dataclass(frozen=True)
class BudgetSpec:
    """A budget kind, everything about it in one place.

    ``label`` and ``unit`` are how its value is shown; ``measure`` reads it from a result;
    ``minimum`` makes the limit a floor instead of a ceiling; ``percentile`` (for percentile
    budgets) asks for a small-sample warning; ``unknown_hint`` says what to change when the
    value is unknown (a callable builds it from the result); ``early`` is how ``abort_on``
    judges it before the run ends (None: only on the whole run); ``not_above`` names the
    budget whose limit this one's must not exceed (p50 <= p90), so contradicting limits are
    refused.
    """

    label: str
    unit: Unit
    measure: Measure
    minimum: bool = False
    percentile: float | None = None
    unknown_hint: str | Callable[[PerfResult], str] = ""
    early: Early | None = None
    not_above: str | None = None


def _stat(attr: str, name: str) -> Measure:
    def measure(r: PerfResult) -> tuple[float | None, int]:
        s: Stats = getattr(r, attr)
        return getattr(s, name), s.n

    return measure


def p95_drift(r: PerfResult) -> tuple[float | None, int]:
    """The last window's p95 over the first's (None with fewer than two windows with calls),
    and the number of such windows: the ``p95_drift`` budget and the table's drift column."""
    w = [x for x in r.windows if x.p95 is not None and x.calls > 0]
    if len(w) < 2 or not w[0].p95:
        return None, len(w)
    assert w[-1].p95 is not None
    return w[-1].p95 / w[0].p95, len(w)


_PRICE_HINT = (
    "add its price to the JSON file named by the ini option agentperf_prices "
    '(e.g. {"MODEL": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}})'
)
_UNNAMED_HINT = (
    "some calls reported tokens but no model name: set model= in the marker to the model "
    "whose price applies"
)
_DRIFT_HINT = (
    "the run had fewer than two time windows with calls; lengthen it (duration=) or set a "
    "shorter window="
)


def _cost_hint(r: PerfResult) -> str:
    """Which models lack a price (or a name), else how to add prices."""
    if not (r.usage.known and r.cost.unknown_models):
        return _PRICE_HINT
    named = [m for m in r.cost.unknown_models if m != UNNAMED_MODEL]
    hints = []
    if named:
        hints.append(f"no price for model {', '.join(named)}: {_PRICE_HINT}")
    if len(named) < len(r.cost.unknown_models):
        hints.append(_UNNAMED_HINT)
    return "; ".join(hints)


_SLOPE_HINT = "too few calls or memory samples for a leak slope; run more calls"
_USAGE_HINT = (
    "no call reported token usage; return the client's response, or call "
    "pytest_agentperf.record_usage() inside the agent"
)

_TOOL_HINT = (
    "no call recorded a tool call; call pytest_agentperf.usage.record_tool() around each tool "
    "(LangChain tools are recorded by the callback handler)"
)


def _percentile(series: str, label: str, q: int, **kw: Any) -> BudgetSpec:
    """The spec of the ``q``-th percentile of a duration series (latency, ttft, itl)."""
    return BudgetSpec(f"p{q} {label}", Unit.SECONDS, _stat(series, f"p{q}"), percentile=q, **kw)


_LATENCY = "latency"
_TTFT = "time to first chunk"

BUDGETS: Mapping[str, BudgetSpec] = {
    "p50": _percentile("latency", _LATENCY, 50, early=Early.PERCENTILE, not_above="p90"),
    "p90": _percentile("latency", _LATENCY, 90, early=Early.PERCENTILE, not_above="p95"),
    "p95": _percentile("latency", _LATENCY, 95, early=Early.PERCENTILE, not_above="p99"),
    "p99": _percentile("latency", _LATENCY, 99, early=Early.PERCENTILE, not_above="max_latency"),
    "max_latency": BudgetSpec(
        "max latency", Unit.SECONDS, _stat("latency", "max"), early=Early.MAX
    ),
    "mean_latency": BudgetSpec(
        "mean latency", Unit.SECONDS, _stat("latency", "mean"), early=Early.MEAN
    ),
    "ttft_p50": _percentile("ttft", _TTFT, 50, not_above="ttft_p95"),
    "ttft_p95": _percentile("ttft", _TTFT, 95, not_above="ttft_p99"),
    "ttft_p99": _percentile("ttft", _TTFT, 99),
    "itl_p95": _percentile("itl", "gap between chunks", 95),
    "error_rate": BudgetSpec(
        "error rate",
        Unit.FRACTION,
        lambda r: (r.error_rate if r.requests else None, r.requests),
        early=Early.ERRORS,
    ),
    "timeout_rate": BudgetSpec(
        "timeout rate",
        Unit.FRACTION,
        lambda r: (r.timeouts / r.requests if r.requests else None, r.requests),
        early=Early.TIMEOUTS,
        not_above="error_rate",
    ),
    "min_throughput": BudgetSpec(
        "throughput", Unit.PER_SECOND, lambda r: (r.throughput, r.requests), minimum=True
    ),
    "tokens_per_call": BudgetSpec(
        "tokens per call",
        Unit.COUNT,
        lambda r: (r.usage.per_call.total_tokens, r.requests),
        unknown_hint=_USAGE_HINT,
    ),
    "output_tokens_per_call": BudgetSpec(
        "output tokens per call",
        Unit.COUNT,
        lambda r: (r.usage.per_call.output_tokens, r.requests),
        unknown_hint=_USAGE_HINT,
        not_above="tokens_per_call",
    ),
    "max_llm_calls": BudgetSpec(
        "most LLM calls in one request",
        Unit.COUNT,
        lambda r: (r.llm_calls.max, r.llm_calls.n),
        unknown_hint=_USAGE_HINT,
    ),
    "max_tool_calls": BudgetSpec(
        "most tool calls in one request",
        Unit.COUNT,
        lambda r: (r.tool_calls.max, r.tool_calls.n),
        unknown_hint=_TOOL_HINT,
    ),
    "cost_per_call": BudgetSpec(
        "cost per call",
        Unit.USD,
        lambda r: (r.cost.per_call, r.requests),
        unknown_hint=_cost_hint,
        not_above="total_cost",
    ),
    "total_cost": BudgetSpec(
        "total cost",
        Unit.USD,
        lambda r: (r.cost.total, r.requests),
        unknown_hint=_cost_hint,
        early=Early.SPEND,
    ),
    "total_tokens": BudgetSpec(
        "total tokens",
        Unit.COUNT,
        lambda r: (r.usage.total_tokens if r.usage.known else None, r.requests),
        unknown_hint=_USAGE_HINT,
        early=Early.SPEND,
    ),
    "min_capacity": BudgetSpec(
        "capacity",
        Unit.PER_SECOND,
        lambda r: (
            (r.capacity.max_rate or 0.0) if r.capacity is not None else None,
            len(r.capacity.points) if r.capacity is not None else 0,
        ),
        minimum=True,
        unknown_hint="min_capacity is judged by agentperf.capacity() (a capacity search), "
        "not by run()",
    ),
    "memory": BudgetSpec(
        "peak RSS growth",
        Unit.MEGABYTES,
        lambda r: (r.memory.rss_delta_mb, r.memory.samples),
        early=Early.PEAK_MEMORY,
    ),
    "memory_per_1k_calls": BudgetSpec(
        "RSS growth per 1k calls",
        Unit.MEGABYTES,
        lambda r: (r.memory.per_1k_calls, r.requests),
        unknown_hint=_SLOPE_HINT,
    ),
    "p95_drift": BudgetSpec(
        "p95 drift (last window / first)", Unit.RATIO, p95_drift, unknown_hint=_DRIFT_HINT
    ),
}
"""Every budget a marker or ``run()`` accepts, by the key it is set with. Adding a budget is
one entry here: settings validate it, results are checked against it, ``abort_on`` judges it
when it has ``early``, and reports list it."""


def judged_early() -> tuple[str, ...]:
    """Names of the budgets ``abort_on`` can judge before a run ends, sorted."""
    return tuple(sorted(name for name, spec in BUDGETS.items() if spec.early is not None))


def _ceilings(name: str) -> Iterator[str]:
    """The budgets whose limits must be at least ``name``'s: its ``not_above`` chain."""
    seen = {name}
    above = BUDGETS[name].not_above
    while above is not None and above not in seen:  # a cycle would be a registry typo
        seen.add(above)
        yield above
        above = BUDGETS[above].not_above


def inverted(limits: Mapping[str, float]) -> tuple[str, str] | None:
    """The first pair (lower, higher) of ``limits`` set the wrong way round, e.g. a p50 limit
    above the p99 one; None when they agree."""
    for low in BUDGETS:
        if low not in limits:
            continue
        for high in _ceilings(low):
            if high in limits and limits[low] > limits[high]:
                return low, high
    return None


def _unknown_message(spec: BudgetSpec, limit: float, r: PerfResult) -> str:
    lim = format_value(limit, spec.unit)
    hint = spec.unknown_hint(r) if callable(spec.unknown_hint) else spec.unknown_hint
    if hint:
        return f"{spec.label} unknown (budget {lim}): {hint}"
    return f"{spec.label} unknown (budget {lim}): no measurement (n={r.requests})"


def _relation(passed: bool, *, minimum: bool) -> str:
    """How the measured value stands to the limit, as the message shows it: a passing maximum
    reads "<=", a broken one ">"; a passing minimum (throughput) ">=", a broken one "<"."""
    if minimum:
        return ">=" if passed else "<"
    return "<=" if passed else ">"


def evaluate(budgets: Mapping[str, float], result: PerfResult) -> tuple[BudgetCheck, ...]:
    """Check every budget against ``result``; an unknown measurement breaks its budget.

    After an abort, only the budgets ``abort_on`` can judge early are judged on the partial
    run; the others need the whole run and are "not evaluated" (neither passed nor broken: the
    run already failed as ABORTED).
    """
    checks = []
    for name, limit in budgets.items():
        spec = BUDGETS[name]
        if result.aborted and spec.early is None:
            message = (
                f"{spec.label} not evaluated: run aborted (budget {format_value(limit, spec.unit)})"
            )
            checks.append(BudgetCheck(name, limit, None, True, 0, message, evaluated=False))
            continue
        value, n = spec.measure(result)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            checks.append(
                BudgetCheck(name, limit, None, False, n, _unknown_message(spec, limit, result))
            )
            continue
        passed = value >= limit if spec.minimum else value <= limit
        op = _relation(passed, minimum=spec.minimum)
        text = (
            f"{spec.label} {format_value(value, spec.unit)} {op} budget "
            f"{format_value(limit, spec.unit)} (n={n})"
        )
        checks.append(BudgetCheck(name, limit, float(value), passed, n, text))
    return tuple(checks)


def sample_floor(budgets: Mapping[str, float]) -> int:
    """Calls the percentile budgets of ``budgets`` need for 95 % confidence (59 for a p95,
    299 for a p99); 0 without one."""
    floors = [
        min_samples_for(BUDGETS[name].percentile or 0.0)
        for name in budgets
        if (BUDGETS[name].percentile or 0.0) > 50
    ]
    return max(floors, default=0)


def _more_samples(result: PerfResult) -> str:
    """What to raise for more samples, in the run's mode."""
    shape = result.shape
    if shape.duration is not None:
        more = "rate=" if shape.rate is not None else "concurrency="
        return f"Raise duration= (or {more}) to trust it."
    return "Raise requests= to trust it."


def all_failed(result: PerfResult) -> bool:
    """Every measured call failed and no ``error_rate`` budget says that may be so: the run
    measured nothing, and fails (status ERROR) unless ``check=False``."""
    return (
        result.requests > 0
        and result.errors == result.requests
        and not any(b.name == "error_rate" for b in result.budgets)
    )


def small_sample_warnings(budgets: Mapping[str, float], result: PerfResult) -> list[str]:
    """Warnings for percentile budgets checked on fewer samples than they need."""
    out = []
    for name in budgets:
        spec = BUDGETS[name]
        if spec.percentile is None or spec.percentile <= 50:
            continue
        _, n = spec.measure(result)
        need = min_samples_for(spec.percentile)
        if 0 < n < need:
            out.append(
                f"{name} budget checked on {n} samples; a p{spec.percentile:g} needs at least "
                f"{need} for 95% confidence. {_more_samples(result)}"
            )
    return out


def raise_if_broken(result: PerfResult) -> None:
    """Raise BudgetExceeded listing every broken budget of ``result``."""
    __tracebackhide__ = True
    broken = tuple(b.message for b in result.budgets if not b.passed)
    broken += tuple(b.message for s in result.stages for b in s.budgets if not b.passed)
    if not broken and not result.aborted and all_failed(result):
        first = result.error_messages[0] if result.error_messages else "(no message)"
        message = (
            f"every measured call of run {result.name!r} failed ({result.errors} of "
            f"{result.requests}), so nothing was measured; first error: {first}. Set an "
            "error_rate budget (e.g. error_rate='100%') or pass check=False if that is expected"
        )
        raise BudgetExceeded(message, (message,))
    if broken or result.aborted:
        n = len(broken)
        if n:
            head = f"{n} budget{'s' if n > 1 else ''} exceeded in run {result.name!r}"
        else:
            head = f"run {result.name!r} stopped early"
        if result.aborted:
            broken = (result.aborted, *broken)
        raise BudgetExceeded(head + ":\n  " + "\n  ".join(broken), broken)
