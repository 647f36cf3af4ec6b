"""The regression gate: one run compared with its baseline run.

Latency: the ratio now/baseline of p50 and p95 with a seeded percentile-bootstrap interval
(each run resampled on its own, in blocks of calls that ran together: ``stats.ratio_ci``).
A metric is REGRESSED when the whole interval lies above 1 + tolerance, INCONCLUSIVE when only
the point estimate does, IMPROVED when the whole interval lies below 1 / (1 + tolerance) (the
mirror image on a log scale, so a change and its undoing are judged alike), otherwise
UNCHANGED. Error rate: Newcombe's interval on the difference of the two rates against an
absolute tolerance. Tokens, cost and CPU time per call: the ratio of the means against the
tolerance (no interval: only means are recorded). The run's status is the worst of its
metrics.

Contention: a run measured while other processes used clearly more of the machine's CPU than
during the baseline is flagged busy, and a latency regression that contention could explain
is INCONCLUSIVE rather than REGRESSED, unless CPU time per call (which a busy machine hardly
stretches) regressed too. For CPU-bound calls CPU time decides. See ``judge_contention``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

import numpy as np

from ..results import Contention, LoadShape, PerfResult
from ..stats import BOOTSTRAP_RESAMPLES, calls_in_flight, min_samples_for
from .change import CONFIDENCE, MetricChange, Status, format_change
from .environment import Machine
from .metrics import METRICS, STORED, LatencySides, Sides
from .store import BaselineRun, thin_samples

DEFAULT_TOLERANCE = 0.10
"""Relative tolerance of latency, tokens and cost: a change within +-10 % is not a regression."""
ERROR_RATE_TOLERANCE = 0.01
"""Absolute tolerance of the error rate: 1 percentage point."""

BUSY_MARGIN = 0.20
"""A run is busy when other processes (plus steal) used at least this much more of the
machine's whole CPU capacity than during the baseline (0.2: 40 % of one core on 2 cores)."""
BUSY_ALLOWANCE = 0.50
"""On a busy machine a latency rise fails only when its whole interval lies above
(1 + tolerance) x (1 + BUSY_ALLOWANCE): contention alone can stretch wall time that much."""
CPU_BOUND_SHARE = 0.7
"""Calls whose CPU time per call is at least this share of the p50 latency are CPU-bound."""

SHAPE_FIELDS = ("requests", "concurrency", "rate", "arrival", "duration", "stages")


class FlagKind(str, Enum):
    """What a comparison's flag is about; each kind is shown by its own rule."""

    MACHINE = "machine"
    """The baseline was measured on another machine: said once per session, never gated."""
    SMALL_SAMPLE = "small_sample"
    """p95 compared on few samples: worth saying only when the run did not pass."""
    BUSY = "busy"
    """This run saw clearly more contention than its baseline."""
    BUSY_BASELINE = "busy_baseline"
    """The baseline itself was measured under contention."""
    ONE_SIDED = "one_sided"
    """A usage figure is known on one side only, so it was not compared."""
    CONFIRM = "confirm"
    """The run regressed and was measured once more (``--agentperf-confirm``): what the first
    measurement showed."""


@dataclass(frozen=True)
class Flag:
    """A note on a comparison that is not a verdict: its kind and its text."""

    kind: FlagKind
    text: str

    def __str__(self) -> str:
        return self.text


BUSY_FLAG = "machine busy"
"""Starts the text of a ``FlagKind.BUSY`` flag (and of ``Comparison.busy``)."""


