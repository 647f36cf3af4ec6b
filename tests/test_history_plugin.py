"""The run history in a pytest session: written once per session, gating, change points."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from pytest_agentperf.history.recorder import this_machine
from pytest_agentperf.history.store import machine_id, session_files

TESTS = """
import pytest
from agents import make

@pytest.mark.agent_perf(requests=20, warmup=0)
def test_one(agentperf):
    agentperf.run(make("one"))

@pytest.mark.agent_perf(requests=20, warmup=0)
def test_two(agentperf):
    agentperf.run(make("two"))
"""


@pytest.fixture
def project(agents: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("AGENTPERF_MACHINE", raising=False)
    monkeypatch.setenv("DELAY_ONE", "0.002")
    monkeypatch.setenv("DELAY_TWO", "0.002")
    agents.makepyfile(test_hist=TESTS)
    return agents


def files(folder: Path, workers: int = 0) -> list[Path]:
    return session_files(folder / machine_id(this_machine(workers)))


def test_each_session_adds_one_file_and_the_ini_bounds_them(project: pytest.Pytester) -> None:
    project.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "agentperf_history = perf/hist\nagentperf_history_keep = 1\n"
    )
    project.runpytest("-k", "test_one").assert_outcomes(passed=1)
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["agentperf: history: session written to *perf/hist*.json (2 runs, 1 old sessions removed)"]
    )
    (written,) = files(project.path / "perf" / "hist")  # keep = 1
    doc = json.loads(written.read_text())
    assert [r["test"] for r in doc["runs"]] == ["test_hist.py::test_one", "test_hist.py::test_two"]
    assert doc["runs"][0]["figures"]["p50"] > 0.001


def test_history_options_are_checked_at_start(project: pytest.Pytester) -> None:
    result = project.runpytest("--agentperf-compare=history")
    result.stderr.fnmatch_lines(["*--agentperf-compare=history needs a run history*"])
    result = project.runpytest("--agentperf-history=hist", "-o", "agentperf_history_p=2")
    result.stderr.fnmatch_lines(["*agentperf_history_p='2': must be a number between 0 and 1*"])
    result = project.runpytest(
        "--agentperf-history=hist", "--agentperf-compare=history", "--agentperf-history-sessions=4"
    )
    result.stderr.fnmatch_lines(
        ["*--agentperf-history-sessions='4': must be a whole number of at least 5*"]
    )


def clone_history(folder: Path, levels: list[float], seed: int = 0) -> None:
    """Copies of the one session file in ``folder``, an hour apart, ending an hour ago, with
    every latency figure multiplied by the level (and 1 % noise)."""
    (original,) = files(folder)
    doc = json.loads(original.read_text())
    original.unlink()
    rng = np.random.default_rng(seed)
    start = datetime.now(timezone.utc) - timedelta(hours=len(levels) + 1)
    for i, level in enumerate(levels):
        when = start + timedelta(hours=i)
        copy = json.loads(json.dumps(doc))
        copy["created"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        copy["commit"] = f"{i:07x}"
        for run in copy["runs"]:
            factor = level * float(np.exp(rng.normal(0.0, 0.01)))
            for key in ("p50", "p90", "p95", "p99", "mean_latency"):
                run["figures"][key] *= factor
            run["figures"]["throughput"] /= factor
        name = when.strftime("%Y%m%dT%H%M%S%fZ") + f"-{i:07x}-copy.json"
        (original.parent / name).write_text(json.dumps(copy))


def test_the_history_gate_fails_a_run_slower_than_its_recent_sessions(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-history=hist", "-k", "test_two").assert_outcomes(passed=1)
    clone_history(project.path / "hist", [1.0] * 8)
    monkeypatch.setenv("DELAY_TWO", "0.02")  # ten times slower
    args = ("--agentperf-history=hist", "--agentperf-compare=history", "-k", "test_two")
    result = project.runpytest(*args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RegressionDetected: run 'default' regressed against the last 8 sessions in the "
            "history (commit 0000007*",
            "*p50 latency * REGRESSED, tolerance * (vs the last 8 sessions; run-to-run *",
            "history hist (machine *, last 20 sessions): 1 regressed, *",
        ]
    )
    assert "re-record the baseline" not in result.stdout.str()
    assert len(files(project.path / "hist")) == 9  # 8 copies, and this failing session


def test_a_session_names_the_change_point_its_runs_complete(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-history=hist").assert_outcomes(passed=2)
    # 20 sessions at a tenth of today's latency, then 4 at today's: this session is the 5th
    # at the new level, which completes the change point (DEFAULT_MIN_SIZE)
    clone_history(project.path / "hist", [0.1] * 20 + [1.0] * 4)
    result = project.runpytest("--agentperf-history=hist")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["test_hist.py::test_one: change point: p50 latency * -> * (+*%, worse, p=*) at commit *"]
    )


def test_under_xdist_the_controller_writes_one_file_and_workers_gate(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    args = ("-n", "2", "--agentperf-history=hist", "--agentperf-compare=history")
    result = project.runpytest(*args)
    result.assert_outcomes(passed=2)
    # each worker judged its run against the (still empty) history: both NEW
    result.stdout.fnmatch_lines(["history hist (machine *): 0 regressed, * 2 new"])
    written = files(project.path / "hist", workers=2)
    assert len(written) == 1
    assert len(json.loads(written[0].read_text())["runs"]) == 2
