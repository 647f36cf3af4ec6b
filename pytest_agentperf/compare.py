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
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np

from .baseline import BaselineRun, Machine, thin_samples
from .results import Contention, FloatArray, LoadShape, PerfResult
from .stats import (
    BOOTSTRAP_RESAMPLES,
    calls_in_flight,
    min_samples_for,
    proportion_diff_ci,
    ratio_ci,
)
from .units import format_seconds

DEFAULT_TOLERANCE = 0.10
"""Relative tolerance of latency, tokens and cost: a change within +-10 % is not a regression."""
ERROR_RATE_TOLERANCE = 0.01
"""Absolute tolerance of the error rate: 1 percentage point."""
CONFIDENCE = 0.95
"""Two-sided confidence of the intervals; REGRESSED needs the lower 2.5 % bound above the limit."""
RESOLUTION = 1e-6
"""Latencies are compared at microsecond resolution (as stored in the baseline)."""

MACHINE_FLAG = "baseline from another machine"
"""Starts the flag of a baseline measured elsewhere: said once per session, never gated."""
SMALL_SAMPLE_FLAG = "p95 compared on"
"""Starts the flag of a comparison on few samples: worth saying only when it did not pass."""

BUSY_FLAG = "machine busy"
"""Starts the flag of a run measured under clearly more contention than its baseline."""
BUSY_MARGIN = 0.20
"""A run is busy when other processes (plus steal) used at least this much more of the
machine's whole CPU capacity than during the baseline (0.2: 40 % of one core on 2 cores)."""
BUSY_ALLOWANCE = 0.50
"""On a busy machine a latency rise fails only when its whole interval lies above
(1 + tolerance) x (1 + BUSY_ALLOWANCE): contention alone can stretch wall time that much."""
BUSY_BASELINE_FLAG = "baseline recorded on a busy machine"
"""Starts the flag of a baseline measured under contention."""
CPU_BUSY_ALLOWANCE = 0.15
"""On a busy machine CPU time per call regresses only above (1 + tolerance) x 1.15: busy
neighbours (hyperthread siblings, caches) stretch CPU time too, though far less than wall time."""
CPU_BOUND_SHARE = 0.7
"""Calls whose CPU time per call is at least this share of the p50 latency are CPU-bound."""

SHAPE_FIELDS = ("requests", "concurrency", "rate", "arrival", "duration")


class Status(str, Enum):
    """Outcome of a comparison, for a metric or a whole run."""

    REGRESSED = "REGRESSED"
    INCONCLUSIVE = "INCONCLUSIVE"
    IMPROVED = "IMPROVED"
    UNCHANGED = "UNCHANGED"
    NEW = "NEW"
    NOT_COMPARABLE = "NOT COMPARABLE"

    def __str__(self) -> str:
        return self.value


_SEVERITY = {Status.REGRESSED: 3, Status.INCONCLUSIVE: 2, Status.IMPROVED: 1, Status.UNCHANGED: 0}


@dataclass(frozen=True)
class MetricChange:
    """One metric now against the baseline.

    ``kind`` is "ratio" (change = now / baseline) or "difference" (change = now - baseline);
    ``low``/``high`` bound the change with ``CONFIDENCE`` (None without an interval).
    """

    name: str
    kind: str
    baseline: float
    current: float
    change: float
    low: float | None
    high: float | None
    status: Status
    limit: float
    note: str | None = None
    """Why the status is what it is when a rule beyond the interval decided (e.g. busy)."""

    def describe(self) -> str:
        """One line for a failure message: baseline vs now, change, interval, verdict."""
        if self.name.endswith("latency") or self.name == "cpu per call":
            base, cur = format_seconds(self.baseline), format_seconds(self.current)
        elif self.name == "error rate":
            base, cur = f"{self.baseline * 100:.3g}%", f"{self.current * 100:.3g}%"
        elif self.name == "cost per call":
            base, cur = f"${self.baseline:.4g}", f"${self.current:.4g}"
        else:
            base, cur = f"{self.baseline:.4g}", f"{self.current:.4g}"
        text = f"{self.name} {base} -> {cur}: {format_change(self)}"
        if self.low is not None and self.high is not None:
            low, high = _fmt(self.kind, self.low), _fmt(self.kind, self.high)
            text += f" ({CONFIDENCE:.0%} CI {low} to {high})"
        text = f"{text} {self.status.value}, tolerance {_tolerance_text(self)}"
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "baseline": _json_float(self.baseline),
            "current": _json_float(self.current),
            "change": _json_float(self.change),
            "low": _json_float(self.low),
            "high": _json_float(self.high),
            "status": self.status.value,
            "limit": _json_float(self.limit),
            "note": self.note,
            "text": self.describe(),
        }


