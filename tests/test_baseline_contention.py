"""The baseline keeps CPU time, contention and the start order of the samples."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from conftest import make_result

from pytest_agentperf.baseline import (
    BaselineRun,
    Environment,
    Machine,
    dumps,
    load,
    parse,
    run_from_result,
    thin_samples,
)
from pytest_agentperf.results import Contention, CpuTime

ENV = Environment(Machine(cpu="Test CPU", cores=2), "0123456789abcdef", "0.1.0")
SAMPLES = np.random.default_rng(0).lognormal(-2.0, 0.5, 100)


CONTENTION = Contention(
    interval=2.5,
    cores=2,
    other_cpu=0.4812,
    steal=0.01,
    own_cpu=0.2,
    load_avg=1.5,
    loop_lag_p50=0.0002,
    loop_lag_p95=0.004,
    loop_lag_max=0.02,
    source="/proc/stat",
)


def _entry() -> BaselineRun:
    result = make_result(
        SAMPLES,
        duration=10.0,
        contention=CONTENTION,
        cpu=CpuTime(per_call=0.00123456789, p50=0.0012, share=0.81234, source="thread"),
    )
    return run_from_result("tests/test_a.py::test_one", result, ENV)


def test_cpu_time_and_contention_survive_the_file(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    e = _entry()
    path.write_text(dumps([e]), encoding="utf-8")
    loaded = load(path)
    assert loaded is not None
    got = loaded.get("tests/test_a.py::test_one", "default")
    assert got is not None
    assert got.figures["cpu_per_call"] == 0.00123457
    assert got.cpu_share == 0.8123
    assert got.contention == replace(CONTENTION, other_cpu=0.4812)
    assert got.in_order
    np.testing.assert_allclose(got.latency.samples, SAMPLES, atol=1e-6)


def test_an_older_file_without_order_is_read_as_sorted_independent_samples() -> None:
    doc = json.loads(dumps([_entry()]))
    run = doc["runs"][0]
    for key in ("order", "cpu_per_call", "cpu_share", "contention"):
        del run[key]
    got = parse(json.dumps(doc)).get("tests/test_a.py::test_one", "default")
    assert got is not None
    assert not got.in_order
    assert np.all(np.diff(got.latency.samples) >= 0)
    assert got.figures["cpu_per_call"] is None and got.contention is None


def test_large_runs_keep_calls_evenly_spaced_in_time() -> None:
    series = np.arange(10_000, dtype=np.float64) / 1000.0  # rising: order is visible
    thinned = thin_samples(series, cap=2000)
    assert thinned.size == 2000
    assert thinned[0] == 0.0 and thinned[-1] == 9.999
    assert np.all(np.diff(thinned) > 0)  # start order kept
    np.testing.assert_array_equal(thinned, thin_samples(series, cap=2000))  # deterministic
    assert thin_samples(np.array([0.3, np.nan, 0.1])).tolist() == [0.3, 0.1]
