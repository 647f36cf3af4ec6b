"""The session's end: one history file, and the change points its runs complete."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import make_result

from pytest_agentperf import options
from pytest_agentperf.baseline.environment import Machine
from pytest_agentperf.history import gate, store
from pytest_agentperf.history.recorder import HistoryOptions, record_session
from pytest_agentperf.record import RunRecord

HERE = Machine(cpu="Test CPU", cores=4, os="Linux", arch="x86_64", python="3.11.4", workers=0)
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def named_commit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENTPERF_MACHINE", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("AGENTPERF_COMMIT", "feedbeef")


def records(level: float, seed: int, **fields) -> list[RunRecord]:
    samples = level * np.exp(np.random.default_rng(seed).normal(0.0, 0.02, 40))
    return [RunRecord.of("t.py::test", make_result(samples, **fields))]


def record(folder: Path, recs: list[RunRecord], hour: int, **kw) -> object:
    kw.setdefault("interrupted", False)
    return record_session(
        HistoryOptions(folder),
        recs,
        plugin_version="0",
        cwd=folder.parent,
        machine=HERE,
        now=T0 + timedelta(hours=hour),
        **kw,
    )


def test_a_session_is_written_with_the_commit_it_measured(tmp_path: Path) -> None:
    done = record(tmp_path / "h", records(0.1, 0), 0)
    assert done.line.startswith("history: session written to ") and done.line.endswith("(1 runs)")
    assert not done.failed and done.changes == ()
    (session,) = store.load_history(tmp_path / "h").sessions
    assert session.commit == "feedbeef"


def test_the_session_completing_a_step_names_it_once(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    lines = [record(folder, records(0.1, i), i).changes for i in range(20)]
    lines += [record(folder, records(0.15, 100 + i), 20 + i).changes for i in range(7)]
    named = [(i, line) for i, found in enumerate(lines) for line in found]
    p50 = [(i, line) for i, line in named if "p50 latency" in line]
    assert len(p50) == 1
    i, line = p50[0]
    assert i == 24  # the fifth session at the new level
    assert re.match(
        r"t\.py::test: change point: p50 latency (99\.\d|100) ms -> 15\d ms \(\+5", line
    )
    assert "worse" in line and "at commit feedbeef, 2026-11-01 20:00 UTC" in line


def test_what_is_not_written_and_why(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    assert "interrupted" in record(folder, records(0.1, 0), 0, interrupted=True).line
    aborted = [RunRecord.of("t.py::test", make_result([0.1] * 5, aborted="budget broken"))]
    assert record(folder, aborted, 0).line == "history not written: no perf run completed"
    scaled = record_session(
        HistoryOptions(folder, scale=0.1),
        records(0.1, 0),
        interrupted=False,
        plugin_version="0",
    )
    assert "--agentperf-scale=0.1" in scaled.line
    assert not folder.exists()


def test_a_history_that_cannot_be_written_fails_the_session(tmp_path: Path) -> None:
    blocker = tmp_path / "h"
    blocker.write_text("a file where the folder should be")
    done = record(blocker, records(0.1, 0), 0)
    assert done.failed and done.line.startswith("ERROR: history not written:")


def test_the_plugins_defaults_are_the_historys() -> None:
    assert options.DEFAULT_HISTORY_KEEP == store.DEFAULT_KEEP
    assert options.DEFAULT_HISTORY_SESSIONS == gate.DEFAULT_SESSIONS
    assert options.MIN_HISTORY_SESSIONS == gate.MIN_SESSIONS
