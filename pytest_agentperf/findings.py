"""Findings: rules over the run records that say what to do, each with the evidence it used.

A rule is one function, registered once with ``@run_rule(ID)`` (it reads one run's record and
returns a ``Finding`` or None) or ``@session_rule(ID)`` (it reads every record of the session and
returns findings by record index): adding a rule is adding one function here. Per-run rules run
when a run's record is made (``run_findings``), cross-run rules on the controller at the end of
the session (``session_findings``), before the reports are written. Every threshold is a module
constant below; docs/reports.md ("Findings") explains each rule. No pytest here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np

from .observers.looplag import LATE_TICK
from .record import Finding, RunRecord, Severity
from .results import LoadGenerator, PerfResult

# ------------------------------------------------------------------------------ thresholds

MIN_ERRORS = 5
"""Errors a run needs before its error types are judged."""
DOMINANT_ERROR_SHARE = 0.5
"""``rate-limited`` / ``dominant-error``: one error type is at least this share of the errors."""
RATE_LIMIT_NAMES = re.compile(
    r"rate.?limit|too.?many.?requests|throttl|429|quota|resource.?exhausted", re.IGNORECASE
)
"""Error type names that mean a rate limit (``RateLimitError``, ``TooManyRequests``, HTTP 429,
``ThrottlingException``, ``ResourceExhausted``)."""
TAIL_RATIO = 3.0
"""``long-tail``: latency p99 / p50 at or above this."""
TAIL_MIN_CALLS = 100
"""``long-tail``: successful calls needed for a p99 worth judging."""
TAIL_SLOWEST = 5
"""``long-tail``: the slowest calls named in the evidence (when the run kept its call table)."""
TTFT_SHARE = 0.5
"""``ttft-dominates``: TTFT p50 / latency p50 at or above this (the first token is most of the
wait)."""
TTFT_MIN_CALLS = 10
"""``ttft-dominates``: streamed calls needed."""
SWEEP_MIN_RUNS = 3
"""``throughput-saturated``: runs of different concurrency needed to call a sweep."""
SWEEP_MIN_GAIN = 0.1
"""``throughput-saturated``: a higher concurrency that adds less than this share of throughput
(10 %) did not help."""
CHEAPER_MIN_SAVING = 0.2
"""``cheaper-model``: a what-if model must cost at least this share (20 %) less per call."""
AB_MIN_SAVING = 0.1
"""A/B: an arm that costs at least this share less per call than the reference (beyond
doubt) and is as fast is worth a finding."""
AB_AS_FAST = 1.10
"""A/B: "as fast" is no latency verdict "worse" and a p50 ratio whose upper bound is at most
this (at most 10 % slower, beyond doubt)."""
CACHE_MIN_INPUT = 1024.0
"""``no-prompt-cache``: mean input tokens per call at or above this (providers cache prefixes
from 1024 tokens)."""
CACHE_MAX_SPREAD = 0.25
"""``no-prompt-cache``: input tokens per call vary by at most this (coefficient of variation; or
p95 / mean - 1 of the tokens per call when the run kept no call table)."""
CACHE_MIN_CALLS = 10
"""``no-prompt-cache``: calls with usage needed."""
LEAK_MB_PER_1K = 1.0
"""``memory-growth``: RSS slope at or above this many MB per 1,000 calls."""
LEAK_MIN_CALLS = 100
"""``memory-growth``: calls needed for a slope worth judging."""
LEAK_MIN_MB = 2.0
"""``memory-growth``: the growth the slope implies over the run (MB per call times the calls)
must reach this: below it, the slope of a short run is allocator and page noise (a client's
first connections, arenas), not memory kept per call."""
GENERATOR_CPU = 0.9
"""``generator-saturated``: the test process used at least this share of one core during an
async run (its event loop is one thread: one core is its ceiling)."""
GENERATOR_LAG = LATE_TICK
"""``generator-saturated``: a lag tick this many seconds late (10 ms) counts as late."""
GENERATOR_LATE_TICKS = 3
GENERATOR_LATE_SHARE = 0.01
"""``generator-saturated``: late ticks needed, at least this many and this share of the ticks:
one stall (a garbage collection of a large heap) is not a loop kept busy..."""
GENERATOR_OTHERS = 0.2
"""``generator-saturated``: other processes (plus steal) used at least this share of the whole
machine's CPU: the finding says part of the lag is theirs (the baseline gate's busy margin)."""
GENERATOR_LATE_TIME = 0.1
"""... unless the loop was late for this share of the run or more, summed over its late ticks:
a loop blocked for most of the run fires few ticks, each very late."""
LATE_SHARE = 0.5
"""``late-starts``: more than this share of an open-loop run's calls started late."""

