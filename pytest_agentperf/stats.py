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
    arr = np.asarray(
        samples if isinstance(samples, np.ndarray) else list(samples), dtype=np.float64
    )
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


# --- Baseline comparison: bootstrap ratio of percentiles, difference of two proportions ---

BOOTSTRAP_RESAMPLES = 2000


def bootstrap_quantile(
    sorted_samples: FloatArray, q: float, resamples: int, rng: np.random.Generator
) -> FloatArray:
    """``resamples`` bootstrap replicates of the q-quantile (0-1, numpy's linear method).

    Exact nonparametric bootstrap without building the resamples: drawing n values with
    replacement from sorted data x is drawing n uniform indices, so the k-th smallest value of a
    resample is x[floor(n * U)], U being the k-th order statistic of n uniforms, a Beta(k, n-k+1)
    variable; the next order statistic is U + (1-U) * Beta(1, n-k). The replicate of numpy's
    linear percentile interpolates between the two, as numpy does on the resample. This gives the
    same distribution as resampling and sorting, in O(resamples) time whatever n is.
    """
    x = sorted_samples
    n = int(x.size)
    if n == 0:
        raise ValueError("bootstrap_quantile needs at least one sample")
    if n == 1:
        return np.full(resamples, float(x[0]))
    h = (n - 1) * q
    k = min(math.floor(h), n - 1)  # 0-based rank of the lower order statistic
    frac = h - k
    u1 = rng.beta(k + 1, n - k, size=resamples)
    i1 = np.minimum((u1 * n).astype(np.int64), n - 1)
    lower = x[i1]
    if frac == 0.0 or k + 1 >= n:
        return np.asarray(lower, dtype=np.float64)
    u2 = u1 + (1.0 - u1) * rng.beta(1, n - k - 1, size=resamples)
    i2 = np.minimum((u2 * n).astype(np.int64), n - 1)
    return np.asarray(lower + frac * (x[i2] - lower), dtype=np.float64)


def ratio_ci(
    current: FloatArray,
    baseline: FloatArray,
    q: float,
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio current/baseline of the q-quantile (0-1) with a percentile bootstrap interval.

    Each sample is resampled independently (they are separate runs); the interval is the
    (1-confidence)/2 and (1+confidence)/2 percentiles of the bootstrap ratios. Returns
    (estimate, low, high); the estimate is the ratio of the sample quantiles.
    """
    cur = np.sort(np.asarray(current, dtype=np.float64))
    base = np.sort(np.asarray(baseline, dtype=np.float64))
    if cur.size == 0 or base.size == 0:
        raise ValueError("ratio_ci needs samples on both sides")
    rng = np.random.default_rng(seed)
    q_cur = float(np.quantile(cur, q))
    q_base = float(np.quantile(base, q))
    boot_cur = bootstrap_quantile(cur, q, resamples, rng)
    boot_base = bootstrap_quantile(base, q, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = boot_cur / boot_base
        estimate = q_cur / q_base if q_base > 0 else math.inf
    ratios = np.where(np.isnan(ratios), 1.0, ratios)  # 0/0: both resamples at zero
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(estimate), float(low), float(high)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (no continuity correction)."""
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_diff_ci(
    x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Difference p1 - p2 of two independent proportions with Newcombe's hybrid score interval.

    Newcombe (1998), method 10: combines the two Wilson intervals; good coverage even at rates
    near zero, where the Wald interval collapses. Returns (difference, low, high).
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, max(-1.0, low), min(1.0, high)
