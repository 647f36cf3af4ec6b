"""Records cut samples as arrays: only what is written becomes Python floats (issue 10)."""

from __future__ import annotations

import numpy as np
from conftest import make_result
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.codec import thin
from pytest_agentperf.record import MAX_REPORTED_SAMPLES, RunRecord


def _old_cut(samples: list[float], limit: int) -> list[float]:
    """The list-based cut records used before: the reference for the array cut."""
    if len(samples) <= limit:
        return samples
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 5000), limit=st.integers(1, 700))
def test_thin_picks_the_same_samples_as_the_list_cut(n: int, limit: int) -> None:
    samples = np.arange(n, dtype=np.float64)
    assert thin(samples, limit).tolist() == _old_cut(samples.tolist(), limit)


def test_thin_without_limit_keeps_every_sample() -> None:
    samples = np.arange(10, dtype=np.float64)
    assert thin(samples, None) is samples
    assert thin(samples, 10) is samples


def test_record_writes_at_most_the_cap_and_rounds_like_before() -> None:
    n = MAX_REPORTED_SAMPLES + 1234
    result = make_result(np.random.default_rng(0).lognormal(-2.0, 0.5, n))
    record = RunRecord.of("t.py::test", result).to_dict()
    written = record["result"]["latency"]["samples"]
    old = _old_cut([round(float(x), 6) for x in result.latency.samples], MAX_REPORTED_SAMPLES)
    assert len(written) == MAX_REPORTED_SAMPLES
    assert written == old
    assert all(type(x) is float for x in written[:100])