@dataclass(frozen=True)
class Comparison:
    """A run compared with its baseline run; ``PerfResult.comparison`` holds it.

    ``metrics`` maps each compared metric's key (``metrics.METRICS``: "p50", "p95",
    "error_rate", "tokens", "cost", "cpu") to its change; a metric that could not be compared
    (unknown on one side, no successful call) is absent.
    """

    status: Status
    tolerance: float
    metrics: Mapping[str, MetricChange] = field(default_factory=lambda: MappingProxyType({}))
    busy: str | None = None
    """"machine busy: ..." when the run was measured under clearly more contention than its
    baseline, else None."""
    cpu_bound: bool = False
    """The baseline's calls were CPU-bound: CPU time per call decides their verdict."""
    flags: tuple[Flag, ...] = ()
    messages: tuple[str, ...] = ()
    baseline_commit: str | None = None
    baseline_created: str | None = None
    reference: str | None = None
    """What the run was judged against when not the baseline file (e.g. "the last 20 sessions
    in the history"): the failure message names it and gives no re-record advice."""

    def get(self, key: str) -> MetricChange | None:
        """The change of metric ``key`` ("p95", "tokens", ...), None when not compared."""
        return self.metrics.get(key)

    def change_text(self, key: str) -> str:
        """Short text of metric ``key``'s change, with its interval: "-" when not compared."""
        return format_change(self.metrics.get(key), interval=True)

    @property
    def regressed(self) -> bool:
        return self.status is Status.REGRESSED

    def failure_message(self, run: str) -> str:
        """The message of RegressionDetected: what regressed, baseline vs now, the interval."""
        where = []
        if self.baseline_commit:
            where.append(f"commit {self.baseline_commit[:10]}")
        if self.baseline_created:
            where.append(f"recorded {self.baseline_created}")
        origin = f" ({', '.join(where)})" if where else ""
        lines = [m.text for m in self.metrics.values() if m.status is Status.REGRESSED]
        lines += [f.text for f in self.flags]
        against = self.reference or "the baseline"
        advice = (
            ""
            if self.reference
            else "\nIf the change is intended, re-record the baseline with --agentperf-baseline."
        )
        return f"run {run!r} regressed against {against}{origin}:\n  " + "\n  ".join(lines) + advice


# --------------------------------------------------------------------------- comparison


def shape_differences(baseline: LoadShape, current: LoadShape) -> tuple[str, ...]:
    """Load-shape fields that differ (requests, concurrency, rate, arrival, duration, stages)."""
    out = []
    for name in SHAPE_FIELDS:
        a, b = getattr(baseline, name), getattr(current, name)
        if name == "stages":
            if a != b:
                out.append(f"stages {_stages_text(a)} -> {_stages_text(b)}")
            continue
        same = (
            math.isclose(a, b, rel_tol=1e-9)
            if isinstance(a, float) and isinstance(b, float)
            else a == b
        )
        if not same:
            out.append(f"{name} {a} -> {b}")
    return tuple(out)


def _stages_text(stages: tuple[tuple[float, float], ...]) -> str:
    """``[10s to 50, 30s to 100]``, or ``none``."""
    if not stages:
        return "none"
    return "[" + ", ".join(f"{d:g}s to {t:g}" for d, t in stages) + "]"


def busy_reason(current: Contention, baseline: Contention | None) -> str | None:
    """ "machine busy: ..." when ``current`` had clearly more contention than ``baseline``.

    Contention is CPU used by other processes plus steal, as a share of the whole machine;
    "clearly more" is ``BUSY_MARGIN`` more. A baseline without the figure counts as quiet.
    """
    level = current.level
    if level is None:
        return None
    base = baseline.level if baseline is not None else None
    if level - (base or 0.0) < BUSY_MARGIN:
        return None
    then = f"{base:.0%} in the baseline" if base is not None else "not measured in the baseline"
    text = f"{BUSY_FLAG}: other processes used {level:.0%} CPU vs {then}"
    if current.steal:
        text += f" (steal {current.steal:.0%})"
    return text


