"""Early abort, k6-style: stop a run once a budget named in ``abort_on`` is broken beyond doubt.

The monitor is a :class:`RunObserver`. It judges the calls completed *so far* (the same
cumulative figures the budget is checked on at the end, so an abort never contradicts the final
verdict by design), and only aborts on evidence, not on a point estimate:

- ``error_rate`` / ``timeout_rate``: the one-sided Wilson lower confidence bound of the rate is
  above the limit (from 20 calls on).
- ``p50`` ... ``p99``: more successful calls are slower than the limit than the percentile allows,
  beyond chance: P(Binomial(n, 1 - q) >= k) <= 1 - confidence, with k calls above the limit out
  of n successful ones. Equivalently, an order-statistic lower confidence bound of the percentile
  is above the limit. Needs at least 20 successful calls and ``min_samples_for(q)`` (59 for p95,
  299 for p99).
- ``mean_latency``: the normal-theory lower bound mean - z * sd / sqrt(n) is above the limit
  (n >= 30; for right-skewed latencies this bound is conservative).
- ``max_latency``: one successful call slower than the limit (certain: the maximum only grows).
- ``memory``: peak RSS growth so far above the limit (certain: the peak only grows); needs the
  memory sampler.

Other budgets (throughput, tokens, cost, TTFT/ITL, memory slope, drift) are not judged early: a
partial run is no evidence about them; they are checked when the run ends as usual. Which rule
applies to a budget is its ``BudgetSpec.early`` (``budgets.Early``); this module implements the
rules.

Looking again and again at a growing sample inflates the chance of a false alarm, so checks are
spaced geometrically (each time the number of completed calls has grown by 10 %, not at every
tick) and use 99 % confidence: with the true error rate at half its budget, about 0.4 % of runs
of 200-5000 calls abort (about 3 % at 95 %); see docs/memory-and-soak.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..budgets import BUDGETS, Early
from ..stats import min_samples_for
from ..units import format_value

MIN_CALLS = 20
CONFIDENCE = 0.99
GROWTH = 1.1


class _View(Protocol):
    """The part of the engine's LiveView the monitor reads."""

    @property
    def done(self) -> int: ...

    @property
    def errors(self) -> int: ...

    def arrays(
        self,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int8]]: ...


class _Memory(Protocol):
    @property
    def growth_mb(self) -> float | None: ...


