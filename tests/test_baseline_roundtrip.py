"""Property: whatever the baseline writer saves, the reader accepts and gives back unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from conftest import make_result, make_shape
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_agentperf.baseline import (
    Environment,
    Machine,
    dumps,
    load,
    run_from_result,
    save,
)
from pytest_agentperf.record import RunRecord
from pytest_agentperf.results import Cost, LoadShape, PerCallUsage, PerfResult, Stats, Usage
from pytest_agentperf.stats import summarize

ENV = Environment(
    Machine(cpu="CPU", cores=2, os="Linux", arch="x86_64", python="3.12.1"), None, "1"
)

finite = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0.0, exclude_min=True, allow_nan=False, allow_infinity=False)
big_int = st.integers(min_value=1, max_value=10**40)

shapes = st.builds(
    LoadShape,
    requests=st.none() | big_int,
    concurrency=st.none() | big_int,
    rate=st.none() | positive,
    arrival=st.sampled_from(["closed", "poisson", "constant"]),
    duration=st.none() | positive,
    warmup=st.integers(min_value=0, max_value=10**40),
    timeout=positive,  # any finite timeout, 1e-300 s to 1e308 s
    stages=st.lists(st.tuples(positive, finite), max_size=4).map(tuple),
)


@st.composite
def results(draw: Any) -> PerfResult:
    samples = draw(st.lists(st.floats(min_value=0.0, max_value=1e6), max_size=40))
    successes = len(samples)
    timeouts = draw(st.integers(0, 5))
    errors = timeouts + draw(st.integers(0, 5))
    requests = successes + errors
    tokens = draw(st.none() | finite)
    return PerfResult(
        name=draw(st.text()),
        shape=draw(shapes),
        requests=requests,
        errors=errors,
        timeouts=timeouts,
        error_rate=errors / requests if requests else 0.0,
        error_types={},
        error_messages=(),
        throughput=draw(finite),
        duration=draw(finite),
        latency=summarize(np.asarray(samples, dtype=np.float64)),
        ttft=Stats(),
        itl=Stats(),
        usage=Usage(per_call=PerCallUsage(None, None, tokens)),
        cost=Cost(per_call=draw(st.none() | finite)),
    )


def _read_back(tmp_path: Path, test: str, result: PerfResult, via_record: bool) -> None:
    if via_record:  # the controller's path: the record a test report carried
        data = json.loads(json.dumps(RunRecord.of(test, result).to_dict(), allow_nan=False))
        written = run_from_result(test, RunRecord.from_dict(data).result, ENV)
    else:
        written = run_from_result(test, result, ENV)
    path = tmp_path / "baseline.json"
    save(path, [written], keep_existing=False)
    got = load(path)
    assert got is not None
    assert got.problems == ()
    run = got.get(test, result.name)
    assert run is not None
    assert run.shape == written.shape
    # read back, it is written again exactly as before: nothing was lost or altered
    assert dumps([run]) == dumps([written])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(test=st.text(), result=results(), via_record=st.booleans())
@example(test="t.py::test_" + "x" * 5000, result=None, via_record=False)
def test_what_the_writer_saves_the_reader_accepts(
    tmp_path: Path, test: str, result: PerfResult | None, via_record: bool
) -> None:
    if result is None:  # the explicit examples: very long names, a name like a placeholder
        for name in ("r" * 5000, '"@@samples0@@"', "@@samples0@@"):
            _read_back(tmp_path, test, _plain(name), via_record)
        return
    _read_back(tmp_path, test, result, via_record)


def _plain(name: str) -> PerfResult:
    return make_result(
        [0.1, 0.2, 0.3],
        name=name,
        shape=make_shape(requests=3, warmup=0, timeout=1e300),
        throughput=1.0,
        duration=3.0,
    )
