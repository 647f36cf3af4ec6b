"""Paired statistics of two arms over the same randomized blocks.

A block is the unit: both arms ran it in the same stretch of time, shuffled together, so a
slow stretch of the machine slows both. The bootstrap therefore resamples blocks, the same
blocks for both arms (paired), and recomputes the metric of each arm over the resampled
blocks: drift between blocks moves both arms' replicates together and cancels in their ratio,
while the spread of the calls within blocks is what the interval measures. Resampling a
block k times is weighting its calls by k, so each replicate is a weighted statistic (no
resample is built). The interval is the percentile interval of the replicate ratios.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from ..results import FloatArray, IntArray, Ratio
from ..stats import BOOTSTRAP_RESAMPLES, proportion_diff_ci
from .split import ArmCalls

CONFIDENCE = 0.99
"""Two-sided confidence of the intervals: an arm is "worse" only when the whole interval is
above 1, which an unchanged arm shows in about 0.5 % of comparisons (A/A; benchmarks/
ab_validity.py measures it on a drifting machine)."""
SAME_WITHIN = 0.05
"""An interval inside [1/1.05, 1.05] says "same": any difference is under 5 %."""
COMPARED_METRICS = ("p50", "p95", "mean_latency", "ttft_p95", "tokens_per_call", "cost_per_call")
"""The metrics ``CompareResult.ratio`` compares (arm over reference; lower is better)."""
CHUNK_CELLS = 1 << 20
"""Replicate-by-call cells a weighted quantile holds at once (8 MiB of float64)."""
ERROR_RATE = "error_rate"
"""The error-rate difference (arm minus reference), listed after the ratios."""


@dataclass(frozen=True)
class _Series:
    """One arm's values of one metric over the blocks both arms share."""

    values: FloatArray
    block: IntArray
    """The index (0 .. blocks-1, among the shared blocks) of each value's block."""