def wilson_lower(successes: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided Wilson score lower bound of a proportion ``successes / n``."""
    if n <= 0:
        return 0.0
    z = NormalDist().inv_cdf(confidence)
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z2 / n))


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (summed in log space from k up)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)

    def log_pmf(j: int) -> float:
        return (
            math.lgamma(n + 1)
            - math.lgamma(j + 1)
            - math.lgamma(n - j + 1)
            + j * log_p
            + (n - j) * log_q
        )

    mode = math.floor((n + 1) * p)
    if k <= mode:
        # Sum the (shorter) lower tail below k instead, terms shrinking away from the mode.
        total, j = 0.0, k - 1
        term = math.exp(log_pmf(j))
        while j >= 0 and term > 0:
            total += term
            if term < total * 1e-17:
                break
            term *= j / (n - j + 1) * (1 - p) / p
            j -= 1
        return max(0.0, 1.0 - total)
    total, j = 0.0, k
    term = math.exp(log_pmf(j))
    while j <= n and term > 0:
        total += term
        if term < total * 1e-17:
            break
        term *= (n - j) / (j + 1) * p / (1 - p)
        j += 1
    return min(1.0, total)


def exceedances_needed(n: int, q: float, confidence: float = CONFIDENCE) -> int | None:
    """Smallest k such that k of n samples above a limit prove the q-th percentile exceeds it:
    P(Binomial(n, 1 - q/100) >= k) <= 1 - confidence. None when even k = n is not enough."""
    p = 1.0 - q / 100.0
    alpha = 1.0 - confidence
    k = max(1, math.floor(n * p))
    while k <= n:
        if binom_sf(k, n, p) <= alpha:
            return k
        k += 1
    return None


def judge(
    name: str,
    limit: float,
    start: npt.ArrayLike,
    end: npt.ArrayLike,
    status: npt.ArrayLike,
    *,
    confidence: float = CONFIDENCE,
    min_calls: int = MIN_CALLS,
) -> str | None:
    """Why budget ``name`` is broken beyond doubt by the completed calls given, or None.

    ``start``/``end`` are seconds (latency = end - start), ``status`` 0 ok, 1 error, 2 timeout.
    Not for ``Early.PEAK_MEMORY`` (see ``AbortMonitor``) nor budgets without ``early`` (always
    None).
    """
    spec = BUDGETS[name]
    early = spec.early
    st = np.asarray(status)
    n = int(st.size)
    conf = f"{confidence * 100:.3g}%"
    lim = format_value(limit, spec.unit)
    if early in (Early.ERRORS, Early.TIMEOUTS):
        if n < min_calls:
            return None
        bad = int(np.count_nonzero(st != 0 if early is Early.ERRORS else st == 2))
        low = wilson_lower(bad, n, confidence)
        if low <= limit:
            return None
        return (
            f"{spec.label} {format_value(bad / n, spec.unit)} > budget {lim} "
            f"({conf} lower bound {format_value(low, spec.unit)})"
        )
    if early not in (Early.MAX, Early.MEAN, Early.PERCENTILE):
        return None
    ok = st == 0
    latency = (np.asarray(end, dtype=np.float64) - np.asarray(start, dtype=np.float64))[ok]
    m = int(latency.size)
    if early is Early.MAX:
        if m == 0 or float(latency.max()) <= limit:
            return None
        worst = format_value(float(latency.max()), spec.unit)
        return f"{spec.label} {worst} > budget {lim} (a call already took longer)"
    if early is Early.MEAN:
        if m < max(min_calls, 30):
            return None
        mean = float(latency.mean())
        low = mean - NormalDist().inv_cdf(confidence) * float(latency.std(ddof=1)) / math.sqrt(m)
        if low <= limit:
            return None
        return (
            f"{spec.label} {format_value(mean, spec.unit)} > budget {lim} "
            f"({conf} lower bound {format_value(low, spec.unit)})"
        )
    assert spec.percentile is not None, f"budget {name!r}: Early.PERCENTILE needs percentile="
    q = float(spec.percentile)
    if m < max(min_calls, min_samples_for(q)):
        return None
    k = exceedances_needed(m, q, confidence)
    above = int(np.count_nonzero(latency > limit))
    if k is None or above < k:
        return None
    bound = float(np.partition(latency, m - k)[m - k])
    value = float(np.percentile(latency, q))
    return (
        f"{spec.label} {format_value(value, spec.unit)} > budget {lim} "
        f"({conf} lower bound {format_value(bound, spec.unit)}; {above} of {m} successful calls "
        f"slower than {lim})"
    )


class AbortMonitor:
    """RunObserver that returns an abort reason once a budget in ``abort_on`` is broken beyond
    doubt. ``memory`` is the run's memory sampler, needed to judge the ``memory`` budget."""

    def __init__(
        self,
        abort_on: Sequence[str],
        budgets: Mapping[str, float],
        *,
        memory: _Memory | None = None,
        confidence: float = CONFIDENCE,
        min_calls: int = MIN_CALLS,
    ) -> None:
        early = {n for n in abort_on if n in BUDGETS and BUDGETS[n].early is not None}
        self.names = tuple(n for n in abort_on if n in budgets and n in early)
        self.ignored = tuple(n for n in abort_on if n not in early)
        self._budgets = dict(budgets)
        self._memory = memory
        self._confidence = confidence
        self._min_calls = min_calls
        self._next = 1
        self.checks = 0
        self.reason: str | None = None

    def on_start(self, t0: float) -> None:
        self._next = 1
        self.checks = 0
        self.reason = None

    def on_stop(self) -> None:
        return None

    def result_fields(self, log: object = None, duration: float = 0.0) -> dict[str, Any]:
        """Nothing: the engine itself reports the abort reason (``PerfResult.aborted``)."""
        return {}

    def on_tick(self, view: _View) -> str | None:
        if self.reason is not None or not self.names:
            return self.reason
        done = int(view.done)
        why = self._memory_reason()
        if why is None and done >= self._next:
            self._next = max(done + 1, math.ceil(done * GROWTH))
            self.checks += 1
            why = self._judge(view)
        if why is not None:
            self.reason = f"aborted after {done} call{'s' if done != 1 else ''}: {why}"
        return self.reason

    def _memory_reason(self) -> str | None:
        if self._memory is None:
            return None
        for name in self.names:
            spec = BUDGETS[name]
            if spec.early is not Early.PEAK_MEMORY:
                continue
            growth = self._memory.growth_mb
            limit = self._budgets[name]
            if growth is None or growth <= limit:
                continue
            return (
                f"{spec.label} {format_value(growth, spec.unit)} > budget "
                f"{format_value(limit, spec.unit)} (already reached)"
            )
        return None

    def _judge(self, view: _View) -> str | None:
        names = [n for n in self.names if BUDGETS[n].early is not Early.PEAK_MEMORY]
        if not names:
            return None
        start, end, status = view.arrays()
        for name in names:
            why = judge(
                name,
                self._budgets[name],
                start,
                end,
                status,
                confidence=self._confidence,
                min_calls=self._min_calls,
            )
            if why is not None:
                return why
        return None