# ------------------------------------------------------------------------------ registry

RunRule = Callable[[RunRecord], Finding | None]
SessionRule = Callable[[Sequence[RunRecord]], Mapping[int, Finding]]

RUN_RULES: dict[str, RunRule] = {}
"""Per-run rules by id, in the order their findings are listed."""
SESSION_RULES: dict[str, SessionRule] = {}
"""Cross-run rules by id: they read every record of the session."""
WARNING_RULES = frozenset({"generator-saturated"})
"""Rules whose finding is also a warning on the run (``RunRecord.warnings``)."""


def run_rule(rule_id: str) -> Callable[[RunRule], RunRule]:
    """Register a per-run rule under ``rule_id``."""

    def register(fn: RunRule) -> RunRule:
        RUN_RULES[rule_id] = fn
        return fn

    return register


def session_rule(rule_id: str) -> Callable[[SessionRule], SessionRule]:
    """Register a cross-run rule under ``rule_id``."""

    def register(fn: SessionRule) -> SessionRule:
        SESSION_RULES[rule_id] = fn
        return fn

    return register


def run_findings(record: RunRecord) -> tuple[Finding, ...]:
    """The findings of every per-run rule about ``record``."""
    found = (rule(record) for rule in RUN_RULES.values())
    return tuple(f for f in found if f is not None)


def session_findings(records: Sequence[RunRecord]) -> list[RunRecord]:
    """``records`` with the findings of the cross-run rules added (records are frozen: the ones
    a rule speaks of are replaced); a finding a record already holds is not added twice."""
    out = list(records)
    for rule in SESSION_RULES.values():
        for index, finding in rule(out).items():
            record = out[index]
            if finding not in record.findings:
                out[index] = replace(record, findings=(*record.findings, finding))
    return out


def warnings_of(findings: Sequence[Finding]) -> tuple[str, ...]:
    """The warnings the findings of ``WARNING_RULES`` put on their run."""
    return tuple(f"{f.message}; {f.advice}" for f in findings if f.rule in WARNING_RULES)


def _round(value: float) -> float:
    """``value`` to 4 significant digits, for evidence a person reads."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, 3 - math.floor(math.log10(abs(value))))


def _finding(
    rule_id: str,
    message: str,
    advice: str,
    severity: Severity = Severity.INFO,
    **evidence: Any,
) -> Finding:
    values = {k: _round(v) if isinstance(v, float) else v for k, v in evidence.items()}
    return Finding(rule_id, message, MappingProxyType(values), advice, severity)


def _pct(share: float) -> str:
    return f"{share:.0%}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


# ------------------------------------------------------------------------------ errors


def _top_error(result: PerfResult) -> tuple[str, int, float] | None:
    """The most frequent error type, its count and its share of the errors, when the run had
    ``MIN_ERRORS`` errors and that type is ``DOMINANT_ERROR_SHARE`` of them."""
    failed = sum(result.error_types.values())
    if failed < MIN_ERRORS:
        return None
    name, count = max(result.error_types.items(), key=lambda kv: kv[1])
    share = count / failed
    return (name, count, share) if share >= DOMINANT_ERROR_SHARE else None


def is_rate_limit(error_type: str) -> bool:
    """Whether an error type's name says rate limit (``RATE_LIMIT_NAMES``)."""
    return RATE_LIMIT_NAMES.search(error_type) is not None