def judge_contention(
    latency: MetricChange,
    *,
    cpu: MetricChange | None,
    busy: str | None,
    cpu_bound: bool,
    tolerance: float,
) -> MetricChange:
    """A latency verdict in the light of contention and CPU time.

    A REGRESSED latency stays REGRESSED when CPU time per call regressed too (contention-proof
    evidence). Otherwise it becomes INCONCLUSIVE when
    - the baseline's calls are CPU-bound (``cpu_bound``): CPU time decides, and it did not
      rise (a CPU-bound agent that starts waiting on I/O is INCONCLUSIVE too, not missed); or
    - the machine was busy and the rise is within what contention can explain: the interval's
      lower bound is not above (1 + tolerance) x (1 + ``BUSY_ALLOWANCE``).
    """
    if latency.status is not Status.REGRESSED:
        return latency
    if cpu is not None and cpu.status is Status.REGRESSED:
        return latency
    if cpu_bound and cpu is not None:
        note = "CPU-bound calls and CPU time per call did not rise: the machine is slower"
        if busy:
            note = f"{busy}; {note}"
        return replace(latency, status=Status.INCONCLUSIVE, note=note)
    if busy and (latency.low or 0.0) <= (1.0 + tolerance) * (1.0 + BUSY_ALLOWANCE):
        return replace(latency, status=Status.INCONCLUSIVE, note=busy)
    return latency


def _cpu_bound(base: BaselineRun) -> bool:
    """The baseline's calls were CPU-bound: their CPU time per call decides.

    Judged on the baseline only: contention today stretches wall time and so lowers today's
    share, whether or not the machine was seen busy (a baseline measured on a loaded machine
    leaves little room to see more).
    """
    return base.cpu_share is not None and base.cpu_share >= CPU_BOUND_SHARE


def _latency_sides(result: PerfResult, baseline: BaselineRun) -> LatencySides | None:
    cur = np.asarray(result.latency.samples, dtype=np.float64)
    cur = cur[np.isfinite(cur)]
    base = np.asarray(baseline.latency.samples, dtype=np.float64)
    if not (cur.size and base.size):
        return None
    full = int(cur.size)
    cur = thin_samples(cur)  # as the baseline keeps them: at most MAX_SAMPLES, time order
    # calls in flight together share a wave's delay: blocks at least that long (Little's law)
    floors = (
        calls_in_flight(result.throughput, result.latency.mean, full, int(cur.size)),
        calls_in_flight(
            baseline.throughput, baseline.latency.mean, baseline.latency.n, int(base.size)
        ),
    )
    return LatencySides(cur, base, baseline.in_order, floors)


def _one_sided_flags(result: PerfResult, baseline: BaselineRun) -> list[Flag]:
    """A figure known on one side only is not compared: say so for metrics that ask."""
    flags = []
    for m in STORED:
        assert m.measure is not None and m.stored_as is not None
        if m.one_sided and (baseline.figures.get(m.stored_as) is None) != (
            m.measure(result) is None
        ):
            text = f"{m.one_sided} known on one side only: {m.key} not compared"
            flags.append(Flag(FlagKind.ONE_SIDED, text))
    return flags


def with_first_run(second: Comparison, first: Comparison) -> Comparison:
    """``second`` (a re-measured run's comparison) with a flag saying what the first
    measurement showed: the verdict is the second's, so a regression fails only when it
    shows twice."""
    shown = "; ".join(m.text for m in first.metrics.values() if m.status is Status.REGRESSED)
    if second.regressed:
        text = f"confirmed by a second measurement (--agentperf-confirm); the first: {shown}"
    else:
        text = (
            f"not confirmed (--agentperf-confirm): the first measurement regressed ({shown}), "
            f"the second is {second.status.value}"
        )
    return replace(second, flags=(*second.flags, Flag(FlagKind.CONFIRM, text)))


def machine_flags(baseline: BaselineRun, machine: Machine | None) -> tuple[Flag, ...]:
    """A ``FlagKind.MACHINE`` flag when ``baseline`` was recorded on another machine than
    ``machine`` (this one; None: not checked)."""
    if machine is None:
        return ()
    diff = baseline.machine.differences(machine)
    if not diff:
        return ()
    return (Flag(FlagKind.MACHINE, "baseline from another machine: " + ", ".join(diff)),)


