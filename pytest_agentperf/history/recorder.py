"""The session's end: add this session to the history folder and name the change points
that its runs complete. Called once, by the controlling process (also under xdist)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from ..baseline.environment import Machine, machine_info
from ..errors import OutputPathError
from ..locking import LockTimeout
from ..record import RunRecord, run_label
from .series import METRICS, Detection, Point, Series, completed_by_last, describe
from .store import (
    DEFAULT_KEEP,
    load_history,
    new_session,
    run_from_result,
    session_commit,
    write_session,
)


@dataclass(frozen=True)
class HistoryOptions:
    """Where the history goes and how change points are looked for."""

    folder: Path
    keep: int = DEFAULT_KEEP
    detection: Detection = field(default_factory=Detection)
    root: Path | None = None
    """The project folder: a dangling link may lead only inside it."""
    workers: int | None = 0
    """pytest-xdist workers of the session: part of the machine's identity."""
    scale: float = 1.0


@dataclass(frozen=True)
class Recorded:
    """What ``record_session`` did: the line saying so, whether it failed (which fails the
    session), and one line per change point this session completed."""

    line: str | None
    failed: bool = False
    changes: tuple[str, ...] = ()


def this_machine(workers: int | None) -> Machine:
    """This machine as the history names it (with the session's xdist worker count)."""
    return replace(machine_info(), workers=workers)


def record_session(
    options: HistoryOptions,
    records: Sequence[RunRecord],
    *,
    interrupted: bool,
    plugin_version: str,
    cwd: str | os.PathLike[str] | None = None,
    machine: Machine | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Write the session's completed runs (not aborted ones) as one history file, prune the
    oldest beyond ``keep``, then look for change points the new file completes."""
    if interrupted:
        return Recorded("history NOT written: the session was interrupted")
    if options.scale != 1.0:
        return Recorded(
            f"history not written: runs scaled by --agentperf-scale={options.scale:g} are not "
            "comparable with full ones"
        )
    runs = [
        run_from_result(r.nodeid, r.result, str(r.status.value))
        for r in records
        if not r.result.aborted
    ]
    if not runs:
        return Recorded("history not written: no perf run completed")
    commit, source = session_commit(cwd)
    session = new_session(
        runs,
        machine=machine or this_machine(options.workers),
        commit=commit,
        plugin_version=plugin_version,
        created=now,
    )
    try:
        done = write_session(
            options.folder, session, keep=options.keep, commit_source=source, root=options.root
        )
    except (OutputPathError, LockTimeout, OSError) as exc:
        return Recorded(f"ERROR: history not written: {exc}", failed=True)
    line = f"history: session written to {done.path} ({len(runs)} runs"
    line += f", {done.removed} old sessions removed)" if done.removed else ")"
    return Recorded(line, changes=tuple(new_change_points(options, session.machine_id, done.path)))


def new_change_points(options: HistoryOptions, machine_id: str, written: Path) -> list[str]:
    """One line per change point that the session file ``written`` completes, in the
    series of the runs it holds (this machine only)."""
    window = options.detection.window
    history = load_history(options.folder, machine=machine_id, last=2 * window)
    if not history.sessions or Path(history.sessions[-1].path) != Path(written):
        return []  # a newer session was written meanwhile: it will speak for itself
    latest = history.sessions[-1]
    lines = []
    for key in sorted(latest.runs):
        for metric in METRICS:
            points = [
                Point(s.created, s.commit, v)
                for s in history.sessions
                if key in s.runs and (v := s.runs[key].figures.get(metric.key)) is not None
            ]
            if len(points) < 2 or latest.runs[key].figures.get(metric.key) is None:
                continue
            series = Series(machine_id, key[0], key[1], metric, tuple(points))
            for cp in completed_by_last([p.value for p in points], options.detection):
                lines.append(f"{run_label(*key)}: change point: {describe(series, cp)}")
    return lines