@run_rule("rate-limited")
def rate_limited(record: RunRecord) -> Finding | None:
    top = _top_error(record.result)
    if top is None or not is_rate_limit(top[0]):
        return None
    name, count, share = top
    return _finding(
        "rate-limited",
        f"{_pct(share)} of the errors are {name} ({count} of {record.result.errors} calls "
        "failed): the provider's rate limit, not the agent, failed them",
        "lower concurrency= or rate=, retry with exponential backoff and jitter, or raise the "
        "quota (tokens and requests per minute)",
        Severity.WARNING,
        error_type=name,
        count=count,
        share=share,
        errors=record.result.errors,
    )


@run_rule("dominant-error")
def dominant_error(record: RunRecord) -> Finding | None:
    top = _top_error(record.result)
    if top is None or is_rate_limit(top[0]):
        return None
    name, count, share = top
    if name == "Timeout":
        advice = (
            "the calls hit timeout=: raise it if the agent is only slow, else find where "
            "they hang (a tool, a stream never closed)"
        )
    else:
        advice = (
            f"fix the cause of {name} first (the first error message is above): the other "
            "figures are of the calls that did not fail"
        )
    return _finding(
        "dominant-error",
        f"{_pct(share)} of the errors are {name} ({count} of {record.result.errors})",
        advice,
        Severity.WARNING,
        error_type=name,
        count=count,
        share=share,
        errors=record.result.errors,
    )


# ------------------------------------------------------------------------------ latency


def _slowest(result: PerfResult) -> list[list[float]]:
    """[row, latency] of the slowest successful calls, from the call table when kept."""
    calls = result.calls
    if calls is None or len(calls) == 0:
        return []
    latency = np.where(calls.status == 0, calls.end - calls.start, -np.inf)
    rows = np.argsort(latency)[::-1][:TAIL_SLOWEST]
    return [[int(r), _round(float(latency[r]))] for r in rows if np.isfinite(latency[r])]


@run_rule("long-tail")
def long_tail(record: RunRecord) -> Finding | None:
    lat = record.result.latency
    if lat.n < TAIL_MIN_CALLS or not lat.p50 or lat.p99 is None:
        return None
    ratio = lat.p99 / lat.p50
    if ratio < TAIL_RATIO:
        return None
    evidence: dict[str, Any] = {"p50": lat.p50, "p99": lat.p99, "ratio": ratio, "n": lat.n}
    slowest = _slowest(record.result)
    if slowest:
        evidence["slowest"] = slowest  # [call row, latency s]: rows of --agentperf-log
    return _finding(
        "long-tail",
        f"the tail is long: p99 {_ms(lat.p99)} is {ratio:.3g}x p50 {_ms(lat.p50)}",
        "look at the slowest calls (their rows in --agentperf-log) for retries, cold caches or "
        "a slow tool; a timeout with a retry (or a hedged request) cuts the tail; budget p99",
        **evidence,
    )


@run_rule("ttft-dominates")
def ttft_dominates(record: RunRecord) -> Finding | None:
    result = record.result
    ttft, lat = result.ttft, result.latency
    if ttft.n < TTFT_MIN_CALLS or ttft.p50 is None or not lat.p50:
        return None
    share = ttft.p50 / lat.p50
    if share < TTFT_SHARE:
        return None
    return _finding(
        "ttft-dominates",
        f"time to first token is {_pct(min(share, 1.0))} of the latency (p50 "
        f"{_ms(ttft.p50)} of {_ms(lat.p50)})",
        "stream the answer to the user (the first token is what they wait for); shorten the "
        "prompt or cache its prefix (prefill grows with input tokens); a smaller model starts "
        "sooner",
        ttft_p50=ttft.p50,
        latency_p50=lat.p50,
        share=share,
        n=ttft.n,
    )


