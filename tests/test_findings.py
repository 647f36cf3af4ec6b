"""Findings: each rule fires on a run built to trigger it and stays silent on a healthy run."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from conftest import make_result, make_shape

from pytest_agentperf import findings
from pytest_agentperf.findings import (
    RUN_RULES,
    SESSION_RULES,
    run_findings,
    session_findings,
    warnings_of,
)
from pytest_agentperf.pricing import CostProjection
from pytest_agentperf.record import Finding, RunRecord, Severity
from pytest_agentperf.report import terminal
from pytest_agentperf.report.markdown import summary
from pytest_agentperf.report.protocol import ReportContext
from pytest_agentperf.results import (
    CallTable,
    Contention,
    Cost,
    LoadGenerator,
    Memory,
    PerCallUsage,
    PerfResult,
    PerRequest,
    Usage,
)
from pytest_agentperf.stats import summarize

RNG = np.random.default_rng(7)
HEALTHY = tuple(RNG.uniform(0.9, 1.1, 300).tolist())
"""Latencies of a healthy run: a tight spread (p99 / p50 near 1.1)."""


def _record(result: PerfResult | None = None, nodeid: str = "t.py::t", **kw: Any) -> RunRecord:
    return RunRecord.of(nodeid, result or make_result(HEALTHY), **kw)


def _ids(record: RunRecord) -> list[str]:
    return [f.rule for f in run_findings(record)]


def _one(record: RunRecord, rule: str) -> Finding:
    (found,) = [f for f in run_findings(record) if f.rule == rule]
    return found


def test_a_healthy_run_has_no_finding() -> None:
    assert run_findings(_record()) == ()
    assert session_findings([_record()]) == [_record()]


def test_every_rule_is_registered_once_by_its_id() -> None:
    assert set(RUN_RULES) >= {
        "rate-limited",
        "dominant-error",
        "long-tail",
        "ttft-dominates",
        "cheaper-model",
        "no-prompt-cache",
        "memory-growth",
        "generator-saturated",
        "late-starts",
    }
    assert set(SESSION_RULES) == {"throughput-saturated"}


# --------------------------------------------------------------------------------- errors


def _errors(types: dict[str, int]) -> PerfResult:
    n = sum(types.values())
    return make_result(HEALTHY, errors=n, error_types=types)


def test_most_errors_rate_limits_say_lower_concurrency_backoff_quota() -> None:
    record = _record(_errors({"RateLimitError": 40, "ValueError": 10}))
    found = _one(record, "rate-limited")
    assert found.severity is Severity.WARNING
    assert found.evidence["error_type"] == "RateLimitError"
    assert found.evidence["count"] == 40 and found.evidence["share"] == 0.8
    assert "backoff" in found.advice and "quota" in found.advice and "concurrency" in found.advice
    assert "dominant-error" not in _ids(record)  # said once


@pytest.mark.parametrize("name", ["TooManyRequests", "HTTP429", "ThrottlingException"])
def test_other_names_of_a_rate_limit(name: str) -> None:
    assert "rate-limited" in _ids(_record(_errors({name: 9})))


def test_most_errors_one_other_type() -> None:
    found = _one(_record(_errors({"KeyError": 6, "ValueError": 2})), "dominant-error")
    assert found.evidence["error_type"] == "KeyError"
    assert "KeyError" in found.advice
    timeouts = _one(_record(_errors({"Timeout": 9})), "dominant-error")
    assert "timeout=" in timeouts.advice


def test_errors_silent_when_few_or_spread() -> None:
    assert _ids(_record(_errors({"RateLimitError": 4}))) == []  # below MIN_ERRORS
    spread = {"A": 3, "B": 3, "C": 3, "RateLimitError": 3}
    assert _ids(_record(_errors(spread))) == []  # no type is half the errors


# --------------------------------------------------------------------------------- latency


def test_a_long_tail_names_its_ratio_and_slowest_calls() -> None:
    samples = [1.0] * 290 + [5.0] * 10
    result = make_result(samples)
    found = _one(_record(result), "long-tail")
    assert found.evidence["ratio"] == pytest.approx(5.0)
    assert found.evidence["n"] == 300
    assert "slowest" not in found.evidence  # no call table kept
    n = len(samples)
    start = np.arange(n, dtype=np.float64)
    calls = CallTable(
        start=start,
        actual=start,
        end=start + np.asarray(samples),
        status=np.zeros(n, dtype=np.int8),
    )
    with_calls = _one(_record(replace(result, calls=calls)), "long-tail")
    rows = [row for row, _ in with_calls.evidence["slowest"]]
    assert len(rows) == findings.TAIL_SLOWEST and all(r >= 290 for r in rows)


def test_a_long_tail_needs_enough_calls() -> None:
    assert "long-tail" not in _ids(_record(make_result([1.0] * 90 + [9.0] * 9)))


def test_ttft_most_of_the_latency() -> None:
    ttft = summarize(np.full(50, 0.8))
    found = _one(_record(make_result([1.0] * 50, ttft=ttft)), "ttft-dominates")
    assert found.evidence["share"] == pytest.approx(0.8)
    assert "stream" in found.advice
    small = summarize(np.full(50, 0.1))
    assert _ids(_record(make_result([1.0] * 50, ttft=small))) == []


# --------------------------------------------------------------------------------- cost, tokens


def test_a_cheaper_model_and_its_monthly_saving() -> None:
    result = make_result(HEALTHY, cost=Cost(total=3.0, per_call=0.01))
    projection = CostProjection(
        whatif=MappingProxyType({"big": 0.02, "small": 0.002}),
        monthly_calls=1_000_000,
        monthly_cost=10_000.0,
    )
    found = _one(_record(result, cost_projection=projection), "cheaper-model")
    assert found.evidence["model"] == "small"
    assert found.evidence["saving"] == pytest.approx(0.8)
    assert found.evidence["monthly_saving"] == pytest.approx(8000.0)
    assert "80% less" in found.message and "$8,000.00 a month" in found.message
    near = CostProjection(whatif=MappingProxyType({"other": 0.009}))
    assert _ids(_record(result, cost_projection=near)) == []  # 10 % less: not worth a line
    assert _ids(_record(result)) == []  # no what-if asked for


def _usage(cached: int, tokens_p95: float) -> PerfResult:
    usage = Usage(
        input_tokens=200_000,
        output_tokens=10_000,
        total_tokens=210_000,
        cached_input_tokens=cached,
        calls_with_usage=100,
        per_call=PerCallUsage(2000.0, 100.0, 2100.0),
    )
    tokens = PerRequest(mean=2100.0, p95=tokens_p95, max=tokens_p95, n=100)
    return make_result(HEALTHY, usage=usage, tokens=tokens)


def test_no_prompt_cache_on_long_steady_prompts() -> None:
    found = _one(_record(_usage(0, 2200.0)), "no-prompt-cache")
    assert found.evidence["input_tokens_per_call"] == 2000.0
    assert "prompt caching" in found.advice
    assert _ids(_record(_usage(50_000, 2200.0))) == []  # the cache is read
    assert _ids(_record(_usage(0, 6000.0))) == []  # prompts vary a lot: no shared prefix seen


def test_no_prompt_cache_from_the_call_table() -> None:
    n = 50
    start = np.arange(n, dtype=np.float64)

    def table(tokens: list[int]) -> CallTable:
        return CallTable(
            start=start,
            actual=start,
            end=start + 1,
            status=np.zeros(n, dtype=np.int8),
            input_tokens=np.asarray(tokens, dtype=np.int64),
        )

    steady = replace(_usage(0, 99_999.0), calls=table([3000] * n))
    assert findings.no_prompt_cache(_record(steady)) is not None
    varied = replace(_usage(0, 2200.0), calls=table([200, 6000] * (n // 2)))
    assert findings.no_prompt_cache(_record(varied)) is None


# --------------------------------------------------------------------------------- memory, load


def test_memory_growing_per_call() -> None:
    leak = make_result(HEALTHY, memory=Memory(rss_delta_mb=30.0, per_1k_calls=12.0))
    found = _one(_record(leak), "memory-growth")
    assert found.evidence["mb_per_1k_calls"] == 12.0
    flat = make_result(HEALTHY, memory=Memory(rss_delta_mb=0.1, per_1k_calls=0.05))
    assert _ids(_record(flat)) == []


def test_a_steep_slope_over_too_few_calls_to_grow_is_not_a_finding() -> None:
    """1.02 MB per 1,000 calls over 100 calls is 0.1 MB: allocator noise, not a leak (seen in
    the OpenAI example); the same slope over 4,000 calls, 4 MB, is reported."""
    short = make_result(
        [0.1] * 100, memory=Memory(rss_delta_mb=0.75, per_1k_calls=1.02), requests=100
    )
    assert "memory-growth" not in _ids(_record(short))
    long = make_result(
        [0.1] * 4000, memory=Memory(rss_delta_mb=4.1, per_1k_calls=1.02), requests=4000
    )
    assert "memory-growth" in _ids(_record(long))


def test_the_load_generator_saturated() -> None:
    busy = LoadGenerator(cpu_one_core=0.97, cpu_all_cores=0.49, event_loop=True, threads=3)
    found = _one(_record(make_result(HEALTHY, generator=busy)), "generator-saturated")
    assert "97% of one core" in found.message
    assert "workers=" in found.advice and "concurrency" in found.advice
    assert warnings_of([found]) == (f"{found.message}; {found.advice}",)
    lag = LoadGenerator(cpu_one_core=0.3, loop_lag_p99=0.05, event_loop=True)
    assert (
        "late (p99)"
        in _one(_record(make_result(HEALTHY, generator=lag)), "generator-saturated").message
    )
    sync_busy = LoadGenerator(cpu_one_core=1.5, event_loop=False)  # threads: not one loop
    quiet = LoadGenerator(cpu_one_core=0.2, loop_lag_p99=0.001, event_loop=True)
    for gen in (sync_busy, quiet):
        assert _ids(_record(make_result(HEALTHY, generator=gen))) == []


@pytest.mark.parametrize(
    ("late", "ticks", "found"),
    [
        (1, 40, False),  # one stall in a 2 s run: a garbage collection, not a busy loop
        (2, 40, False),
        (3, 40, True),  # the fewest late ticks that count
        (3, 1000, False),  # 0.3 % of a 50 s run's ticks
        (10, 1000, True),  # 1 %
        (35, 40, True),  # a loop kept late (a blocking call in an async agent)
    ],
)
def test_loop_lag_counts_when_enough_ticks_were_late(late: int, ticks: int, found: bool) -> None:
    gen = LoadGenerator(
        cpu_one_core=0.3,
        loop_lag_p99=0.05,
        event_loop=True,
        loop_lag_late=late,
        loop_lag_ticks=ticks,
    )
    ids = _ids(_record(make_result(HEALTHY, generator=gen)))
    assert ("generator-saturated" in ids) is found
    if found:
        message = _one(_record(make_result(HEALTHY, generator=gen)), "generator-saturated").message
        assert f"10 ms or more late {late} times in {ticks}" in message


def test_a_saturated_generator_on_a_busy_machine_says_part_of_it_is_the_others() -> None:
    busy = LoadGenerator(cpu_one_core=0.95, cpu_all_cores=0.48, event_loop=True, threads=3)
    quiet = make_result(HEALTHY, generator=busy, contention=Contention(other_cpu=0.05))
    found = _one(_record(quiet), "generator-saturated")
    assert "other processes" not in found.message and "other_cpu" not in found.evidence
    crowded = make_result(HEALTHY, generator=busy, contention=Contention(other_cpu=0.45))
    found = _one(_record(crowded), "generator-saturated")
    assert "other processes used 45% of the machine's CPU" in found.message
    assert "quieter machine" in found.advice and found.evidence["other_cpu"] == 0.45


def test_a_loop_blocked_for_most_of_the_run_counts_though_it_ticked_once() -> None:
    """An async agent that never awaits holds the loop for the whole run: one tick fires, as
    late as the run is long; one 100 ms stall in a 2 s run does not count."""
    blocked = LoadGenerator(
        interval=1.0,
        cpu_one_core=0.6,
        loop_lag_p99=0.99,
        event_loop=True,
        loop_lag_late=1,
        loop_lag_ticks=1,
        loop_lag_late_seconds=0.99,
    )
    assert "generator-saturated" in _ids(_record(make_result(HEALTHY, generator=blocked)))
    stall = replace(blocked, interval=2.0, loop_lag_ticks=40, loop_lag_late_seconds=0.1)
    assert "generator-saturated" not in _ids(_record(make_result(HEALTHY, generator=stall)))


def test_most_calls_of_an_open_loop_run_started_late() -> None:
    shape = make_shape(rate=100.0, concurrency=4, arrival="poisson")
    late = make_result(HEALTHY, shape=shape, late_starts=200, duration=10.0)
    found = _one(_record(late), "late-starts")
    assert "200 of 300 calls started late" in found.message
    assert "concurrency=4" in found.message
    on_time = make_result(HEALTHY, shape=shape, late_starts=20)
    assert _ids(_record(on_time)) == []


# --------------------------------------------------------------------------------- sweep


def _sweep(throughputs: dict[int, float], nodeid: str = "t.py::sweep") -> list[RunRecord]:
    out = []
    for c, tput in throughputs.items():
        result = make_result(HEALTHY, name=f"c{c}", shape=make_shape(concurrency=c))
        out.append(_record(replace(result, throughput=tput), nodeid=f"{nodeid}[{c}]"))
    return out


def test_throughput_that_stops_growing_across_a_sweep() -> None:
    records = _sweep({1: 10.0, 2: 19.0, 4: 36.0, 8: 38.0, 16: 37.0})
    out = session_findings(records)
    (index,) = [i for i, r in enumerate(out) if r.findings]
    assert records[index].result.shape.concurrency == 4
    (found,) = out[index].findings
    assert found.rule == "throughput-saturated"
    assert found.evidence["concurrency"] == 4
    assert found.evidence["concurrencies"] == [1, 2, 4, 8, 16]
    assert session_findings(out) == out  # added once


def test_a_sweep_that_keeps_growing_or_too_short_says_nothing() -> None:
    growing = _sweep({1: 10.0, 2: 20.0, 4: 40.0, 8: 75.0})
    assert all(not r.findings for r in session_findings(growing))
    two = _sweep({1: 10.0, 2: 10.0})
    assert all(not r.findings for r in session_findings(two))
    mixed = _sweep({1: 10.0, 2: 10.0}) + _sweep({4: 10.0}, nodeid="t.py::other")
    assert all(not r.findings for r in session_findings(mixed))  # two different tests


# --------------------------------------------------------------------------------- outputs


def _noisy() -> RunRecord:
    record = _record(_errors({"RateLimitError": 40, "ValueError": 10}))
    return replace(record, findings=run_findings(record))


def test_findings_travel_through_the_record_json() -> None:
    record = _noisy()
    data = json.loads(json.dumps(record.to_dict()))
    (finding,) = data["findings"]
    assert finding["rule"] == "rate-limited" and finding["severity"] == "warning"
    assert finding["evidence"]["count"] == 40 and finding["advice"]
    assert RunRecord.from_dict(data).findings == record.findings


def test_findings_are_listed_under_the_terminal_table_unless_off() -> None:
    lines = terminal.section([_noisy()], (), ())
    (line,) = [x for x in lines if "rate-limited" in x]
    assert line.startswith("t.py::t: rate-limited: 80% of the errors are RateLimitError")
    assert "(error_type=RateLimitError, count=40, share=0.8, errors=50); lower concurrency" in line
    assert not [x for x in terminal.section([_noisy()], (), (), findings=False) if "rate-lim" in x]


def test_findings_in_the_markdown_summary_unless_off() -> None:
    text = summary([_noisy()], ReportContext("0")).text()
    assert "### Findings" in text
    assert "**warning** rate-limited: t.py::t: 80% of the errors are RateLimitError" in text
    off = summary([_noisy()], ReportContext("0", findings=False)).text()
    assert "### Findings" not in off


def test_a_concurrency_sweep_in_a_session_names_its_saturation_point(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_sweep="""
        import threading, time, pytest

        SERVER = threading.Semaphore(2)  # a server that serves two calls at a time

        def agent():
            with SERVER:
                time.sleep(0.02)

        @pytest.mark.parametrize("c", [1, 2, 4, 8])
        def test_sweep(agentperf, c):
            agentperf.run(agent, requests=40, concurrency=c, warmup=0)
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--agentperf-json=out.json")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*: throughput-saturated: throughput stopped growing at *"])
    runs = json.loads((pytester.path / "out.json").read_text())["runs"]
    found = [f for r in runs for f in r["findings"] if f["rule"] == "throughput-saturated"]
    assert len(found) == 1
    assert found[0]["evidence"]["concurrencies"] == [1, 2, 4, 8]
    assert found[0]["evidence"]["concurrency"] in (2, 4)  # 2 on a quiet machine


