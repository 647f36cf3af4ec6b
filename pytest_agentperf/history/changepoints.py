"""Change points of a series of per-session figures: E-Divisive means with a Student t-test.

The method of Hunter / Apache Otava (Fleming et al., ICPE 2023), which replaced the
permutation test of MongoDB's E-Divisive (Daly et al., ICPE 2020; Matteson & James, JASA
2014) by a t-test so that the result is deterministic and cheap:

1. Candidate: within a stretch ``z[s:e]`` the split tau (with a right end kappa) that maximises
   the energy statistic Q(tau, kappa) = m n / (m + n) * E, where E is twice the mean distance
   between the n points before tau and the m points from tau on, less the mean distance
   within each side (Matteson & James, alpha = 1). Q is large where the two sides differ in
   level, whatever their distribution.
2. Significance: Student's t-test (pooled variance) between the points before the candidate
   and after it, up to the neighbouring change points. A candidate with p below the
   threshold is a change point; its stretch is split and the search goes on; the first
   candidate that is not significant ends it.
3. Split step: steps 1-2 run in sliding windows (``window`` points, moving by half a window)
   with a relaxed threshold (ten times ``p``), so that a long history does not hide a small,
   recent step behind an old, large one. The union of what they find are the weak change
   points.
4. Merge step: every weak change point is re-tested against its neighbours on the whole
   series; the one with the largest p-value above ``p`` is dropped (or, when all pass, the
   one with the smallest relative change below ``min_change``) and its neighbours re-tested,
   until every change point passes both.

Everything is deterministic (no resampling), O(w^2) per window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..results import FloatArray
from .tdist import t_two_sided

DEFAULT_P = 0.001
"""Significance a change point needs (Hunter / Otava's default)."""
DEFAULT_MIN_CHANGE = 0.05
"""Smallest relative change (after / before - 1, either way) reported (asv's default step)."""
DEFAULT_WINDOW = 50
"""Points per sliding window of the split step (Hunter / Otava's default)."""
DEFAULT_MIN_SIZE = 5
"""Fewest points on each side of a change point: a few slow sessions are not a new level
(Chromium's perf dashboard uses 6)."""


@dataclass(frozen=True)
class ChangePoint:
    """A lasting change of level: the series is at ``before`` up to ``index`` (exclusive), at
    ``after`` from it, ``p_value`` being the t-test's between the neighbouring change points."""

    index: int
    """Position in the series of the first point at the new level."""
    before: float
    """Mean of the points from the previous change point up to ``index``."""
    after: float
    """Mean of the points from ``index`` up to the next change point."""
    stdev_before: float
    stdev_after: float
    p_value: float

    @property
    def change(self) -> float:
        """after / before - 1 (inf when it rose from 0, 0 when both are 0)."""
        if self.before == 0.0:
            return 0.0 if self.after == 0.0 else math.copysign(math.inf, self.after)
        return self.after / self.before - 1.0

    @property
    def magnitude(self) -> float:
        """The larger relative change of the two directions, so a halving and a doubling
        count alike."""
        back = 0.0 if self.after == 0.0 else abs(self.before / self.after - 1.0)
        if self.before == 0.0:
            return 0.0 if self.after == 0.0 else math.inf
        return max(abs(self.change), back)


def t_test(left: FloatArray, right: FloatArray) -> float:
    """Two-sided p-value of Student's t-test (pooled variance) that both have one mean."""
    n1, n2 = int(left.size), int(right.size)
    if n1 == 0 or n2 == 0 or n1 + n2 <= 2:
        return 1.0
    m1, m2 = float(left.mean()), float(right.mean())
    ss = float(((left - m1) ** 2).sum() + ((right - m2) ** 2).sum())
    df = n1 + n2 - 2
    spread = math.sqrt(ss / df) * math.sqrt(1.0 / n1 + 1.0 / n2)
    if spread == 0.0 or not math.isfinite(spread):
        # no noise at all: any difference is certain, none is nothing
        return 1.0 if m1 == m2 else 0.0
    return t_two_sided((m2 - m1) / spread, df)


def _block(prefix: Any, r0: Any, r1: Any, c0: Any, c1: Any) -> FloatArray:
    """Sums of the distance matrix over rows [r0, r1) and columns [c0, c1), elementwise
    (``prefix`` holds its 2-D running sums, with a zero first row and column)."""
    out: FloatArray = prefix[r1, c1] - prefix[r0, c1] - prefix[r1, c0] + prefix[r0, c0]
    return out


def candidate(values: FloatArray, min_size: int = DEFAULT_MIN_SIZE) -> tuple[int, float] | None:
    """The split of ``values`` that maximises the E-Divisive statistic Q(tau, kappa), as
    (tau, Q); None when it is too short for ``min_size`` points on each side."""
    n = int(values.size)
    size = max(1, min_size)
    if n < 2 * size:
        return None
    dist = np.abs(values[:, None] - values[None, :])
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = dist.cumsum(axis=0).cumsum(axis=1)
    taus, kappas = np.meshgrid(np.arange(size, n - size + 1), np.arange(2 * size, n + 1))
    ok = kappas - taus >= size
    tau, kappa = taus[ok], kappas[ok]
    left = tau.astype(np.float64)  # n: points before tau (the stretch starts at 0)
    right = (kappa - tau).astype(np.float64)  # m: points in [tau, kappa)
    between = _block(prefix, 0, tau, tau, kappa)
    within_left = _block(prefix, 0, tau, 0, tau) / 2.0  # each pair once
    within_right = _block(prefix, tau, kappa, tau, kappa) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        energy = (
            2.0 * between / (left * right)
            - np.where(left > 1, 2.0 * within_left / (left * (left - 1.0)), 0.0)
            - np.where(right > 1, 2.0 * within_right / (right * (right - 1.0)), 0.0)
        )
    q = left * right / (left + right) * energy
    best = int(np.argmax(q))
    return int(tau[best]), float(q[best])


def _stats(values: FloatArray, index: int, start: int, end: int) -> ChangePoint:
    left, right = values[start:index], values[index:end]
    return ChangePoint(
        index=index,
        before=float(left.mean()),
        after=float(right.mean()),
        stdev_before=float(left.std(ddof=1)) if left.size > 1 else 0.0,
        stdev_after=float(right.std(ddof=1)) if right.size > 1 else 0.0,
        p_value=t_test(left, right),
    )


def _restat(values: FloatArray, indices: Sequence[int]) -> list[ChangePoint]:
    """Each change point tested between its neighbours (the series' ends outermost)."""
    bounds = [0, *indices, int(values.size)]
    return [_stats(values, bounds[i + 1], bounds[i], bounds[i + 2]) for i in range(len(indices))]


def detect(values: FloatArray, p: float, min_size: int = DEFAULT_MIN_SIZE) -> list[int]:
    """E-Divisive with the t-test on one stretch: split where Q is largest while the split is
    significant at ``p``; returns the change points' indices, sorted.

    A stretch whose best split leaves fewer than ``min_size`` points on a side has no
    candidate yet: searching only the splits that leave enough would place a step that is
    only a few sessions old too early, so it waits for the sessions that confirm it.
    """
    found: list[int] = []
    while True:
        bounds = [0, *found, int(values.size)]
        best: tuple[float, int, int, int] | None = None  # (Q, tau, start, end)
        for start, end in itertools.pairwise(bounds):
            cand = candidate(values[start:end], 1)
            if cand is None or min(cand[0], end - start - cand[0]) < min_size:
                continue
            if best is None or cand[1] > best[0]:
                best = (cand[1], start + cand[0], start, end)
        if best is None:
            return found
        _, tau, start, end = best
        if _stats(values, tau, start, end).p_value >= p:
            return found
        found = sorted([*found, tau])


def _split(values: FloatArray, window: int, p: float, min_size: int) -> list[int]:
    """The weak change points: ``detect`` in sliding windows, their union."""
    n, step = int(values.size), max(1, window // 2)
    found: set[int] = set()
    start = 0
    while start < n:
        end = min(start + window, n)
        new = [start + i for i in detect(values[start:end], p, min_size)]
        found.update(new)
        start = max(new[-1] if new else 0, start + step)
    return sorted(found)


def _merge(
    values: FloatArray, indices: list[int], p: float, min_change: float
) -> list[ChangePoint]:
    """Drop the weakest change point until each passes ``p`` and ``min_change``."""
    points = _restat(values, indices)
    while points:
        weakest = max(points, key=lambda c: c.p_value)
        if weakest.p_value < p:
            weakest = min(points, key=lambda c: c.magnitude)
            if weakest.magnitude >= min_change:
                return points
        points = _restat(values, [c.index for c in points if c is not weakest])
    return points


def change_points(
    values: Sequence[float] | FloatArray,
    *,
    p: float = DEFAULT_P,
    min_change: float = DEFAULT_MIN_CHANGE,
    window: int = DEFAULT_WINDOW,
    min_size: int = DEFAULT_MIN_SIZE,
) -> list[ChangePoint]:
    """The change points of ``values`` (oldest first; finite numbers), sorted by index.

    ``p``: the t-test's p-value a change point must stay below; ``min_change``: the least
    relative change it must show; ``window``: points per window of the split step;
    ``min_size``: fewest points on each side.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be between 0 and 1, got {p}")
    if window < 2 * max(1, min_size):
        raise ValueError(f"window={window} is too short for min_size={min_size} on each side")
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or not np.isfinite(arr).all():
        raise ValueError("change_points needs a one-dimensional series of finite numbers")
    # the split step is lenient (Hunter's weak change points); the merge step applies p
    relaxed = p * 10.0 if p < 0.05 else (p * 2.0 if p < 0.5 else p)
    return _merge(arr, _split(arr, window, relaxed, min_size), p, min_change)