# ------------------------------------------------------------------------------ tokens and cost


@run_rule("cheaper-model")
def cheaper_model(record: RunRecord) -> Finding | None:
    projection = record.cost_projection
    now = record.result.cost.per_call
    if projection is None or not now:
        return None
    priced = [(cost, m) for m, cost in projection.whatif.items() if cost is not None]
    if not priced:
        return None
    cost, model = min(priced)
    saving = 1.0 - cost / now
    if saving < CHEAPER_MIN_SAVING:
        return None
    evidence: dict[str, Any] = {"model": model, "now_per_call": now, "then_per_call": cost}
    evidence["saving"] = saving
    monthly = ""
    if projection.monthly_calls:
        saved = (now - cost) * projection.monthly_calls
        evidence["monthly_calls"] = projection.monthly_calls
        evidence["monthly_saving"] = saved
        monthly = f", ${saved:,.2f} a month at {projection.monthly_calls:,} calls"
    return _finding(
        "cheaper-model",
        f"the same tokens on {model} would cost {_pct(saving)} less{monthly}",
        f"try {model} on this test: if its answers pass your quality checks, switch",
        **evidence,
    )


@run_rule("cheaper-arm")
def cheaper_arm(record: RunRecord) -> Finding | None:
    """An A/B arm (``agentperf.compare``) that costs less per call than the reference arm,
    beyond doubt, and is as fast: the saving per month at ``agentperf_monthly_calls``."""
    arm = record.arm
    if arm is None or arm.is_reference:
        return None
    cost, p50, p95 = (arm.ratio(m) for m in ("cost_per_call", "p50", "p95"))
    now = record.result.cost.per_call
    if cost is None or cost.estimate is None or cost.high is None or not now:
        return None
    if cost.estimate <= 0 or cost.high >= 1.0 - AB_MIN_SAVING:
        return None
    if p50 is None or p50.high is None or p50.high > AB_AS_FAST:
        return None
    if any(r is None or r.verdict == "worse" for r in (p50, p95)):
        return None
    assert p95 is not None
    saving = 1.0 - cost.estimate
    reference_per_call = now / cost.estimate
    evidence: dict[str, Any] = {
        "arm": arm.arm,
        "reference": arm.reference,
        "p50_ratio": p50.estimate,
        "p95_ratio": p95.estimate,
        "cost_ratio": cost.estimate,
        "cost_ratio_high": cost.high,
        "saving": saving,
    }
    monthly = ""
    projection = record.cost_projection
    if projection is not None and projection.monthly_calls:
        saved = (reference_per_call - now) * projection.monthly_calls
        evidence["monthly_calls"] = projection.monthly_calls
        evidence["monthly_saving"] = saved
        monthly = f", ${saved:,.2f} a month at {projection.monthly_calls:,} calls"
    return _finding(
        "cheaper-arm",
        f"arm {arm.arm!r} is as fast as {arm.reference!r} (p50 {p50.short}, p95 {p95.short}) "
        f"and costs {_pct(saving)} less per call{monthly}",
        f"if the answers of {arm.arm!r} pass your quality checks, switch to it",
        **evidence,
    )


def _input_spread(result: PerfResult) -> tuple[float, float, str] | None:
    """(mean input tokens per call, their spread, how the spread was measured)."""
    calls = result.calls
    if calls is not None and len(calls):
        tokens = calls.input_tokens[calls.input_tokens >= 0].astype(np.float64)
        if tokens.size < CACHE_MIN_CALLS or not tokens.mean():
            return None
        return float(tokens.mean()), float(tokens.std() / tokens.mean()), "cv"
    mean, per = result.usage.per_call.input_tokens, result.tokens
    if mean is None or per.mean is None or per.p95 is None or not per.mean:
        return None
    return mean, per.p95 / per.mean - 1.0, "p95/mean-1"


