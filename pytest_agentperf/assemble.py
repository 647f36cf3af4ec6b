"""Turning what the engine measured into a ``PerfResult``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .budgets import evaluate
from .engine import RawRun
from .engine.log import OK, TIMEOUT, MergedLog
from .pricing import PriceTable, compute_cost
from .redact import redact
from .results import BudgetCheck, PerfResult, PerRequest, StageResult, Stats, TimeShare
from .settings import Settings
from .stats import summarize
from .usage import UsageAccumulator


def unaccounted(settings: Settings, raw: RawRun, successes: int, errors: int) -> str | None:
    """Why the calls of a completed run do not add up, or None when they do.

    Every call the engine started must end as a success or an error (timeouts included), and
    a run bounded only by ``requests`` must make exactly that many: a call that vanished (a
    lost worker, a dead dispatcher) would otherwise leave a short run that passes.
    """
    done = successes + errors
    expected = raw.issued
    if settings.duration is None and settings.requests is not None:
        expected = settings.requests
    if expected is None or (done == expected and raw.issued in (None, expected)):
        return None
    started = "" if raw.issued is None else f", {raw.issued} started"
    return (
        f"calls unaccounted for: {expected} expected{started}, but {done} ended as "
        f"{successes} successes + {errors} errors; the figures of this run cannot be trusted "
        "(a cancellation from outside the run, or a bug in pytest-agentperf: please report it)"
    )


def per_request(counts: npt.NDArray[np.int64], zeros: int = 0) -> PerRequest:
    """Mean, p95 and max of ``counts`` (one per call) and of ``zeros`` more calls that counted
    0; unknown (all None) over no call."""
    n = int(counts.size) + zeros
    if n == 0:
        return PerRequest()
    values = np.concatenate((np.zeros(zeros, dtype=np.int64), counts)) if zeros else counts
    return PerRequest(
        mean=float(values.mean()),
        p95=float(np.percentile(values, 95)),
        max=float(values.max()),
        n=n,
    )


def time_share(latency_sum: float, usage: UsageAccumulator) -> TimeShare:
    """The shares of ``latency_sum`` (the measured calls' summed latency) spent in timed LLM
    requests and in tools; the rest is the agent's own code."""
    tool_seconds = sum(row[2] for row in usage.tools.values())
    model = usage.llm_seconds / latency_sum if usage.timed_llm_calls and latency_sum > 0 else None
    tools = tool_seconds / latency_sum if usage.tools and latency_sum > 0 else None
    if model is None and tools is None:
        return TimeShare()
    own = max(0.0, 1.0 - (model or 0.0) - (tools or 0.0))
    return TimeShare(model=model, tools=tools, own=own, timed_llm_calls=usage.timed_llm_calls)


def build_result(
    name: str,
    settings: Settings,
    raw: RawRun,
    *,
    prices: PriceTable | None = None,
    extra_fields: Sequence[Mapping[str, Any]] = (),
) -> PerfResult:
    """Compute every statistic of ``raw`` once, then check the budgets of ``settings``."""
    log = raw.log
    ok = log.status == OK
    requests = len(log)
    n_ok = int(np.count_nonzero(ok))
    errors = requests - n_ok
    usage = raw.usage.usage(requests)
    aborted = raw.aborted or unaccounted(settings, raw, n_ok, errors)
    result = PerfResult(
        name=name,
        shape=settings.shape,
        requests=requests,
        errors=errors,
        timeouts=int(np.count_nonzero(log.status == TIMEOUT)),
        error_rate=errors / requests if requests else 0.0,
        error_types=dict(raw.error_types),
        error_messages=tuple(redact(m) for m in raw.error_messages),
        throughput=n_ok / raw.duration,
        duration=raw.duration,
        latency=summarize(log.latency[ok]),
        ttft=summarize(log.ttft[ok]) if n_ok else Stats(),
        itl=summarize(log.itl),
        late_starts=raw.late_starts,
        aborted=None if aborted is None else redact(aborted),
        usage=usage,
        cost=compute_cost(usage, requests, prices),
        tools=raw.usage.tool_stats(),
        # A call that recorded nothing made no LLM (tool) call the plugin could see: 0 once the
        # run shows usage (tools) is seen at all, else unknown (a plain agent, not a lean one).
        llm_calls=per_request(log.llm_calls, requests - log.llm_calls.size)
        if log.llm_calls.size
        else PerRequest(),
        tool_calls=per_request(log.tool_calls, requests - log.tool_calls.size)
        if log.tool_calls.size
        else PerRequest(),
        tokens=per_request(log.llm_tokens),
        time_share=time_share(float(log.latency.sum()), raw.usage),
    )
    if log.detail:
        from .calls import call_table

        table = call_table(log, t0_unix=raw.t0_unix, model=settings.model, prices=prices)
        result = replace(result, calls=table)
    for fields in extra_fields:
        result = replace(result, **fields)
    result = replace(result, budgets=evaluate(settings.budgets, result))
    if settings.stages:
        result = replace(result, stages=stage_results(settings, log, result))
    return result


def stage_results(settings: Settings, log: MergedLog, whole: PerfResult) -> tuple[StageResult, ...]:
    """Each stage's figures: the calls whose intended start fell within it, judged against
    that stage's ``stage_budgets``. A stage's throughput is its successful calls over its
    length (the last stage: up to the run's end, as the whole run's is)."""
    out = []
    t = 0.0
    level = settings.ramp_start
    n = len(settings.stages)
    for i, (length, target) in enumerate(settings.stages):
        end = t + length
        last = i == n - 1
        inside = (log.start >= t) & ((log.start < end) | last)
        ok = inside & (log.status == OK)
        calls = int(np.count_nonzero(inside))
        n_ok = int(np.count_nonzero(ok))
        span = max(whole.duration - t, 1e-9) if last else length
        latency = summarize(log.latency[ok])
        budgets = settings.stage_budgets[i] if settings.stage_budgets else {}
        checks: tuple[BudgetCheck, ...] = ()
        if budgets:
            sub = replace(
                whole,
                requests=calls,
                errors=calls - n_ok,
                timeouts=int(np.count_nonzero(inside & (log.status == TIMEOUT))),
                error_rate=(calls - n_ok) / calls if calls else 0.0,
                throughput=n_ok / span,
                duration=span,
                latency=latency,
                aborted=None,
                stages=(),
            )
            checks = tuple(
                replace(c, message=f"stage {i}: {c.message}") for c in evaluate(budgets, sub)
            )
        out.append(
            StageResult(
                index=i,
                start=t,
                end=end,
                target_from=level,
                target_to=target,
                calls=calls,
                errors=calls - n_ok,
                throughput=n_ok / span,
                p50=latency.p50,
                p95=latency.p95,
                p99=latency.p99,
                budgets=checks,
            )
        )
        t, level = end, target
    return tuple(out)
