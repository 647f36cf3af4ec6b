"""RunRecord: its status, and its JSON form read back as the same object."""

from __future__ import annotations

import json
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from conftest import make_result, make_shape
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentperf.baseline import Environment, Machine, run_from_result
from pytest_agentperf.baseline.comparison import compare
from pytest_agentperf.codec import DecodeError
from pytest_agentperf.pricing import CostProjection
from pytest_agentperf.record import Finding, RunRecord, RunStatus, status_of
from pytest_agentperf.results import (
    BudgetCheck,
    Contention,
    Cost,
    CpuTime,
    ModelUsage,
    PerCallUsage,
    PerfResult,
    PerRequest,
    Stats,
    ToolStats,
    Usage,
    Window,
)
from pytest_agentperf.stats import summarize

SHAPE = make_shape(requests=50, concurrency=2, warmup=0, timeout=5.0)
ENV = Environment(Machine(cpu="CPU", cores=2), None, "1")

finite = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)
maybe = st.none() | st.floats(min_value=1e-3, max_value=1e9)
"""Per-call figures: from 1e-3, so the baseline's rounding cannot make a ratio infinite (an
infinity is written as null and read back as NaN, which equals nothing)."""
text = st.text(max_size=20)
per_request = st.none().map(lambda _: PerRequest()) | st.builds(
    PerRequest, mean=finite, p95=finite, max=finite, n=st.integers(1, 10**6)
)
"""Unknown (all None) or known figures of a count per request."""


@st.composite
def results(draw: Any) -> PerfResult:
    samples = np.asarray(
        draw(st.lists(st.floats(1e-6, 10.0), min_size=0, max_size=30)), dtype=np.float64
    )
    requests = samples.size + draw(st.integers(0, 5))
    models = draw(st.dictionaries(text, st.builds(ModelUsage, calls=st.integers(0, 9)), max_size=2))
    return PerfResult(
        name=draw(text),
        shape=SHAPE,
        requests=requests,
        errors=requests - samples.size,
        timeouts=0,
        error_rate=(requests - samples.size) / requests if requests else 0.0,
        error_types=MappingProxyType(draw(st.dictionaries(text, st.integers(0, 9), max_size=2))),
        error_messages=tuple(draw(st.lists(text, max_size=2))),
        throughput=draw(finite),
        duration=draw(finite),
        latency=summarize(samples),
        ttft=Stats(),
        itl=summarize(samples[:3]),
        aborted=draw(st.none() | text),
        usage=Usage(
            input_tokens=draw(st.none() | st.integers(0, 10**9)),
            per_call=PerCallUsage(total_tokens=draw(maybe)),
            by_model=MappingProxyType(models),
        ),
        cost=Cost(per_call=draw(maybe), by_model=MappingProxyType({"m": draw(maybe)})),
        tools=MappingProxyType({"search": ToolStats(calls=3, errors=1, total_time=0.5)}),
        llm_calls=draw(per_request),
        tool_calls=draw(per_request),
        tokens=draw(per_request),
        windows=(Window(0.0, 1.0, 3, 0, 3.0, 0.1, None, draw(maybe)),),
        contention=Contention(other_cpu=draw(maybe), source="fake"),
        cpu=CpuTime(per_call=draw(maybe), source="thread"),
        budgets=(BudgetCheck("p95", 1.0, draw(maybe), draw(st.booleans()), 3, "msg"),),
    )


def _same(a: RunRecord, b: RunRecord) -> None:
    """Equal as objects, and their samples equal at the written resolution."""
    assert a == b  # samples are not part of equality: compared below
    for field in ("latency", "ttft", "itl"):
        x, y = getattr(a.result, field).samples, getattr(b.result, field).samples
        np.testing.assert_allclose(x, np.round(y, 6), atol=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=results(), with_comparison=st.booleans())
def test_a_record_read_back_from_its_json_is_the_same_record(
    result: PerfResult, with_comparison: bool
) -> None:
    if with_comparison and result.latency.n:
        base = run_from_result("t::x", replace(result, name="b"), ENV)
        result = replace(result, comparison=compare(result, base, resamples=200))
    record = RunRecord.of(
        "t.py::test[x]",
        result,
        warnings=("few calls",),
        cost_projection=CostProjection(MappingProxyType({"gpt-4o": 0.001}), 1000, None),
    )
    record = replace(record, findings=(Finding("rule", "do this", MappingProxyType({"n": 3})),))
    text_form = json.dumps(record.to_dict(), allow_nan=False)
    back = RunRecord.from_dict(json.loads(text_form))
    _same(back, record)
    assert back.to_dict() == record.to_dict()


def test_status_is_the_worst_that_applies() -> None:
    samples = np.random.default_rng(0).lognormal(-2.0, 0.3, 200)
    base_result = make_result(samples)
    base = run_from_result("t::x", base_result, ENV)
    slower = make_result(samples * 2.0)
    regressed = replace(slower, comparison=compare(slower, base, resamples=300))
    broken = BudgetCheck("p95", 0.001, 1.0, False, 200, "p95 too slow")
    assert status_of(make_result(samples)) is RunStatus.PASS
    assert status_of(regressed) is RunStatus.REGRESSED
    assert status_of(replace(regressed, budgets=(broken,))) is RunStatus.FAIL
    assert status_of(replace(regressed, budgets=(broken,), aborted="stopped")) is RunStatus.ABORTED
    unchanged = replace(base_result, comparison=compare(base_result, base, resamples=300))
    assert status_of(unchanged) is RunStatus.PASS  # UNCHANGED reads PASS
    assert status_of(replace(base_result, comparison=compare(base_result, None))) is RunStatus.NEW
    record = RunRecord.of("t::x", replace(regressed, budgets=(broken,)))
    assert record.broken == ("p95",) and record.label == "t::x"  # the default run
    assert replace(record, name="fast").label == "t::x [fast]"
    assert str(RunStatus.NOT_COMPARABLE) == "NOT COMPARABLE"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodeid": 3}, r"record\.nodeid: expected str, got 3"),
        ({"status": "SO-SO"}, r"record\.status: 'SO-SO' is not a RunStatus"),
        ({"result": None}, r"record\.result: expected an object, got NoneType"),
        ({"warnings": "one"}, r"record\.warnings: expected a list, got str"),
    ],
)
def test_a_record_that_does_not_fit_names_the_field(change: dict[str, Any], message: str) -> None:
    data = {**RunRecord.of("t::x", make_result([0.1, 0.2])).to_dict(), **change}
    with pytest.raises(DecodeError, match=message):
        RunRecord.from_dict(data)


def test_samples_are_cut_to_the_cap_and_come_back_as_read_only_arrays() -> None:
    record = RunRecord.of("t::x", make_result(np.linspace(0.01, 1.0, 5000)))
    back = RunRecord.from_dict(record.to_dict(max_samples=100))
    assert back.result.latency.samples.size == 100
    assert not back.result.latency.samples.flags.writeable
    assert back.result.latency.n == 5000  # the statistics are those of the whole run