@run_rule("no-prompt-cache")
def no_prompt_cache(record: RunRecord) -> Finding | None:
    usage = record.result.usage
    if usage.calls_with_usage < CACHE_MIN_CALLS or (usage.cached_input_tokens or 0) > 0:
        return None
    spread = _input_spread(record.result)
    if spread is None:
        return None
    mean, vary, how = spread
    if mean < CACHE_MIN_INPUT or vary > CACHE_MAX_SPREAD:
        return None
    return _finding(
        "no-prompt-cache",
        f"no input token was read from a prompt cache while each call sent {mean:,.0f} input "
        "tokens, nearly the same every call: a long shared prefix is likely",
        "put the fixed part (system prompt, tool definitions, examples) first and byte-identical, "
        "and enable prompt caching (Anthropic: cache_control; OpenAI caches prefixes of 1024+ "
        "tokens by itself); cached input costs a tenth or less",
        input_tokens_per_call=mean,
        spread=vary,
        spread_measure=how,
        cached_input_tokens=usage.cached_input_tokens or 0,
    )


# ------------------------------------------------------------------------------ memory and load


@run_rule("memory-growth")
def memory_growth(record: RunRecord) -> Finding | None:
    result = record.result
    slope = result.memory.per_1k_calls
    if slope is None or result.requests < LEAK_MIN_CALLS or slope < LEAK_MB_PER_1K:
        return None
    if slope * result.requests / 1000.0 < LEAK_MIN_MB:
        return None
    return _finding(
        "memory-growth",
        f"memory grows with the calls: {slope:.3g} MB per 1,000 calls",
        "something keeps memory per call (a history that grows, a cache without a bound, a "
        "client made per call); memory_profile=True lists the allocation sites; budget it with "
        "memory_per_1k_calls=",
        Severity.WARNING,
        mb_per_1k_calls=slope,
        rss_delta_mb=result.memory.rss_delta_mb,
        calls=result.requests,
    )


@run_rule("generator-saturated")
def generator_saturated(record: RunRecord) -> Finding | None:
    gen = record.result.generator
    busy = gen.event_loop and gen.cpu_one_core is not None and gen.cpu_one_core >= GENERATOR_CPU
    lagging = _loop_kept_late(gen)
    if not busy and not lagging:
        return None
    seen = []
    if busy and gen.cpu_one_core is not None:
        seen.append(f"it used {_pct(gen.cpu_one_core)} of one core")
    if lagging and gen.loop_lag_p99 is not None:
        late = ""
        if gen.loop_lag_late is not None and gen.loop_lag_ticks:
            times = f"{gen.loop_lag_late} times in {gen.loop_lag_ticks}"
            late = f", {_ms(GENERATOR_LAG)} or more late {times}"
        seen.append(f"its event loop ran scheduled work {_ms(gen.loop_lag_p99)} late (p99{late})")
    message = (
        "the test process itself was the bottleneck: " + " and ".join(seen) + ", so the "
        "latencies include the test's own queueing"
    )
    advice = (
        "lower concurrency=, use a lighter client (one shared client, no per-call setup), or "
        "split the load over processes (workers=N)"
    )
    others = record.result.contention.level
    evidence: dict[str, Any] = {}
    if others is not None and others >= GENERATOR_OTHERS:
        evidence["other_cpu"] = others
        # a starved process lags too: say so, or a busy CI runner reads as the test's fault
        message += (
            f"; other processes used {_pct(others)} of the machine's CPU meanwhile, so part "
            "of that is theirs"
        )
        advice += "; or measure on a quieter machine"
    return _finding(
        "generator-saturated",
        message,
        advice,
        Severity.WARNING,
        cpu_one_core=gen.cpu_one_core,
        cpu_all_cores=gen.cpu_all_cores,
        loop_lag_p99=gen.loop_lag_p99,
        threads=gen.threads,
        **evidence,
    )


