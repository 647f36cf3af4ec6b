"""The gate under contention: busy flags, INCONCLUSIVE instead of REGRESSED, CPU time decides.

Baseline and current figures are fabricated, so every verdict here is exact.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from conftest import make_result, make_shape

from pytest_agentperf.baseline import Environment, Machine, run_from_result
from pytest_agentperf.baseline.change import ChangeKind
from pytest_agentperf.baseline.comparison import (
    BUSY_FLAG,
    MetricChange,
    Status,
    busy_reason,
    compare,
    judge_contention,
)
from pytest_agentperf.codec import to_jsonable
from pytest_agentperf.results import Contention, CpuTime, PerfResult
from pytest_agentperf.stats import summarize
from pytest_agentperf.units import Unit

SHAPE = make_shape(requests=400)
ENV = Environment(Machine(cpu="Test CPU", cores=2), None, "0.1.0")
QUIET = Contention(interval=5.0, cores=2, other_cpu=0.03, steal=0.0, source="/proc/stat")
BUSY = Contention(interval=5.0, cores=2, other_cpu=0.52, steal=0.01, source="/proc/stat")


def run(
    scale: float = 1.0,
    *,
    seed: int = 0,
    cpu_share: float = 0.01,
    cpu_scale: float = 1.0,
    contention: Contention = QUIET,
) -> PerfResult:
    """400 calls of about ``scale`` x 20 ms; CPU time per call ``cpu_share`` of the baseline's
    median call, times ``cpu_scale``."""
    samples = np.random.default_rng(seed).lognormal(np.log(0.02 * scale), 0.2, 400)
    lat = summarize(samples)
    per_call = cpu_share * 0.02 * cpu_scale
    assert lat.mean is not None and lat.p50 is not None
    return make_result(
        samples,
        name="main",
        shape=SHAPE,
        throughput=1.0 / lat.mean,  # one call in flight
        duration=400 * lat.mean,
        contention=contention,
        cpu=CpuTime(per_call=per_call, share=per_call / lat.p50, source="thread"),
    )


def gate(current: PerfResult, baseline: PerfResult) -> Any:
    return compare(current, run_from_result("tests/t.py::test_a", baseline, ENV))


def test_busy_means_clearly_more_contention_than_the_baseline() -> None:
    assert busy_reason(BUSY, QUIET) == (
        "machine busy: other processes used 53% CPU vs 3% in the baseline (steal 1%)"
    )
    assert busy_reason(QUIET, BUSY) is None  # quieter than the baseline
    assert busy_reason(Contention(other_cpu=0.35), Contention(other_cpu=0.2)) is None  # +15 %
    assert busy_reason(Contention(), QUIET) is None  # not measured now: say nothing
    assert busy_reason(BUSY, None) == (
        "machine busy: other processes used 53% CPU vs not measured in the baseline (steal 1%)"
    )


def test_a_regression_seen_only_on_a_busy_machine_is_inconclusive() -> None:
    quiet = gate(run(1.3, seed=1), run(seed=2))
    assert quiet.status is Status.REGRESSED and quiet.busy is None
    busy = gate(run(1.3, seed=1, contention=BUSY), run(seed=2))
    assert busy.status is Status.INCONCLUSIVE
    assert (
        busy.get("p50").status is Status.INCONCLUSIVE
        and busy.get("p95").status is Status.INCONCLUSIVE
    )
    assert busy.busy is not None and busy.busy.startswith(BUSY_FLAG)
    assert busy.busy in [f.text for f in busy.flags]
    assert "INCONCLUSIVE" in busy.metrics["p50"].text and busy.busy in busy.metrics["p50"].text
    data = json.loads(json.dumps(to_jsonable(busy)))
    assert data["busy"] == busy.busy
    assert data["metrics"]["p95"]["note"] == busy.busy


def test_a_slowdown_beyond_what_contention_explains_still_fails_on_a_busy_machine() -> None:
    comp = gate(run(2.0, seed=1, contention=BUSY), run(seed=2))
    assert comp.busy is not None
    assert comp.status is Status.REGRESSED
    assert comp.get("p50").status is Status.REGRESSED


def test_a_regression_with_more_cpu_per_call_fails_even_on_a_busy_machine() -> None:
    # a waiting agent that now burns 10 ms of CPU per call: contention-proof evidence
    comp = gate(run(1.3, seed=1, cpu_share=0.5, contention=BUSY), run(seed=2, cpu_share=0.01))
    assert comp.get("cpu") is not None and comp.get("cpu").status is Status.REGRESSED
    assert comp.get("p50").status is Status.REGRESSED
    assert comp.status is Status.REGRESSED


def test_cpu_time_needs_a_larger_rise_on_a_busy_machine() -> None:
    base = run(seed=2, cpu_share=0.95)
    # +20 % CPU time: a regression on a quiet machine, within what busy neighbours cause
    quiet = gate(run(1.2, seed=1, cpu_share=0.95, cpu_scale=1.2), base)
    assert quiet.get("cpu") is not None and quiet.get("cpu").status is Status.REGRESSED
    busy = gate(run(1.2, seed=1, cpu_share=0.95, cpu_scale=1.2, contention=BUSY), base)
    assert busy.get("cpu") is not None and busy.get("cpu").status is Status.UNCHANGED
    assert busy.get("cpu").note == busy.busy
    assert busy.status is Status.INCONCLUSIVE
    # x2 CPU time fails everywhere
    double = gate(run(2.0, seed=1, cpu_share=0.95, cpu_scale=2.0, contention=BUSY), base)
    assert double.get("cpu") is not None and double.get("cpu").status is Status.REGRESSED
    assert double.status is Status.REGRESSED


def test_cpu_time_of_a_waiting_agent_counts_only_when_it_matters() -> None:
    # 0.2 ms -> 0.4 ms of CPU on a 20 ms call: x2, but it cannot slow the call by 10 %
    comp = gate(run(seed=1, cpu_share=0.02), run(seed=2, cpu_share=0.01))
    assert comp.get("cpu") is not None
    assert comp.get("cpu").change == pytest.approx(2.0)
    assert comp.get("cpu").status is Status.UNCHANGED
    assert comp.status is Status.UNCHANGED


def test_cpu_bound_calls_are_judged_by_cpu_time() -> None:
    base = run(seed=2, cpu_share=0.95)
    # wall time up 30 %, CPU time per call unchanged: the machine, not the agent
    slower_machine = gate(run(1.3, seed=1, cpu_share=0.95), base)
    assert slower_machine.cpu_bound
    assert slower_machine.get("p50").status is Status.INCONCLUSIVE
    assert slower_machine.status is Status.INCONCLUSIVE
    assert "CPU time per call did not rise" in (slower_machine.get("p50").note or "")
    # the agent got slower: CPU time rose; +25 % is caught on a quiet machine, +40 % on a
    # busy one (whose neighbours stretch CPU time a little too)
    for slower, contention in ((1.25, QUIET), (1.4, BUSY)):
        slower_agent = gate(
            run(slower, seed=1, cpu_share=0.95, cpu_scale=slower, contention=contention), base
        )
        assert (
            slower_agent.get("cpu") is not None
            and slower_agent.get("cpu").status is Status.REGRESSED
        )
        assert slower_agent.status is Status.REGRESSED
    # a busy machine alone: wall time x3 (share falls to 0.3), CPU time the same
    busy_only = gate(run(3.0, seed=1, cpu_share=0.95, contention=BUSY), base)
    assert busy_only.cpu_bound
    assert busy_only.status is Status.INCONCLUSIVE


def test_a_cpu_bound_agent_that_starts_waiting_is_inconclusive_not_passed() -> None:
    base = run(seed=2, cpu_share=0.95)
    # 50 % slower with the same CPU: it waits for something now, or the machine is slower;
    # CPU time cannot tell which, so the run is reported, not failed
    comp = gate(run(1.5, seed=1, cpu_share=0.95), base)
    assert comp.cpu_bound
    assert comp.status is Status.INCONCLUSIVE
    assert comp.get("p50").status is Status.INCONCLUSIVE


def test_a_baseline_recorded_on_a_busy_machine_is_flagged() -> None:
    comp = gate(run(seed=1, contention=BUSY), run(seed=2, contention=BUSY))
    assert comp.busy is None
    assert any(
        f.text.startswith("baseline recorded on a busy machine (other processes used 53% CPU)")
        for f in comp.flags
    )
    assert not any("busy machine" in f.text for f in gate(run(seed=1), run(seed=2)).flags)


def _latency(status: Status, low: float) -> MetricChange:
    return MetricChange(
        "p95", "p95 latency", ChangeKind.RATIO, Unit.SECONDS, 1.0, 1.4, 1.4, low, 1.6, status, 0.1
    )


def test_judge_contention_rules() -> None:
    cpu = ("cpu", "cpu per call", ChangeKind.RATIO, Unit.SECONDS)
    cpu_same = MetricChange(*cpu, 1.0, 1.0, 1.0, None, None, Status.UNCHANGED, 0.1)
    cpu_up = MetricChange(*cpu, 1.0, 1.4, 1.4, None, None, Status.REGRESSED, 0.1)
    regressed = _latency(Status.REGRESSED, 1.3)
    kw: dict[str, Any] = {"tolerance": 0.1}
    assert judge_contention(regressed, cpu=cpu_same, busy=None, cpu_bound=False, **kw) == regressed
    out = judge_contention(regressed, cpu=cpu_same, busy="machine busy: x", cpu_bound=False, **kw)
    assert out is not None and out.status is Status.INCONCLUSIVE and out.note == "machine busy: x"
    assert judge_contention(regressed, cpu=None, busy="machine busy: x", cpu_bound=False, **kw)
    kept = judge_contention(regressed, cpu=cpu_up, busy="machine busy: x", cpu_bound=True, **kw)
    assert kept == regressed
    far = _latency(Status.REGRESSED, 1.7)  # above 1.1 x 1.5: more than contention explains
    assert judge_contention(far, cpu=cpu_same, busy="machine busy: x", cpu_bound=False, **kw) == far
    bound = judge_contention(far, cpu=cpu_same, busy=None, cpu_bound=True, **kw)
    assert bound is not None and bound.status is Status.INCONCLUSIVE
    passed = _latency(Status.UNCHANGED, 0.9)
    assert (
        judge_contention(passed, cpu=cpu_same, busy="machine busy: x", cpu_bound=True, **kw)
        == passed
    )