def not_compared(reason: str, tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    """NOT COMPARABLE for a reason other than the baseline (e.g. a scaled run)."""
    return Comparison(Status.NOT_COMPARABLE, tolerance, messages=(reason,))


def compare(
    result: PerfResult,
    baseline: BaselineRun | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    error_tolerance: float = ERROR_RATE_TOLERANCE,
    machine: Machine | None = None,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare ``result`` with its baseline run (None: NEW). ``machine`` is this machine.

    Every metric of ``metrics.METRICS`` is judged; the run's status is the worst of theirs.
    Deterministic: the bootstrap is seeded with ``seed``. Bounded: each side is compared on at
    most ``MAX_SAMPLES`` calls evenly spaced in time, so a comparison costs at most about
    0.1 s per percentile and side (blocks of 1 cost O(resamples) after one sort).
    """
    if baseline is None:
        return Comparison(Status.NEW, tolerance, messages=("no baseline run to compare with",))
    origin: dict[str, Any] = {
        "baseline_commit": baseline.commit,
        "baseline_created": baseline.created or None,
    }
    flags = list(machine_flags(baseline, machine))
    if baseline.capacity is not None:
        msg = (
            "the baseline run is a capacity search (agentperf.capacity), this one is not; "
            "re-record the baseline to compare"
        )
        return Comparison(
            Status.NOT_COMPARABLE, tolerance, flags=tuple(flags), messages=(msg,), **origin
        )
    changed = shape_differences(baseline.shape, result.shape)
    if changed:
        msg = "load shape changed (" + ", ".join(changed) + "); re-record the baseline to compare"
        return Comparison(
            Status.NOT_COMPARABLE, tolerance, flags=tuple(flags), messages=(msg,), **origin
        )

    latency = _latency_sides(result, baseline)
    messages: list[str] = []
    if latency is None:
        messages.append("latency not compared: no successful calls in the baseline or now")
    else:
        n = min(int(latency.current.size), int(latency.baseline.size))
        need = min_samples_for(95.0)
        if n < need:
            text = (
                f"p95 compared on {n} samples (fewer than {need}): its interval is wide; "
                "raise requests= for a sharper gate"
            )
            flags.append(Flag(FlagKind.SMALL_SAMPLE, text))
    flags += _one_sided_flags(result, baseline)
    busy = busy_reason(result.contention, baseline.contention)
    if busy:
        flags.append(Flag(FlagKind.BUSY, busy))
    base_level = baseline.contention.level if baseline.contention is not None else None
    if base_level is not None and base_level >= BUSY_MARGIN:
        text = (
            f"baseline recorded on a busy machine (other processes used {base_level:.0%} CPU): "
            "busy flags and latency are less telling; re-record it on a quiet machine"
        )
        flags.append(Flag(FlagKind.BUSY_BASELINE, text))

    sides = Sides(
        result, baseline, tolerance, error_tolerance, confidence, resamples, seed, busy, latency
    )
    judged = {m.key: (m, m.judge(sides, m)) for m in METRICS}
    metrics = {key: change for key, (_, change) in judged.items() if change is not None}
    cpu_bound = _cpu_bound(baseline)
    for key, (metric, change) in judged.items():
        if metric.wall_time and change is not None:
            metrics[key] = judge_contention(
                change, cpu=metrics.get("cpu"), busy=busy, cpu_bound=cpu_bound, tolerance=tolerance
            )
    status = max(
        (m.status for m in metrics.values()), key=lambda s: s.severity, default=Status.UNCHANGED
    )
    messages += [m.text for m in metrics.values()]
    return Comparison(
        status=status,
        tolerance=tolerance,
        metrics=MappingProxyType(metrics),
        busy=busy,
        cpu_bound=cpu_bound,
        flags=tuple(flags),
        messages=tuple(messages),
        **origin,
    )


__all__ = [
    "BUSY_ALLOWANCE",
    "BUSY_FLAG",
    "BUSY_MARGIN",
    "CONFIDENCE",
    "CPU_BOUND_SHARE",
    "DEFAULT_TOLERANCE",
    "ERROR_RATE_TOLERANCE",
    "Comparison",
    "Flag",
    "FlagKind",
    "MetricChange",
    "Status",
    "busy_reason",
    "compare",
    "format_change",
    "judge_contention",
    "machine_flags",
    "not_compared",
    "shape_differences",
    "with_first_run",
]
