"""JUnit XML: each run's figures as a test's ``user_properties``, so ``--junitxml`` carries them.

One set of properties per run, each named ``agentperf[RUN].FIGURE`` (the run's name in the
brackets, so the runs of one test never collide), with times in seconds:

- ``status``: the run's one word (``PASS``, ``FAIL``, ``REGRESSED``, ...)
- ``requests``, ``errors``, ``timeouts``: measured calls, failed calls, calls that timed out
- ``error_rate``: failed calls / measured calls (0..1)
- ``p50_s``, ``p95_s``, ``p99_s``: latency percentiles
- ``ttft_p95_s``: time to first chunk, when the run streamed
- ``throughput_per_s``: successful calls per second
- ``tokens_per_call``, ``cost_per_call_usd``: when known
- compared with a baseline: ``baseline.verdict`` (the comparison's verdict: ``UNCHANGED``,
  ``REGRESSED``, ...) and, for each compared metric, ``baseline.FIGURE`` (its value in the
  baseline) and ``change.FIGURE`` (now / baseline; for ``error_rate``, now - baseline)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..redact import redact

if TYPE_CHECKING:
    from ..record import RunRecord

PREFIX = "agentperf"

FIGURE_OF_METRIC = {
    "p50": "p50_s",
    "p95": "p95_s",
    "error_rate": "error_rate",
    "tokens": "tokens_per_call",
    "cost": "cost_per_call_usd",
    "cpu": "cpu_per_call_s",
}
"""The property name of each gated metric (``Comparison.metrics`` keys); others keep their key."""

Property = tuple[str, object]


def property_name(run: str, figure: str) -> str:
    """``agentperf[RUN].FIGURE``; the run's name redacted (it may come from a test's id)."""
    return f"{PREFIX}[{redact(run)}].{figure}"


def _number(value: float) -> float:
    """Six significant digits: microseconds for a second, and a tiny cost per call stays."""
    return float(f"{value:.6g}")


def properties(record: RunRecord) -> list[Property]:
    """The run's figures as ``(name, value)`` pairs; a figure that is unknown is left out."""
    res = record.result
    figures: list[tuple[str, object]] = [
        ("status", record.status.value),
        ("requests", res.requests),
        ("errors", res.errors),
        ("timeouts", res.timeouts),
        ("error_rate", _number(res.error_rate)),
    ]
    latency = res.latency
    for figure, value in (
        ("p50_s", latency.p50),
        ("p95_s", latency.p95),
        ("p99_s", latency.p99),
        ("ttft_p95_s", res.ttft.p95 if res.ttft.n else None),
        ("throughput_per_s", res.throughput),
        ("tokens_per_call", res.usage.per_call.total_tokens),
        ("cost_per_call_usd", res.cost.per_call),
    ):
        if value is not None:
            figures.append((figure, _number(value)))
    comp = record.comparison
    if comp is not None:
        figures.append(("baseline.verdict", comp.status.value))
        for key, change in comp.metrics.items():
            figure = FIGURE_OF_METRIC.get(key, key)
            figures.append((f"baseline.{figure}", _number(change.baseline)))
            figures.append((f"change.{figure}", _number(change.change)))
    return [(property_name(record.name, figure), value) for figure, value in figures]