def _loop_kept_late(gen: LoadGenerator) -> bool:
    """Whether the event loop was kept late: p99 lag at or above ``GENERATOR_LAG`` over enough
    late ticks, or late for a good share of the run (a record written before the late ticks
    were counted: p99 alone)."""
    if gen.loop_lag_p99 is None or gen.loop_lag_p99 < GENERATOR_LAG:
        return False
    late, ticks = gen.loop_lag_late, gen.loop_lag_ticks
    if late is None or ticks is None:
        return True
    if late >= max(GENERATOR_LATE_TICKS, math.ceil(GENERATOR_LATE_SHARE * ticks)):
        return True
    late_for, interval = gen.loop_lag_late_seconds, gen.interval
    if late_for is None or not interval:
        return False
    return late_for >= GENERATOR_LATE_TIME * interval


@run_rule("late-starts")
def late_starts(record: RunRecord) -> Finding | None:
    result = record.result
    rate = result.shape.rate
    if rate is None or not result.requests or result.late_starts <= LATE_SHARE * result.requests:
        return None
    achieved = result.requests / result.duration if result.duration > 0 else 0.0
    cap = result.shape.concurrency
    limit = f"the concurrency cap (concurrency={cap})" if cap else "a full worker pool"
    return _finding(
        "late-starts",
        f"{result.late_starts} of {result.requests} calls started late ({achieved:.3g}/s "
        f"achieved of {rate:g}/s offered): {limit} or the load generator, not the agent, was "
        "the bottleneck",
        "raise concurrency= or lower rate=",
        Severity.WARNING,
        late=result.late_starts,
        calls=result.requests,
        offered_rate=float(rate),
        achieved_rate=achieved,
    )


# ------------------------------------------------------------------------------ across runs


def _sweep_key(record: RunRecord) -> tuple[Any, ...] | None:
    """What runs of one sweep share: the test (parametrize ids dropped), the load shape but
    for concurrency, requests and duration, and the models; None for an open-loop run."""
    shape = record.result.shape
    if shape.rate is not None:
        return None
    base = record.nodeid.split("[", 1)[0]
    models = tuple(sorted(record.result.usage.by_model))
    return (base, shape.arrival, shape.warmup, shape.timeout, models)


@session_rule("throughput-saturated")
def throughput_saturated(records: Sequence[RunRecord]) -> Mapping[int, Finding]:
    """Closed-loop runs of one test that differ in concurrency: the lowest concurrency beyond
    which no run gained ``SWEEP_MIN_GAIN`` more throughput (the saturation point)."""
    groups: dict[tuple[Any, ...], dict[int, int]] = {}
    for i, r in enumerate(records):
        key = _sweep_key(r)
        if key is not None and r.result.requests and r.result.throughput > 0:
            groups.setdefault(key, {})[r.result.shape.concurrency or 1] = i  # last run wins
    found: dict[int, Finding] = {}
    for by_c in groups.values():
        if len(by_c) < SWEEP_MIN_RUNS:
            continue
        levels = sorted(by_c)
        tput = [records[by_c[c]].result.throughput for c in levels]
        for k, c in enumerate(levels[:-1]):
            if max(tput[k + 1 :]) < tput[k] * (1 + SWEEP_MIN_GAIN):
                found[by_c[c]] = _finding(
                    "throughput-saturated",
                    f"throughput stopped growing at concurrency={c} ({tput[k]:.3g}/s): "
                    f"up to concurrency={levels[-1]} it reached at most {max(tput[k:]):.3g}/s",
                    "beyond this point calls only queue (latency grows, throughput does not): "
                    "the limit is the provider's rate limit, the server's capacity or the load "
                    "generator; size pools and quotas at this concurrency",
                    concurrency=c,
                    throughput=tput[k],
                    concurrencies=levels,
                    throughputs=[_round(t) for t in tput],
                )
                break
    return found
