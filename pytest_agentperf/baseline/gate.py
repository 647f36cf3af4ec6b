"""The baseline gate of a session: compare each run, fail the regressed test, save at the end.

One ``BaselineGate`` per process (the controller and each xdist worker). Every process loads
the baseline itself (reading is safe in parallel) and compares its own runs, so a regression
fails the test that regressed, in its call phase. Only the controlling process saves, once,
at the end of a session that was not interrupted, from the run records every test report
carried to it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BaselineError, RegressionDetected
from ..record import RunRecord
from ..results import PerfResult
from ..settings import Settings
from .capacity import compare_capacity
from .change import Status
from .comparison import DEFAULT_TOLERANCE, FlagKind, compare, not_compared
from .environment import Environment, Machine, current_environment, machine_info
from .store import Baseline, SaveResult, load, run_from_result, save


@dataclass(frozen=True)
class GateOptions:
    """Command-line choices: where the baseline is, save or compare, tolerance, fail or warn.

    ``root`` is the project folder: a dangling link at ``path`` may lead only inside it.
    """

    path: Path
    save: bool = False
    compare: bool = True
    tolerance: float = DEFAULT_TOLERANCE
    mode: str = "fail"
    root: Path | None = None
    scale: float = 1.0
    """``--agentperf-scale``: a scaled run is not compared (its shape differs on purpose)."""
    workers: int | None = 0
    """pytest-xdist workers of the session (0 without xdist, None when unknown): recorded with
    the machine, and a change is flagged like a machine change."""


class BaselineGate:
    """Compares runs with the baseline (an after-run hook) and fails regressions (a gate)."""

    def __init__(self, options: GateOptions) -> None:
        self.options = options
        self.baseline: Baseline | None = None
        self.problem: str | None = None
        """Why the baseline file could not be used (a warning for the summary), or None."""
        self.entry_problems: tuple[str, ...] = ()
        """Entries of the baseline set aside as unreadable, one warning each."""
        self._machine: Machine | None = None
        if options.compare and not options.save:
            try:
                self.baseline = load(options.path)
            except BaselineError as exc:
                self.problem = str(exc)
            if self.baseline is not None:
                self.entry_problems = self.baseline.problems

    @property
    def machine(self) -> Machine:
        """This machine, with the session's xdist worker count."""
        if self._machine is None:
            self._machine = replace(machine_info(), workers=self.options.workers)
        return self._machine

    def after_run(self, test_id: str, result: PerfResult, settings: Settings) -> PerfResult:
        """Attach the comparison with the baseline run (same test id and run name); a
        capacity search is compared with the baseline's search (``capacity.compare_capacity``).
        """
        if self.baseline is None:
            return result
        tolerance = settings.tolerance if settings.tolerance is not None else self.options.tolerance
        # a search is never scaled (--agentperf-scale leaves searches alone): always compared
        if result.capacity is None and self.options.scale != 1.0:
            scaled = f"scaled by --agentperf-scale={self.options.scale:g}: not compared"
            return replace(result, comparison=not_compared(scaled))
        judge = compare if result.capacity is None else compare_capacity
        comparison = judge(
            result,
            self.baseline.get(test_id, result.name),
            tolerance=tolerance,
            machine=self.machine,
        )
        return replace(result, comparison=comparison)

    def check(self, test_id: str, result: PerfResult) -> None:
        """Raise RegressionDetected for a regressed run, unless the mode is "warn"."""
        __tracebackhide__ = True
        comparison = result.comparison
        if self.options.mode != "fail" or comparison is None:
            return
        if comparison.regressed:
            details = tuple(
                m.text for m in comparison.metrics.values() if m.status is Status.REGRESSED
            )
            raise RegressionDetected(comparison.failure_message(result.name), details)

    def save(
        self,
        records: Sequence[RunRecord],
        *,
        cwd: str | os.PathLike[str] | None = None,
        complete: Collection[str] = (),
    ) -> SaveResult:
        """Write the completed runs of ``records`` to the baseline, keeping the other tests;
        tests in ``complete`` (passed) replace all their old runs.

        Aborted runs are not saved: a baseline is a full run of the load shape.
        """
        env: Environment = current_environment(cwd)
        env = replace(env, machine=replace(env.machine, workers=self.options.workers))
        entries = [
            run_from_result(r.nodeid, r.result, env) for r in records if not r.result.aborted
        ]
        return save(
            self.options.path,
            entries,
            keep_existing=True,
            complete=complete,
            root=self.options.root,
        )

    def save_at_end(
        self,
        records: Sequence[RunRecord],
        *,
        interrupted: bool,
        cwd: str | os.PathLike[str] | None = None,
        complete: Collection[str] = (),
    ) -> tuple[str | None, bool]:
        """Save the baseline at the end of a session when asked to.

        Returns the line saying what happened (None when no save was asked for) and whether
        the save failed, which must fail the session: a CI job that records the baseline must
        not go green without one. An interrupted session saves nothing.
        """
        if not self.options.save:
            return None, False
        if interrupted:
            return "baseline NOT saved: the session was interrupted", False
        if not records:
            return "baseline not saved: no perf test ran", False
        try:
            done = self.save(records, cwd=cwd, complete=complete)
        except BaselineError as exc:
            return f"ERROR: {exc}", True
        line = (
            f"baseline saved to {display_path(done.path)}: "
            f"{done.written} runs written, {done.kept} kept"
        )
        if done.replaced_problem:
            line += f" (replaced an unusable file: {done.replaced_problem})"
        if done.unreadable_kept:
            line += f" ({done.unreadable_kept} unreadable entries kept as they were)"
        return line, False

    def missing(self, records: Iterable[RunRecord], executed: Iterable[str]) -> list[str]:
        """Baseline runs of tests executed this session that produced no such run."""
        if self.baseline is None:
            return []
        seen = {(r.nodeid, r.name) for r in records}
        ran = set(executed)
        return sorted(
            f"{test} [{name}]"
            for test, name in self.baseline.runs
            if test in ran and (test, name) not in seen
        )


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the current directory when it is inside it, else as given."""
    p = Path(path)
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


_COUNTED = (
    (Status.REGRESSED, "regressed"),
    (Status.IMPROVED, "improved"),
    (Status.INCONCLUSIVE, "inconclusive"),
    (Status.NEW, "new"),
    (Status.NOT_COMPARABLE, "not comparable"),
)
_EXPLAINED = (Status.REGRESSED, Status.INCONCLUSIVE, Status.NOT_COMPARABLE, Status.IMPROVED)
"""Comparison verdicts whose metrics are listed under the table, one line each."""


def summary_lines(
    gate: BaselineGate,
    records: Sequence[RunRecord],
    executed: Iterable[str],
) -> list[str]:
    """Lines under the table: baseline problems, what changed and why, and the counts."""
    lines: list[str] = []
    if gate.problem:
        lines.append(f"WARNING: {gate.problem}")
    lines += [f"WARNING: {problem}" for problem in gate.entry_problems]
    if gate.baseline is None:
        return lines
    flagged: set[str] = set()
    counts = dict.fromkeys((label for _, label in _COUNTED), 0)
    for r in records:
        comp = r.comparison
        if comp is None:
            continue
        for status, label in _COUNTED:
            if comp.status is status:
                counts[label] += 1
        if comp.status in _EXPLAINED:
            lines += [
                f"{r.label}: {m.text}" for m in comp.metrics.values() if m.status is comp.status
            ]
            if comp.status is Status.NOT_COMPARABLE:
                lines += [f"{r.label}: {msg}" for msg in comp.messages]
        for flag in comp.flags:
            if flag.kind is FlagKind.MACHINE:
                if flag.text not in flagged:
                    flagged.add(flag.text)
                    lines.append(f"note: {flag.text}")
            elif comp.status in (Status.REGRESSED, Status.INCONCLUSIVE) or (
                flag.kind is not FlagKind.SMALL_SAMPLE
            ):
                # a usage figure known on one side only matters even when latency passed
                lines.append(f"{r.label}: note: {flag.text}")
    missing = gate.missing(records, executed)
    for name in missing:
        lines.append(f"{name}: in the baseline but not run this session")
    parts = [
        f"{counts[label]} {label}"
        for _, label in _COUNTED
        if counts[label] or label != "not comparable"
    ]
    parts.append(f"{len(missing)} missing")
    mode = " (warn mode: regressions do not fail)" if gate.options.mode == "warn" else ""
    lines.append(f"baseline {display_path(gate.options.path)}: " + ", ".join(parts) + mode)
    return lines
