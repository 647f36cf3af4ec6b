from __future__ import annotations

import statistics

import numpy as np
import pytest

from pytest_agentperf.stats import min_samples_for, summarize


def test_summary_matches_numpy_and_statistics() -> None:
    rng = np.random.default_rng(42)
    data = rng.lognormal(-1.5, 0.6, 1000)
    s = summarize(data)
    assert s.n == 1000
    for q, value in ((50, s.p50), (90, s.p90), (95, s.p95), (99, s.p99)):
        assert value == pytest.approx(np.percentile(data, q))
    # numpy's linear method is statistics.quantiles' "inclusive" method
    cuts = statistics.quantiles(data.tolist(), n=100, method="inclusive")
    assert s.p95 == pytest.approx(cuts[94])
    assert s.mean == pytest.approx(statistics.fmean(data.tolist()))
    assert s.stdev == pytest.approx(statistics.stdev(data.tolist()))
    assert (s.min, s.max) == (data.min(), data.max())
    assert not s.samples.flags.writeable


def test_empty_and_nan_samples() -> None:
    s = summarize([float("nan"), float("nan")])
    assert s.n == 0 and s.p50 is None and s.percentile(50) is None
    one = summarize([0.25])
    assert one.p99 == 0.25 and one.stdev == 0.0


def test_sample_size_rule() -> None:
    assert min_samples_for(95) == 59
    assert min_samples_for(99) == 299
    # the rule: with n samples the max bounds the percentile with 95 % confidence
    assert 0.95**59 <= 0.05 < 0.95**58