def _quantile(q: float) -> Callable[[FloatArray, IntArray, npt.NDArray[np.float64]], FloatArray]:
    """The q-quantile of the values weighted by their block's resample count, per replicate
    (the inverted empirical distribution: the smallest value whose cumulative weight reaches
    q of the total)."""

    def stat(values: FloatArray, block: IntArray, weights: npt.NDArray[np.float64]) -> FloatArray:
        order = np.argsort(values, kind="stable")
        v, b = values[order], block[order]
        out = np.empty(weights.shape[0], dtype=np.float64)
        step = max(1, CHUNK_CELLS // max(1, v.size))  # replicates per chunk: bounded memory
        for lo in range(0, weights.shape[0], step):
            w = weights[lo : lo + step, b]  # each value weighted by its block's count
            cum = np.cumsum(w, axis=1)
            target = q * cum[:, -1:]
            out[lo : lo + step] = v[np.minimum((cum < target).sum(axis=1), v.size - 1)]
        return out

    return stat


def _mean(values: FloatArray, block: IntArray, weights: npt.NDArray[np.float64]) -> FloatArray:
    nb = weights.shape[1]
    sums = np.bincount(block, weights=values, minlength=nb)
    counts = np.bincount(block, minlength=nb).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((weights @ sums) / (weights @ counts), dtype=np.float64)


_STATS = {
    "p50": _quantile(0.50),
    "p95": _quantile(0.95),
    "mean_latency": _mean,
    "ttft_p95": _quantile(0.95),
    "tokens_per_call": _mean,
    "cost_per_call": _mean,
}


def _values(metric: str, calls: ArmCalls) -> tuple[FloatArray, IntArray]:
    if metric in ("p50", "p95", "mean_latency"):
        return calls.latency[calls.ok], calls.block[calls.ok]
    if metric == "ttft_p95":
        has = ~np.isnan(calls.ttft)
        return calls.ttft[has], calls.block[has]
    series = calls.tokens if metric == "tokens_per_call" else calls.cost
    if series.size and bool(np.isnan(series).any()):
        return np.zeros(0), np.zeros(0, dtype=np.int64)  # unknown for some call: not compared
    return series, calls.block


_QUANTILES = frozenset({"p50", "p95", "ttft_p95"})
"""Metrics whose calls are levelled by block before the quantiles are taken."""


def _levelled(a: _Series, r: _Series, blocks: int) -> tuple[_Series, _Series]:
    """Both arms' values, each divided by its block's level: the median of both arms' values
    in that block.

    A stretch in which the machine was slow raises every call of a block, of both arms; taken
    out, the quantiles compare the arms at one common level. Without it a quantile of calls
    pooled over slow and fast stretches can sit in the gap between the two (a bimodal mix),
    where a resample moves it a long way, and the interval becomes uselessly wide. The level
    cancels in the ratio when one arm is a constant factor of the other.
    """
    both = np.concatenate((a.values, r.values))
    block = np.concatenate((a.block, r.block))
    order = np.lexsort((both, block))
    sorted_values, sorted_blocks = both[order], block[order]
    starts = np.searchsorted(sorted_blocks, np.arange(blocks))
    ends = np.searchsorted(sorted_blocks, np.arange(blocks), side="right")
    lower = sorted_values[(starts + ends - 1) // 2]
    upper = sorted_values[(starts + ends) // 2]
    level = (lower + upper) / 2.0  # each block's median
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(level > 0, level, 1.0)
    return _Series(a.values / scale[a.block], a.block), _Series(r.values / scale[r.block], r.block)


def verdict(low: float, high: float) -> str:
    """ "worse" when the interval is above 1, "better" below, "same" within ``SAME_WITHIN``,
    else "inconclusive"."""
    if low > 1.0:
        return "worse"
    if high < 1.0:
        return "better"
    if low >= 1.0 / (1.0 + SAME_WITHIN) and high <= 1.0 + SAME_WITHIN:
        return "same"
    return "inconclusive"


def paired_ratio(
    metric: str,
    arm: ArmCalls,
    reference: ArmCalls,
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Ratio:
    """``metric`` of ``arm`` over ``reference`` with a paired bootstrap over their shared
    blocks; an unknown ``Ratio`` (estimate None) when either arm has no values."""
    if metric not in _STATS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(COMPARED_METRICS)}")
    a_values, a_block = _values(metric, arm)
    r_values, r_block = _values(metric, reference)
    shared = np.intersect1d(a_block, r_block)
    if shared.size == 0:
        return Ratio(metric)
    a_in, r_in = np.isin(a_block, shared), np.isin(r_block, shared)
    a = _Series(a_values[a_in], np.searchsorted(shared, a_block[a_in]))
    r = _Series(r_values[r_in], np.searchsorted(shared, r_block[r_in]))
    if metric in _QUANTILES:
        a, r = _levelled(a, r, shared.size)
    stat = _STATS[metric]
    ones = np.ones((1, shared.size))
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = float(stat(a.values, a.block, ones)[0] / stat(r.values, r.block, ones)[0])
    rng = np.random.default_rng(seed)
    # each replicate draws shared.size blocks with replacement: its count of each block
    counts = rng.multinomial(shared.size, np.full(shared.size, 1.0 / shared.size), resamples)
    weights = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = stat(a.values, a.block, weights) / stat(r.values, r.block, weights)
    ratios = np.where(np.isnan(ratios), 1.0, ratios)  # 0/0: both at zero in that replicate
    alpha = (1.0 - confidence) / 2.0
    low, high = (float(v) for v in np.quantile(ratios, [alpha, 1.0 - alpha]))
    if not math.isfinite(estimate):
        return Ratio(metric, None, None, None, "inconclusive", int(shared.size))
    low, high = _expanded(estimate, low, high, shared.size, confidence)
    return Ratio(metric, estimate, low, high, verdict(low, high), int(shared.size))


def _t_quantile(p: float, df: int) -> float:
    """Student's t quantile (Cornish-Fisher expansion around the normal; within 0.1 % for
    df >= 10, which is where it is used)."""
    z = NormalDist().inv_cdf(p)
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def _expanded(
    estimate: float, low: float, high: float, blocks: int, confidence: float
) -> tuple[float, float]:
    """The percentile interval widened for the few units it resamples (Hesterberg's
    "expanded percentile" interval, 2015): a bootstrap over ``blocks`` units is too narrow by
    about sqrt((b-1)/b) and by using z where Student's t with b-1 degrees of freedom applies.
    Widened on the log scale, around the estimate; a 99 % interval over 30 blocks grows by
    about 9 %. Without it an unchanged arm showed "worse" in 2-3 % of simulated A/A runs."""
    if blocks < 3 or estimate <= 0 or low <= 0 or high <= 0:
        return low, high
    p = 0.5 + confidence / 2.0
    factor = math.sqrt(blocks / (blocks - 1)) * _t_quantile(p, blocks - 1) / NormalDist().inv_cdf(p)
    centre = math.log(estimate)
    return (
        math.exp(centre - factor * (centre - math.log(low))),
        math.exp(centre + factor * (math.log(high) - centre)),
    )


def error_rate_difference(
    arm: ArmCalls, reference: ArmCalls, confidence: float = CONFIDENCE
) -> Ratio:
    """Error rate of ``arm`` minus that of ``reference``, with Newcombe's interval for two
    proportions (good at rates near zero, where a bootstrap would collapse): "worse" when the
    interval is above 0, "better" below, "same" when it is within one percentage point."""
    n_a, n_r = int(arm.ok.size), int(reference.ok.size)
    if n_a == 0 or n_r == 0:
        return Ratio(ERROR_RATE)
    x_a = n_a - int(np.count_nonzero(arm.ok))
    x_r = n_r - int(np.count_nonzero(reference.ok))
    diff, low, high = proportion_diff_ci(x_a, n_a, x_r, n_r, confidence)
    if low > 0:
        word = "worse"
    elif high < 0:
        word = "better"
    elif low >= -0.01 and high <= 0.01:
        word = "same"
    else:
        word = "inconclusive"
    blocks = int(np.intersect1d(arm.block, reference.block).size)
    return Ratio(ERROR_RATE, diff, low, high, word, blocks)