@dataclass(frozen=True)
class Comparison:
    """A run compared with its baseline run; ``PerfResult.comparison`` holds it."""

    status: Status
    tolerance: float
    p50: MetricChange | None = None
    p95: MetricChange | None = None
    error_rate: MetricChange | None = None
    tokens: MetricChange | None = None
    cost: MetricChange | None = None
    cpu: MetricChange | None = None
    busy: str | None = None
    """"machine busy: ..." when the run was measured under clearly more contention than its
    baseline, else None."""
    cpu_bound: bool = False
    """The baseline's calls were CPU-bound: CPU time per call decides their verdict."""
    flags: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    baseline_commit: str | None = None
    baseline_created: str | None = None

    @property
    def metrics(self) -> tuple[MetricChange, ...]:
        every = (self.p50, self.p95, self.error_rate, self.tokens, self.cost, self.cpu)
        return tuple(m for m in every if m)

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
        lines = [m.describe() for m in self.metrics if m.status is Status.REGRESSED]
        lines += list(self.flags)
        return (
            f"run {run!r} regressed against the baseline{origin}:\n  "
            + "\n  ".join(lines)
            + "\nIf the change is intended, re-record the baseline with --agentperf-baseline."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "tolerance": self.tolerance,
            "p50": self.p50.to_dict() if self.p50 else None,
            "p95": self.p95.to_dict() if self.p95 else None,
            "error_rate": self.error_rate.to_dict() if self.error_rate else None,
            "tokens": self.tokens.to_dict() if self.tokens else None,
            "cost": self.cost.to_dict() if self.cost else None,
            "cpu": self.cpu.to_dict() if self.cpu else None,
            "busy": self.busy,
            "cpu_bound": self.cpu_bound,
            "p50_change_text": format_change(self.p50, interval=True),
            "p95_change_text": format_change(self.p95, interval=True),
            "tokens_change_text": format_change(self.tokens),
            "cost_change_text": format_change(self.cost),
            "cpu_change_text": format_change(self.cpu),
            "flags": list(self.flags),
            "messages": list(self.messages),
            "baseline_commit": self.baseline_commit,
            "baseline_created": self.baseline_created,
        }


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


def _fmt(kind: str, value: float) -> str:
    if kind == "difference":
        return f"{round(value * 100, 1) + 0.0:+.1f} pp"
    if not math.isfinite(value):
        return "+inf%"
    return f"{round((value - 1) * 100):+d}%" if value < 2 else f"x{value:.3g}"


def _tolerance_text(m: MetricChange) -> str:
    if m.kind == "difference":
        return f"+-{m.limit * 100:g} pp"
    return f"+-{m.limit * 100:g}%"


def format_change(m: MetricChange | None, *, interval: bool = False) -> str:
    """Short text of a change for tables: "+12%", "x2.5", "+1.5 pp"; "-" when absent."""
    if m is None:
        return "-"
    text = _fmt(m.kind, m.change)
    if interval and m.low is not None and m.high is not None:
        text += f" [{_fmt(m.kind, m.low)}, {_fmt(m.kind, m.high)}]"
    return text


# --------------------------------------------------------------------------- comparison


def shape_differences(baseline: LoadShape, current: LoadShape) -> tuple[str, ...]:
    """Load-shape fields that differ (requests, concurrency, rate, arrival, duration)."""
    out = []
    for name in SHAPE_FIELDS:
        a, b = getattr(baseline, name), getattr(current, name)
        same = (
            math.isclose(a, b, rel_tol=1e-9)
            if isinstance(a, float) and isinstance(b, float)
            else a == b
        )
        if not same:
            out.append(f"{name} {a} -> {b}")
    return tuple(out)


def _ratio_status(estimate: float, low: float, high: float, tolerance: float) -> Status:
    if low > 1.0 + tolerance:
        return Status.REGRESSED
    if estimate > 1.0 + tolerance:
        return Status.INCONCLUSIVE
    if high < 1.0 / (1.0 + tolerance):
        return Status.IMPROVED
    return Status.UNCHANGED


