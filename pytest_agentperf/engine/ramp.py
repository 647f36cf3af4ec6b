"""A k6-style ramp: a level (arrival rate, or closed-loop workers) that moves linearly from one
target to the next over each stage; its integral turns a count of arrivals into a time.

Arrivals follow the instantaneous rate exactly through the inverse of the integrated rate
Lambda(t): the i-th constant arrival is at Lambda^-1(i), and a Poisson process of that rate is
Lambda^-1 of a unit-rate Poisson process (the time-change theorem), so no thinning is needed and
the same seed gives the same schedule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

EPSILON = 1e-6
"""Seconds past the instant a worker's level is reached: it is then strictly above it."""


@dataclass(frozen=True)
class Segment:
    """One stage: from ``t0`` to ``t1`` seconds the level goes from ``a`` to ``b``; ``area0`` is
    the integral of the level before ``t0``."""

    t0: float
    t1: float
    a: float
    b: float
    area0: float

    @property
    def area(self) -> float:
        return (self.a + self.b) / 2 * (self.t1 - self.t0)


class Ramp:
    """The level over a run made of ``stages`` ((duration, target), ...), starting at
    ``start``."""

    def __init__(self, start: float, stages: Sequence[tuple[float, float]]) -> None:
        self.segments: list[Segment] = []
        t = area = 0.0
        level = start
        for duration, target in stages:
            seg = Segment(t, t + duration, level, target, area)
            self.segments.append(seg)
            t, area, level = seg.t1, area + seg.area, target
        self.duration = t
        self.total = area
        self.peak = max([start, *(target for _, target in stages)])

    def level(self, t: float) -> float:
        """The level at ``t`` seconds (the last target after the end)."""
        for seg in self.segments:
            if t < seg.t1:
                if t <= seg.t0:
                    return seg.a
                return seg.a + (seg.b - seg.a) * (t - seg.t0) / (seg.t1 - seg.t0)
        return self.segments[-1].b if self.segments else 0.0

    def cumulative(self, t: float) -> float:
        """The integral of the level from 0 to ``t`` (expected arrivals by ``t``)."""
        for seg in self.segments:
            if t < seg.t1:
                s = max(0.0, t - seg.t0)
                return seg.area0 + seg.a * s + (seg.b - seg.a) * s * s / (2 * (seg.t1 - seg.t0))
        return self.total

    def time_of(self, c: float) -> float | None:
        """The time at which ``cumulative`` reaches ``c``; None when it does not by the end."""
        if c <= 0:
            return 0.0
        for seg in self.segments:
            if c > seg.area0 + seg.area or seg.area <= 0:
                continue
            # solve a*s + k*s^2/2 = rest for s in the stage, k the slope; the form
            # 2*rest / (a + sqrt(a^2 + 2*k*rest)) is stable for k near 0 and for a = 0
            rest = c - seg.area0
            k = (seg.b - seg.a) / (seg.t1 - seg.t0)
            root = math.sqrt(max(0.0, seg.a * seg.a + 2 * k * rest))
            s = 2 * rest / (seg.a + root) if seg.a + root > 0 else 0.0
            return min(seg.t0 + s, seg.t1)
        return None

    def next_active(self, worker: int, t: float) -> float | None:
        """The first time from ``t`` on at which the level is above ``worker`` (closed loop:
        worker ``worker`` may make calls), or None when it never is before the end."""
        for seg in self.segments:
            if seg.t1 <= t:
                continue
            start = max(t, seg.t0)
            if self.level(start) > worker:
                return start
            if seg.b > worker:  # rising through the worker's level within this stage
                cross = seg.t0 + (worker - seg.a) / (seg.b - seg.a) * (seg.t1 - seg.t0)
                return max(start, cross) + EPSILON
        return None
