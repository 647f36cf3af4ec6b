"""``RunRecord``: one finished run as every output sees it.

A run's record is made once, in the process that ran it; it crosses the xdist boundary once, as
``to_dict()``, and is rebuilt once, by ``from_dict``, in the controlling process. The terminal
table, the JSON report, the baseline and every report writer read records, never dicts, and
never recompute a statistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .baseline.change import Status
from .budgets import all_failed
from .codec import from_jsonable, to_jsonable
from .pricing import CostProjection
from .results import ArmSummary, PerfResult

if TYPE_CHECKING:
    from .baseline.comparison import Comparison

DEFAULT_RUN_NAME = "default"
"""The name of a run made without ``name=``."""
MAX_REPORTED_SAMPLES = 100_000
"""Latency samples a record carries per series (evenly spaced beyond that)."""


class RunStatus(str, Enum):
    """The one word that says how a run did: the worst that applies, the same word in the
    terminal table, the JSON report and every other report."""

    PASS = "PASS"
    FAIL = "FAIL"
    """A budget broke (``RunRecord.broken`` names which)."""
    ABORTED = "ABORTED"
    """The run stopped early: ``abort_on``, a spend guard, or calls that do not add up."""
    REGRESSED = "REGRESSED"
    INCONCLUSIVE = "INCONCLUSIVE"
    IMPROVED = "IMPROVED"
    NEW = "NEW"
    NOT_COMPARABLE = "NOT COMPARABLE"
    ERROR = "ERROR"
    """Every measured call failed, so nothing was measured (unless an ``error_rate`` budget
    says that may be so)."""

    def __str__(self) -> str:
        return self.value


class Severity(str, Enum):
    """How much a finding matters: ``warning`` when the figures may mislead or money is being
    lost, ``info`` for a hint."""

    INFO = "info"
    WARNING = "warning"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """A rule's conclusion about a run (``pytest_agentperf.findings``): what it saw, the
    evidence behind it and what to do."""

    rule: str
    """The rule's id, e.g. "rate-limited"."""
    message: str
    """What the rule saw, in a sentence."""
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The figures the rule used, by name (JSON numbers, strings or lists of them)."""
    advice: str = ""
    """What to do about it."""
    severity: Severity = Severity.INFO


@dataclass(frozen=True)
class RunRecord:
    """One finished run of one test: what it measured and how it did (read-only)."""

    nodeid: str
    """The pytest node id of the test that made the run."""
    name: str
    """The run's name, unique within its test."""
    status: RunStatus
    result: PerfResult
    warnings: tuple[str, ...] = ()
    """Warnings about the run (e.g. too few calls for a percentile budget)."""
    findings: tuple[Finding, ...] = ()
    cost_projection: CostProjection | None = None
    checked: bool = True
    """False for a run made with ``check=False``: a broken budget was not raised."""
    arm: ArmSummary | None = None
    """The run is an arm of an A/B comparison (``agentperf.compare``): which, and how it
    compared with the reference arm; None for a plain run."""

    @classmethod
    def of(
        cls,
        nodeid: str,
        result: PerfResult,
        *,
        warnings: tuple[str, ...] = (),
        findings: tuple[Finding, ...] = (),
        cost_projection: CostProjection | None = None,
        checked: bool = True,
    ) -> RunRecord:
        """The record of ``result``, its status worked out from its budgets and comparison."""
        return cls(
            nodeid=nodeid,
            name=result.name,
            status=status_of(result),
            result=result,
            warnings=warnings,
            findings=findings,
            cost_projection=cost_projection,
            checked=checked,
        )

    @property
    def comparison(self) -> Comparison | None:
        """The run against its baseline run, None when not compared."""
        return self.result.comparison

    @property
    def broken(self) -> tuple[str, ...]:
        """Names of the budgets the run broke, in listing order."""
        return tuple(b.name for b in self.result.budgets if not b.passed)

    @property
    def label(self) -> str:
        """How messages name the run: ``nodeid [name]``, or the node id alone for the test's
        default run (made without ``name=``)."""
        return run_label(self.nodeid, self.name)

    def to_dict(self, *, max_samples: int | None = MAX_REPORTED_SAMPLES) -> dict[str, Any]:
        """JSON-ready data; each sample series cut to ``max_samples`` evenly spaced samples."""
        out = to_jsonable(self, samples=True, limit=max_samples)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record ``to_dict`` wrote. Raises ``codec.DecodeError`` (a ``ValueError``)
        naming the field that does not fit."""
        return from_jsonable(cls, data, "record")


def run_label(nodeid: str, name: str) -> str:
    """How messages name run ``name`` of test ``nodeid``: ``nodeid [name]``, or the node id
    alone for the test's default run (made without ``name=``)."""
    return nodeid if name == DEFAULT_RUN_NAME else f"{nodeid} [{name}]"


_FROM_COMPARISON = {
    Status.REGRESSED: RunStatus.REGRESSED,
    Status.INCONCLUSIVE: RunStatus.INCONCLUSIVE,
    Status.IMPROVED: RunStatus.IMPROVED,
    Status.NEW: RunStatus.NEW,
    Status.NOT_COMPARABLE: RunStatus.NOT_COMPARABLE,
}
"""A comparison's verdict as the run's status (UNCHANGED is PASS)."""


def status_of(result: PerfResult) -> RunStatus:
    """The worst that applies: ABORTED, then ERROR (every call failed, no ``error_rate``
    budget), then FAIL (a broken budget), then the comparison's verdict (UNCHANGED is PASS),
    else PASS."""
    if result.aborted:
        return RunStatus.ABORTED
    if all_failed(result):
        return RunStatus.ERROR
    if not result.passed:
        return RunStatus.FAIL
    comparison = result.comparison
    if comparison is None or comparison.status not in _FROM_COMPARISON:
        return RunStatus.PASS
    return _FROM_COMPARISON[comparison.status]
