"""Capacity search: the highest open-loop arrival rate at which an SLO still holds.

The rate steps up geometrically from ``start`` (times ``factor``) until a step fails or
``limit`` is reached, then bisects (geometric midpoints) between the last rate that held and
the first that failed, until the two are within ``resolution`` of each other.

Each step makes enough calls for the SLO's percentile (the sample-size rule of the small-sample
warnings: 59 for a p95) and lasts at least ``step`` seconds, and is judged with confidence:

- it **fails** when a budget is broken beyond doubt: for a percentile, more calls above the
  limit than chance allows (the order-statistic rule of ``abort_on``); for an error or timeout
  rate, the Wilson lower bound is above the limit; for the mean, the normal lower bound; for
  ``max_latency``, any slower call;
- it **holds** when every budget holds beyond doubt: so few calls above the limit that
  P(Binomial(n, 1 - q) <= k) <= 1 - confidence, a Wilson upper bound below the limit, ...;
- otherwise it is measured again at the same rate and judged on the calls of all its
  measurements together, up to ``repeats`` more times; after that the point estimate decides
  (the step is marked undecided).

Budgets with no interval here (throughput, tokens, cost) are judged on the point estimate. A
step also stops early (``abort_on``) once a budget is broken beyond doubt, so a step far past
capacity, or one whose error rate alone is beyond doubt, costs little. The search stops at the
resolution, at ``limit``, at the time budget, or when the start rate already fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from .budgets import BUDGETS, Early, evaluate, sample_floor
from .errors import SettingsError
from .observers.abort import binom_sf, exceedances_needed, wilson_lower
from .results import Capacity, CapacityPoint, CapacitySearchOptions, PerfResult
from .settings import MAX_RATE, MIN_RATE
from .units import Unit, format_value, parse

SEARCH_KEYS = ("factor", "resolution", "step", "duration", "repeats")
"""Keywords of ``agentperf.capacity`` that shape the search itself (``duration``: its time
budget), not each step's load."""
CONFIDENCE = 0.95
"""Confidence of each step's verdict."""
MIN_STEP_CALLS = 20
"""Fewest calls of a step, whatever the SLO."""


@dataclass(frozen=True)
class SearchOptions:
    """A capacity search's own options, validated."""

    slo: Mapping[str, float]
    start: float
    limit: float
    factor: float = 2.0
    resolution: float = 0.1
    step: float = 1.0
    """Shortest step, in seconds."""
    budget: float | None = None
    """Time budget of the whole search, seconds of measured calls (``duration=``)."""
    repeats: int = 2
    confidence: float = CONFIDENCE
    spend: Mapping[str, float] = field(default_factory=dict)
    """``total_cost`` / ``total_tokens`` of the marker or the call: caps on the whole search's
    spend, enforced by the spend guard within each step."""

    def searched(self) -> CapacitySearchOptions:
        """The options that change what the search finds, as the result keeps them."""
        return CapacitySearchOptions(
            start=self.start,
            limit=self.limit,
            factor=self.factor,
            resolution=self.resolution,
            step=self.step,
            repeats=self.repeats,
            time_budget=self.budget,
        )

    def calls_at(self, rate: float) -> int:
        """Calls of a step at ``rate``: the SLO's sample-size floor, at least ``step``
        seconds of arrivals, at least ``MIN_STEP_CALLS``."""
        return max(MIN_STEP_CALLS, sample_floor(self.slo), math.ceil(rate * self.step))


def search_options(
    slo: Any,
    start: Any,
    limit: Any,
    *,
    factor: Any = 2.0,
    resolution: Any = 0.1,
    step: Any = "1s",
    duration: Any = None,
    repeats: Any = 2,
) -> SearchOptions:
    """Validate the options of ``agentperf.capacity``; raises ``SettingsError`` naming the
    option and what to change."""
    if not isinstance(slo, Mapping) or not slo:
        raise SettingsError(
            'slo: expected a non-empty dict of budgets, e.g. slo={"p95": "2s", "error_rate": "1%"}',
            key="slo",
        )
    limits: dict[str, float] = {}
    for key, value in slo.items():
        if key not in BUDGETS or key == "min_capacity":
            raise SettingsError(
                f"slo: {key!r} is not a budget key; use budgets such as p95, error_rate, "
                "mean_latency",
                key="slo",
            )
        limits[key] = parse(value, BUDGETS[key].unit, key=f"slo[{key!r}]")
    low = _rate(start, "start")
    high = _rate(limit, "limit")
    if high < low:
        raise SettingsError(
            f"limit={limit!r} is below start={start!r}; the search goes up from start to limit",
            key="limit",
        )
    if high == low:
        raise SettingsError(
            f"limit={limit!r} equals start={start!r}: the search needs increasing bounds; "
            "raise limit",
            key="limit",
        )
    f = _number(factor, "factor")
    if not f > 1:
        raise SettingsError(f"factor={factor!r}: must be above 1 (steps must go up)", key="factor")
    res = _number(resolution, "resolution")
    if not res > 0:
        raise SettingsError(f"resolution={resolution!r}: must be above 0", key="resolution")
    seconds = parse(step, Unit.SECONDS, key="step")
    if not seconds > 0:
        raise SettingsError(f"step={step!r}: must be greater than zero", key="step")
    budget = None
    if duration is not None:
        budget = parse(duration, Unit.SECONDS, key="duration")
        if not budget > 0:
            raise SettingsError(
                f"duration={duration!r}: the search's time budget must be greater than zero",
                key="duration",
            )
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0:
        raise SettingsError(f"repeats={repeats!r}: expected a whole number >= 0", key="repeats")
    return SearchOptions(limits, low, high, f, res, seconds, budget, repeats)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{key}={value!r}: expected a number", key=key)
    return float(value)


