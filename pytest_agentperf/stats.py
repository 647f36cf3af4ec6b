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


def block_length(series: FloatArray, q: float | None = None) -> int:
    """Block length for a circular block bootstrap of ``series`` (in time order), from the data.

    Politis & White (2004) with the correction of Patton, Politis & White (2009): the
    autocorrelations of the series pick a bandwidth M (twice the first lag after which K_n
    autocorrelations in a row are insignificant), a flat-top window estimates the long-run
    variance g and the weighted sum G of |k| R(k), and the optimal circular-block length is
    (2 G^2 / D)^(1/3) n^(1/3) with D = 4/3 g^2. With ``q`` (0-1) the series analysed is the
    indicator "latency <= its q-quantile", whose long-run variance is what governs the
    sampling error of that quantile; without, the series itself. Independent calls give 1.
    """
    x = np.asarray(series, dtype=np.float64)
    n = int(x.size)
    if n < 8:
        return 1
    if q is not None:
        x = (x <= np.quantile(x, q)).astype(np.float64)
    x = x - x.mean()
    var = float(x @ x) / n
    if var <= 0.0:
        return 1
    kn = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = min(math.ceil(math.sqrt(n)) + kn, n - 1)
    acv = np.array([float(x[k:] @ x[: n - k]) / n for k in range(m_max + 1)])
    rho = acv / var
    threshold = 2.0 * math.sqrt(math.log10(n) / n)
    insignificant = np.abs(rho[1:]) < threshold  # insignificant[j] is lag j + 1
    m_hat = None
    for m in range(0, m_max - kn + 1):
        if insignificant[m : m + kn].all():
            m_hat = m
            break
    big_m = m_max if m_hat is None else min(max(2 * m_hat, 1), m_max)
    k = np.arange(1, big_m + 1, dtype=np.float64)
    t = k / big_m
    lam = np.where(t <= 0.5, 1.0, 2.0 * (1.0 - t))
    g0 = acv[0] + 2.0 * float(np.sum(lam * acv[1 : big_m + 1]))
    big_g = 2.0 * float(np.sum(lam * k * acv[1 : big_m + 1]))
    if g0 <= 0.0 or big_g == 0.0:
        return 1
    b = (2.0 * big_g**2 / (4.0 / 3.0 * g0**2)) ** (1.0 / 3.0) * n ** (1.0 / 3.0)
    b_max = math.ceil(min(3.0 * math.sqrt(n), n / 3.0))
    return int(min(max(round(b), 1), b_max))


BOOTSTRAP_CHUNK = 256
"""Resamples built at once by the block bootstrap (bounds its memory to chunk x n floats)."""


def block_bootstrap_quantile(
    series: FloatArray, q: float, resamples: int, block: int, rng: np.random.Generator
) -> FloatArray:
    """``resamples`` circular-block-bootstrap replicates of the q-quantile (0-1) of ``series``.

    Each resample glues ceil(n / block) blocks of ``block`` consecutive values (wrapping
    around the end), starting at uniform positions, and is cut to n values: calls that ran
    together stay together, so a wave of delayed calls moves the replicates as it moved the
    run. ``block`` 1 is the ordinary bootstrap, computed exactly by ``bootstrap_quantile``.
    """
    x = np.asarray(series, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        raise ValueError("block_bootstrap_quantile needs at least one sample")
    if block <= 1 or n == 1:
        return bootstrap_quantile(np.sort(x), q, resamples, rng)
    blocks = -(-n // block)
    offsets = np.arange(block)
    wrapped = np.concatenate([x, x[: block - 1]])  # x[(s + j) % n] without the modulo
    h = (n - 1) * q  # numpy's linear percentile: between order statistics k and k + 1
    k = min(math.floor(h), n - 1)
    frac = h - k
    out = np.empty(resamples, dtype=np.float64)
    for lo in range(0, resamples, BOOTSTRAP_CHUNK):
        hi = min(resamples, lo + BOOTSTRAP_CHUNK)
        starts = rng.integers(0, n, size=(hi - lo, blocks))
        idx = (starts[:, :, None] + offsets).reshape(hi - lo, blocks * block)[:, :n]
        # one partition at k; the (k+1)-th smallest is then the least of what lies above it
        part = np.partition(wrapped[idx], k, axis=1)
        lower = part[:, k]
        if frac > 0.0 and k + 1 < n:
            out[lo:hi] = lower + frac * (part[:, k + 1 :].min(axis=1) - lower)
        else:
            out[lo:hi] = lower
    return out


def ratio_ci(
    current: FloatArray,
    baseline: FloatArray,
    q: float,
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    current_in_order: bool = True,
    baseline_in_order: bool = True,
    current_min_block: int = 1,
    baseline_min_block: int = 1,
) -> tuple[float, float, float]:
    """Ratio current/baseline of the q-quantile (0-1) with a percentile bootstrap interval.

    Each run is resampled on its own (they are separate runs) by a circular block bootstrap
    over its calls in start order, the block length chosen from the data (``block_length`` of
    the q-indicator): correlated calls (waves delayed together) widen the interval, while
    independent calls get blocks of 1, the ordinary bootstrap. A side whose samples are not in
    time order (``*_in_order`` False, e.g. an old sorted baseline) is resampled as independent.
    ``*_min_block`` is a floor for the block length, e.g. the calls that were in flight together
    (``calls_in_flight``): a wave hits every call in flight, whatever the data can show.
    The interval is the (1-confidence)/2 and (1+confidence)/2 percentiles of the bootstrap
    ratios. Returns (estimate, low, high); the estimate is the ratio of the sample quantiles.
    """
    cur = np.asarray(current, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    if cur.size == 0 or base.size == 0:
        raise ValueError("ratio_ci needs samples on both sides")
    rng = np.random.default_rng(seed)
    q_cur = float(np.quantile(cur, q))
    q_base = float(np.quantile(base, q))
    b_cur = _block(cur, q, current_min_block) if current_in_order else 1
    b_base = _block(base, q, baseline_min_block) if baseline_in_order else 1
    boot_cur = block_bootstrap_quantile(cur, q, resamples, b_cur, rng)
    boot_base = block_bootstrap_quantile(base, q, resamples, b_base, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = boot_cur / boot_base
        estimate = q_cur / q_base if q_base > 0 else math.inf
    ratios = np.where(np.isnan(ratios), 1.0, ratios)  # 0/0: both resamples at zero
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(estimate), float(low), float(high)


def _block(series: FloatArray, q: float, floor: int) -> int:
    """The block length of ``series``: from the data, at least ``floor``, at most n / 3."""
    n = int(series.size)
    return max(1, min(max(block_length(series, q), floor), n // 3))


def calls_in_flight(throughput: float, mean_latency: float | None, n: int, kept: int) -> int:
    """Calls in flight at once on average (Little's law: throughput x mean latency), counted
    in kept samples when only ``kept`` of the ``n`` calls are kept (evenly spaced in time)."""
    if mean_latency is None or not math.isfinite(throughput * mean_latency) or n <= 0:
        return 1
    in_flight = throughput * mean_latency * min(1.0, kept / n)
    return max(1, math.ceil(in_flight - 1e-9))


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
