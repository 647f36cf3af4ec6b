"""Statistics of latency samples.

Percentiles use numpy's default method ("linear", Hyndman & Fan type 7), the same as
``numpy.percentile`` and ``statistics.quantiles(method="inclusive")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .results import FloatArray, Stats

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def min_samples_for(q: float, confidence: float = 0.95) -> int:
    """Smallest n for which the sample maximum bounds the q-th percentile with ``confidence``.

    With n samples, P(max < true q-th percentile) = (q/100)^n; solving (q/100)^n <= 1-confidence
    gives n >= log(1-confidence)/log(q/100): 59 for p95 and 299 for p99.
    """
    p = q / 100.0
    if p <= 0 or p >= 1:
        return 1
    return math.ceil(math.log(1 - confidence) / math.log(p))


def summarize(samples: Iterable[float] | FloatArray) -> Stats:
    """Stats of ``samples`` (seconds); NaNs are dropped."""
    arr = np.asarray(samples if isinstance(samples, np.ndarray) else list(samples), dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    arr.flags.writeable = False
    n = int(arr.size)
    if n == 0:
        return Stats(samples=arr)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(arr, PERCENTILES))
    return Stats(
        n=n,
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        min=float(arr.min()),
        max=float(arr.max()),
        mean=float(arr.mean()),
        stdev=float(arr.std(ddof=1)) if n > 1 else 0.0,
        samples=arr,
    )