def _rate(value: Any, key: str) -> float:
    rate = parse(value, Unit.PER_SECOND, key=key)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise SettingsError(
            f"{key}={value!r}: must be a rate between {MIN_RATE:g}/s and {MAX_RATE:g}/s", key=key
        )
    return rate


# --------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Verdict:
    """A step's verdict: held (True), failed (False) or undecided (None), and why."""

    held: bool | None
    why: str


def _wilson_upper(bad: int, n: int, confidence: float) -> float:
    return 1.0 - wilson_lower(n - bad, n, confidence)


def judge_budget(
    name: str, limit: float, results: list[PerfResult], confidence: float = CONFIDENCE
) -> Verdict:
    """Budget ``name`` on the calls of ``results`` (measurements at one rate, pooled)."""
    spec = BUDGETS[name]
    lim = format_value(limit, spec.unit)
    n = sum(r.requests for r in results)
    if spec.early in (Early.ERRORS, Early.TIMEOUTS):
        bad = sum(r.errors if spec.early is Early.ERRORS else r.timeouts for r in results)
        if wilson_lower(bad, n, confidence) > limit:
            return Verdict(False, f"{spec.label} {bad}/{n} > budget {lim} beyond doubt")
        if n and _wilson_upper(bad, n, confidence) <= limit:
            return Verdict(True, "")
        return Verdict(None, f"{spec.label} {bad}/{n} within doubt of {lim}")
    latency = np.concatenate([r.latency.samples for r in results]) if results else np.zeros(0)
    m = int(latency.size)
    if spec.early is Early.MAX:
        if m and float(latency.max()) > limit:
            return Verdict(False, f"{spec.label} > budget {lim}")
        return Verdict(True, "")
    if spec.early is Early.MEAN and m >= 2:
        mean = float(latency.mean())
        spread = NormalDist().inv_cdf(confidence) * float(latency.std(ddof=1)) / math.sqrt(m)
        if mean - spread > limit:
            return Verdict(False, f"{spec.label} {format_value(mean, spec.unit)} > budget {lim}")
        if mean + spread <= limit:
            return Verdict(True, "")
        return Verdict(None, f"{spec.label} within doubt of {lim}")
    if spec.early is Early.PERCENTILE and spec.percentile is not None:
        q = float(spec.percentile)
        above = int(np.count_nonzero(latency > limit))
        value = format_value(float(np.percentile(latency, q)), spec.unit) if m else "-"
        need = exceedances_needed(m, q, confidence) if m else None
        if need is not None and above >= need:
            return Verdict(False, f"{spec.label} {value} > budget {lim} ({above} of {m} above)")
        # held beyond doubt: this few calls above the limit are unlikely were the percentile
        # above it, P(Binomial(m, 1 - q) <= above) <= 1 - confidence
        if m and 1.0 - binom_sf(above + 1, m, 1.0 - q / 100.0) <= 1.0 - confidence:
            return Verdict(True, "")
        return Verdict(None, f"{spec.label} {value} within doubt of {lim} ({above} of {m} above)")
    # no interval: the point estimate of the last measurement
    check = evaluate({name: limit}, results[-1])[0]
    return Verdict(check.passed, "" if check.passed else check.message)