def _latency(
    q: float,
    current: FloatArray,
    baseline: FloatArray,
    tolerance: float,
    confidence: float,
    resamples: int,
    seed: int,
    order: tuple[bool, bool] = (True, True),
    min_block: tuple[int, int] = (1, 1),
) -> MetricChange:
    # both sides at the baseline file's resolution, or µs-fast agents would differ by rounding
    cur = np.maximum(np.round(current, 6), RESOLUTION)
    base = np.maximum(np.round(baseline, 6), RESOLUTION)
    estimate, low, high = ratio_ci(
        cur,
        base,
        q,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        current_in_order=order[0],
        baseline_in_order=order[1],
        current_min_block=min_block[0],
        baseline_min_block=min_block[1],
    )
    return MetricChange(
        name=f"p{q * 100:g} latency",
        kind="ratio",
        baseline=float(np.quantile(base, q)),
        current=float(np.quantile(cur, q)),
        change=estimate,
        low=low,
        high=high,
        status=_ratio_status(estimate, low, high, tolerance),
        limit=tolerance,
    )


def _error_rate(
    result: PerfResult, base: BaselineRun, tolerance: float, confidence: float
) -> MetricChange | None:
    if result.requests <= 0 or base.requests <= 0:
        return None
    diff, low, high = proportion_diff_ci(
        result.errors, result.requests, base.errors, base.requests, confidence
    )
    if low > tolerance:
        status = Status.REGRESSED
    elif diff > tolerance:
        status = Status.INCONCLUSIVE
    elif high < -tolerance:
        status = Status.IMPROVED
    else:
        status = Status.UNCHANGED
    return MetricChange(
        name="error rate",
        kind="difference",
        baseline=base.errors / base.requests,
        current=result.errors / result.requests,
        change=diff,
        low=low,
        high=high,
        status=status,
        limit=tolerance,
    )


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


def _cpu(
    result: PerfResult, base: BaselineRun, tolerance: float, busy: str | None
) -> MetricChange | None:
    """CPU time per call: ratio of the means; a rise counts only when it is material, i.e.
    when it alone would slow the baseline's median call by more than the tolerance, and on a
    busy machine only above (1 + tolerance) x (1 + ``CPU_BUSY_ALLOWANCE``)."""
    b, c = base.cpu_per_call, result.cpu.per_call
    if b is None or c is None or not math.isfinite(b) or not math.isfinite(c):
        return None
    ratio = c / b if b > 0 else (1.0 if c <= 0 else math.inf)
    scale = base.latency.p50 or 0.0
    material = abs(c - b) > tolerance * scale
    limit = (1.0 + tolerance) * (1.0 + CPU_BUSY_ALLOWANCE) if busy else 1.0 + tolerance
    if ratio > limit and material:
        status = Status.REGRESSED
    elif ratio < 1.0 / (1.0 + tolerance) and material:
        status = Status.IMPROVED
    else:
        status = Status.UNCHANGED
    note = busy if busy and ratio > 1.0 + tolerance and status is not Status.REGRESSED else None
    return MetricChange("cpu per call", "ratio", b, c, ratio, None, None, status, tolerance, note)


def judge_contention(
    latency: MetricChange | None,
    *,
    cpu: MetricChange | None,
    busy: str | None,
    cpu_bound: bool,
    tolerance: float,
) -> MetricChange | None:
    """A latency verdict in the light of contention and CPU time.

    A REGRESSED latency stays REGRESSED when CPU time per call regressed too (contention-proof
    evidence). Otherwise it becomes INCONCLUSIVE when
    - the baseline's calls are CPU-bound (``cpu_bound``): CPU time decides, and it did not
      rise (a CPU-bound agent that starts waiting on I/O is INCONCLUSIVE too, not missed); or
    - the machine was busy and the rise is within what contention can explain: the interval's
      lower bound is not above (1 + tolerance) x (1 + ``BUSY_ALLOWANCE``).
    """
    if latency is None or latency.status is not Status.REGRESSED:
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