FINDING_AGENTS = """
import time
from pytest_agentperf import record_usage


class RateLimitError(Exception):
    pass


def limited(x):
    time.sleep(0.001)
    if x % 2:
        raise RateLimitError("429 Too Many Requests")
    return "ok"


def tailed(x):
    time.sleep(0.05 if x % 50 == 0 else 0.002)  # 2 calls in 100: p99 far above p50


def long_prompt(x):
    time.sleep(0.001)
    record_usage(2000, 50, model="gpt-4o")


def streamed(x):
    def chunks():
        time.sleep(0.03)  # the first chunk is most of the wait
        yield "a"
        time.sleep(0.002)
        yield "b"
    return chunks()


def slow(x):
    time.sleep(0.02)


def healthy(x):
    time.sleep(0.002)
"""

FINDING_TESTS = """
import pytest
from finding_agents import limited, tailed, long_prompt, streamed, slow, healthy

@pytest.mark.agent_perf(requests=20, concurrency=2, warmup=0)
def test_limited(agentperf):
    agentperf.run(limited, inputs=list(range(20)), check=False)

@pytest.mark.agent_perf(requests=200, concurrency=1, warmup=0)
def test_tailed(agentperf):
    agentperf.run(tailed, inputs=list(range(200)))

@pytest.mark.agent_perf(requests=20, concurrency=2, warmup=0)
def test_long_prompt(agentperf):
    agentperf.run(long_prompt, inputs=list(range(20)))

@pytest.mark.agent_perf(requests=12, concurrency=4, warmup=0)
def test_streamed(agentperf):
    agentperf.run(streamed, inputs=list(range(12)))

@pytest.mark.agent_perf(requests=20, rate=400, concurrency=1, warmup=0)
def test_late(agentperf):
    agentperf.run(slow, inputs=list(range(20)))

@pytest.mark.agent_perf(requests=20, concurrency=2, warmup=0)
def test_healthy(agentperf):
    agentperf.run(healthy, inputs=list(range(20)))
"""


def test_rules_fire_on_real_runs_in_a_session_and_stay_silent_on_a_healthy_one(
    pytester: pytest.Pytester,
) -> None:
    """End to end: runs built to trigger a rule each, through pytest, with the what-if model
    the cost rule compares against; the healthy run has no finding."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(finding_agents=FINDING_AGENTS, test_runs=FINDING_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "--agentperf-json=out.json", "--agentperf-cost-whatif=gpt-4o-mini"
    )
    result.assert_outcomes(passed=6)
    runs = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))["runs"]
    found = {r["nodeid"].split("::")[-1]: {f["rule"] for f in r["findings"]} for r in runs}
    assert "rate-limited" in found["test_limited"]
    assert "long-tail" in found["test_tailed"]
    assert {"no-prompt-cache", "cheaper-model"} <= found["test_long_prompt"]
    assert "ttft-dominates" in found["test_streamed"]
    assert "late-starts" in found["test_late"]
    assert found["test_healthy"] == set()
    result.stdout.fnmatch_lines(["*test_limited*rate-limited*backoff*"])