def judge_step(
    slo: Mapping[str, float], results: list[PerfResult], confidence: float = CONFIDENCE
) -> Verdict:
    """Every SLO budget on one rate's measurements: failed if any failed, held if all held,
    else undecided. An aborted measurement failed (its abort was a budget beyond doubt)."""
    aborted = [r.aborted for r in results if r.aborted]
    if aborted:
        return Verdict(False, aborted[-1])
    verdicts = [judge_budget(name, limit, results, confidence) for name, limit in slo.items()]
    failed = [v.why for v in verdicts if v.held is False]
    if failed:
        return Verdict(False, "; ".join(failed))
    open_ = [v.why for v in verdicts if v.held is None]
    if open_:
        return Verdict(None, "; ".join(open_))
    return Verdict(True, "")


def point_estimate(slo: Mapping[str, float], results: list[PerfResult]) -> Verdict:
    """The SLO on the pooled point estimates, for a step still undecided after its repeats."""
    pooled = results[-1]
    latency = np.concatenate([r.latency.samples for r in results])
    failed = []
    for name, limit in slo.items():
        spec = BUDGETS[name]
        if spec.early is Early.PERCENTILE and spec.percentile is not None and latency.size:
            value: float | None = float(np.percentile(latency, spec.percentile))
        elif spec.early is Early.ERRORS:
            n = sum(r.requests for r in results)
            value = sum(r.errors for r in results) / n if n else None
        else:
            value = evaluate({name: limit}, pooled)[0].value
        if value is None or value > limit:
            failed.append(
                f"{spec.label} {'-' if value is None else format_value(value, spec.unit)}"
            )
    if failed:
        return Verdict(False, "point estimate: " + "; ".join(failed))
    return Verdict(True, "point estimate")


# ----------------------------------------------------------------------------------- search

_NOT_PER_STEP = ("stages", "stage_budgets", "duration", "requests", "rate", "abort_on")
"""Settings a capacity search sets itself for each step."""