def _mean(
    name: str, base: float | None, cur: float | None, tolerance: float
) -> MetricChange | None:
    if base is None or cur is None or not math.isfinite(base) or not math.isfinite(cur):
        return None
    ratio = cur / base if base > 0 else (1.0 if cur <= 0 else math.inf)
    if ratio > 1.0 + tolerance:
        status = Status.REGRESSED
    elif ratio < 1.0 / (1.0 + tolerance):
        status = Status.IMPROVED
    else:
        status = Status.UNCHANGED
    return MetricChange(name, "ratio", base, cur, ratio, None, None, status, tolerance)


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
    flags: list[str] = []
    if machine is not None:
        diff = baseline.machine.differences(machine)
        if diff:
            flags.append(f"{MACHINE_FLAG}: " + ", ".join(diff))
    changed = shape_differences(baseline.shape, result.shape)
    if changed:
        msg = "load shape changed (" + ", ".join(changed) + "); re-record the baseline to compare"
        return Comparison(
            Status.NOT_COMPARABLE, tolerance, flags=tuple(flags), messages=(msg,), **origin
        )

    metrics: dict[str, MetricChange | None] = {"p50": None, "p95": None}
    cur = np.asarray(result.latency.samples, dtype=np.float64)
    cur = cur[np.isfinite(cur)]
    base = np.asarray(baseline.latency.samples, dtype=np.float64)
    messages: list[str] = []
    if cur.size and base.size:
        full = int(cur.size)
        cur = thin_samples(cur)  # as the baseline keeps them: at most MAX_SAMPLES, time order
        # calls in flight together share a wave's delay: blocks at least that long (Little's law)
        floors = (
            calls_in_flight(result.throughput, result.latency.mean, full, int(cur.size)),
            calls_in_flight(
                baseline.throughput, baseline.latency.mean, baseline.latency.n, int(base.size)
            ),
        )
        for i, (key, q) in enumerate((("p50", 0.50), ("p95", 0.95))):
            metrics[key] = _latency(
                q,
                cur,
                base,
                tolerance,
                confidence,
                resamples,
                seed + i,
                (True, baseline.in_order),
                floors,
            )
        n = min(int(cur.size), int(base.size))
        need = min_samples_for(95.0)
        if n < need:
            flags.append(
                f"{SMALL_SAMPLE_FLAG} {n} samples (fewer than {need}): its interval is wide; "
                "raise requests= for a sharper gate"
            )
    else:
        messages.append("latency not compared: no successful calls in the baseline or now")
    err = _error_rate(result, baseline, error_tolerance, confidence)
    tokens = _mean(
        "tokens per call", baseline.tokens_per_call, result.usage.per_call.total_tokens, tolerance
    )
    cost = _mean("cost per call", baseline.cost_per_call, result.cost.per_call, tolerance)
    if (baseline.tokens_per_call is None) != (result.usage.per_call.total_tokens is None):
        flags.append("token usage known on one side only: tokens not compared")
    if (baseline.cost_per_call is None) != (result.cost.per_call is None):
        flags.append("cost known on one side only: cost not compared")
    busy = busy_reason(result.contention, baseline.contention)
    cpu = _cpu(result, baseline, tolerance, busy)
    cpu_bound = _cpu_bound(baseline)
    if busy:
        flags.append(busy)
    base_level = baseline.contention.level if baseline.contention is not None else None
    if base_level is not None and base_level >= BUSY_MARGIN:
        flags.append(
            f"{BUSY_BASELINE_FLAG} (other processes used {base_level:.0%} CPU): busy flags and "
            "latency are less telling; re-record it on a quiet machine"
        )
    for key in ("p50", "p95"):
        metrics[key] = judge_contention(
            metrics[key], cpu=cpu, busy=busy, cpu_bound=cpu_bound, tolerance=tolerance
        )

    every = [m for m in (metrics["p50"], metrics["p95"], err, tokens, cost, cpu) if m is not None]
    status = max((m.status for m in every), key=_SEVERITY.__getitem__, default=Status.UNCHANGED)
    messages += [m.describe() for m in every]
    return Comparison(
        status=status,
        tolerance=tolerance,
        p50=metrics["p50"],
        p95=metrics["p95"],
        error_rate=err,
        tokens=tokens,
        cost=cost,
        cpu=cpu,
        busy=busy,
        cpu_bound=cpu_bound,
        flags=tuple(flags),
        messages=tuple(messages),
        **origin,
    )