def step_layer(
    layers: list[Mapping[str, Any]],
    rate: float,
    calls: int,
    slo: Mapping[str, float],
    spend: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The settings of one step: the marker's and the call's load settings (timeout, warmup,
    arrival, concurrency cap, seed, model...), without their budgets, at ``rate`` for
    ``calls`` calls, judged on the SLO and stopped early when it is broken beyond doubt."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    out = {k: v for k, v in merged.items() if k not in BUDGETS and k not in _NOT_PER_STEP}
    out.update(slo)
    out.update(spend or {})
    out["rate"] = rate
    out["requests"] = calls
    early = [name for name in slo if BUDGETS[name].early not in (None, Early.SPEND)]
    if early:
        out["abort_on"] = early
    return out


@dataclass
class Step:
    """One rate of the search and its measurements."""

    rate: float
    results: list[PerfResult] = field(default_factory=list)
    verdict: Verdict | None = None


class CapacitySearch:
    """The search as a state machine, so sync and async callers drive the same logic:
    ``while (rate := s.next_rate()) is not None: s.add(measure(rate, s.calls_at(rate)))``."""

    def __init__(self, options: SearchOptions) -> None:
        self.options = options
        self.steps: list[Step] = []
        self.good: float | None = None
        self.bad: float | None = None
        self.spent = 0.0
        self.spent_cost = 0.0
        self.spent_tokens = 0
        self.stopped = ""
        self._current: Step | None = None

    def calls_at(self, rate: float) -> int:
        return self.options.calls_at(rate)

    def next_rate(self) -> float | None:
        """The rate to measure next (the same one again while a step is undecided), or None
        when the search is over (``stopped`` says why)."""
        o = self.options
        step = self._current
        if step is not None and step.verdict is not None and step.verdict.held is None:
            if len(step.results) <= o.repeats and not self._over_budget(step.rate):
                return step.rate
            step.verdict = point_estimate(o.slo, step.results)
            self._settle(step)
        if self.stopped:
            return None
        left = self.step_spend()
        if left and min(left.values()) <= 0:
            self.stopped = "spend budget used up"
            return None
        if self.good is None and self.bad is None:
            rate = o.start
        elif self.bad is None:
            assert self.good is not None
            if self.good >= o.limit:
                self.stopped = "limit"
                return None
            rate = min(self.good * o.factor, o.limit)
        elif self.good is None:
            self.stopped = "start rate failed"
            return None
        else:
            if self.bad / self.good <= 1 + o.resolution:
                self.stopped = "resolution"
                return None
            rate = math.sqrt(self.good * self.bad)
        if self._over_budget(rate):
            self.stopped = "time budget"
            return None
        self._current = Step(rate)
        self.steps.append(self._current)
        return rate

    def _over_budget(self, rate: float) -> bool:
        budget = self.options.budget
        return budget is not None and self.spent + self.calls_at(rate) / rate > budget

    def step_spend(self) -> dict[str, float]:
        """What the next step may still spend: each spend cap less what the steps so far
        spent (the spend guard stops the step when it crosses it)."""
        left = {}
        for name, limit in self.options.spend.items():
            used = self.spent_cost if name == "total_cost" else float(self.spent_tokens)
            left[name] = max(0.0, limit - used)
        return left

    def add(self, result: PerfResult) -> None:
        """The measurement of the current rate."""
        step = self._current
        assert step is not None
        self.spent += result.duration
        self.spent_cost += result.cost.total or 0.0
        self.spent_tokens += result.usage.total_tokens or 0
        step.results.append(result)
        if result.aborted and "spend guard" in result.aborted:
            # not the SLO's verdict (the step neither held nor failed): the money ran out
            step.verdict = Verdict(None, result.aborted)
            self._current = None
            self.stopped = result.aborted.removeprefix("aborted: ")
            return
        step.verdict = judge_step(self.options.slo, step.results, self.options.confidence)
        if step.verdict.held is not None:
            self._settle(step)

    def _settle(self, step: Step) -> None:
        assert step.verdict is not None
        if step.verdict.held:
            self.good = step.rate if self.good is None else max(self.good, step.rate)
        else:
            self.bad = step.rate if self.bad is None else min(self.bad, step.rate)

    def capacity(self) -> Capacity:
        """What the search found, for the record and every report."""
        points = tuple(_point(s) for s in self.steps if s.results)
        return Capacity(
            slo=dict(self.options.slo),
            max_rate=self.good,
            first_failing=self.bad,
            points=points,
            stopped=self.stopped,
            search=self.options.searched(),
        )


def _point(step: Step) -> CapacityPoint:
    last = step.results[-1]
    verdict = step.verdict or Verdict(None, "")
    return CapacityPoint(
        rate=step.rate,
        throughput=last.throughput,
        p50=last.latency.p50,
        p95=last.latency.p95,
        p99=last.latency.p99,
        requests=sum(r.requests for r in step.results),
        errors=sum(r.errors for r in step.results),
        held=bool(verdict.held),
        decided=not verdict.why.startswith("point estimate"),
        measurements=len(step.results),
        why=verdict.why,
    )


@dataclass(frozen=True)
class CapacityStep:
    """One rate of a capacity search: its last measurement and whether the SLO held."""

    rate: float
    result: PerfResult
    held: bool
    decided: bool = True
    measurements: int = 1


@dataclass(frozen=True)
class CapacityResult:
    """What ``agentperf.capacity`` returns."""

    max_rate: float | None
    """Highest rate (per second) at which the SLO held; None when even ``start`` failed."""
    first_failing: float | None
    """Lowest rate that failed above ``max_rate`` (None: none did up to the limit)."""
    steps: tuple[CapacityStep, ...]
    summary: Capacity
    result: PerfResult
    """The recorded result: the step at ``max_rate`` (or the first step) with ``summary``."""

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """Where the capacity lies: between ``max_rate`` and ``first_failing``."""
        return self.max_rate, self.first_failing

    @property
    def curve(self) -> tuple[CapacityPoint, ...]:
        """Latency (p50/p95/p99) and throughput per offered rate, sorted by rate."""
        return self.summary.curve

    @property
    def knee(self) -> float | None:
        """The rate past which the SLO breaks: ``max_rate``."""
        return self.max_rate


def outcome(search: CapacitySearch, name: str, budgets: Mapping[str, float]) -> CapacityResult:
    """The search's ``CapacityResult``; its recorded result is the step at the found capacity
    (else the first step), named ``name``, with the summary attached and judged against
    ``budgets`` (the SLO and ``min_capacity``)."""
    summary = search.capacity()
    steps = tuple(
        CapacityStep(
            s.rate,
            s.results[-1],
            bool(s.verdict and s.verdict.held),
            p.decided,
            len(s.results),
        )
        for s, p in zip([s for s in search.steps if s.results], summary.points, strict=True)
    )
    if not steps:
        raise SettingsError(
            "capacity: the time budget (duration=) is too short for even the first step; "
            "raise duration= or start=",
            key="duration",
        )
    best = next((s for s in steps if s.held and s.rate == summary.max_rate), steps[0])
    result = replace(best.result, name=name, capacity=summary)
    if search.stopped.startswith("spend guard"):  # the test fails with what was spent
        result = replace(
            result, aborted=f"aborted: capacity search stopped by the {search.stopped}"
        )
    result = replace(result, budgets=evaluate(budgets, result))
    return CapacityResult(summary.max_rate, summary.first_failing, steps, summary, result)
