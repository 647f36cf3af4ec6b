"""The run history folder: one file per session and machine, atomic, bounded, read warily."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import make_result
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.baseline.environment import Machine
from pytest_agentperf.history.store import (
    COMMIT_VARIABLES,
    FIGURES,
    GZIP_ABOVE,
    QUANTILES,
    load_history,
    machine_id,
    new_session,
    run_from_result,
    session_commit,
    session_files,
    write_session,
)

HERE = Machine(cpu="Test CPU", cores=4, os="Linux", arch="x86_64", python="3.11.4", workers=0)
THERE = Machine(cpu="Other CPU", cores=8, os="Linux", arch="x86_64", python="3.11.4", workers=0)
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def no_machine_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPERF_MACHINE", raising=False)


def session(i: int = 0, machine: Machine = HERE, tests: int = 1, p50: float = 0.1):
    rng = np.random.default_rng(i)
    runs = [
        run_from_result(f"test_x.py::test_{t}", make_result(rng.normal(p50, p50 / 20, 50)), "PASS")
        for t in range(tests)
    ]
    return new_session(
        runs,
        machine=machine,
        commit=f"{i:040x}",
        plugin_version="0.test",
        created=T0 + timedelta(hours=i),
    )


def test_a_session_is_written_and_read_back_with_its_figures_and_distribution(
    tmp_path: Path,
) -> None:
    written = session(1)
    done = write_session(tmp_path, written, commit_source="git")
    assert done.path.parent == tmp_path / machine_id(HERE)
    assert done.path.name.startswith("20261101T010000000000Z-000000000000-")
    history = load_history(tmp_path)
    assert history.problems == ()
    (read,) = history.sessions
    assert read.commit == written.commit and read.created == written.created
    assert read.machine.cpu == "Test CPU" and read.machine_id == machine_id(HERE)
    run = read.runs[("test_x.py::test_0", "default")]
    original = written.runs[("test_x.py::test_0", "default")]
    assert run.figures == original.figures
    assert run.figures["p50"] == pytest.approx(0.1, rel=0.05)
    assert len(run.latency_quantiles) == QUANTILES
    assert run.latency_quantiles[50] == pytest.approx(run.figures["p50"], abs=1e-6)
    assert run.ttft_quantiles == ()  # not a streaming run
    assert json.loads(done.path.read_text())["commit_source"] == "git"


def test_machines_get_their_own_folders_and_never_mix(tmp_path: Path) -> None:
    write_session(tmp_path, session(1, HERE))
    write_session(tmp_path, session(2, THERE))
    write_session(tmp_path, session(3, HERE))
    assert machine_id(HERE) != machine_id(THERE)
    assert len(machine_id(HERE)) == 12
    assert set(load_history(tmp_path).machines()) == {machine_id(HERE), machine_id(THERE)}
    mine = load_history(tmp_path, machine=machine_id(HERE))
    assert [s.commit[-1] for s in mine.sessions] == ["1", "3"]
    assert {s.machine_id for s in mine.sessions} == {machine_id(HERE)}


def test_the_machine_id_ignores_patch_releases_but_not_xdist_workers() -> None:
    from dataclasses import replace

    assert machine_id(replace(HERE, python="3.11.9", platform="Linux-6.1")) == machine_id(HERE)
    assert machine_id(replace(HERE, workers=2)) != machine_id(HERE)


def test_agentperf_machine_names_the_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPERF_MACHINE", "ci pool/linux")
    assert machine_id(HERE) == machine_id(THERE) == "ci-pool-linux"


def test_the_oldest_sessions_beyond_keep_are_removed(tmp_path: Path) -> None:
    for i in range(6):
        done = write_session(tmp_path, session(i), keep=3)
    assert done.removed == 1 and done.kept == 3
    history = load_history(tmp_path)
    assert [s.created.hour for s in history.sessions] == [3, 4, 5]


def test_sessions_written_at_once_are_all_kept_and_readable(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(first: int) -> None:
        try:
            for i in range(first, first + 5):
                write_session(tmp_path, session(i), keep=500)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(10 * k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = load_history(tmp_path)
    assert history.problems == ()
    assert len(history.sessions) == 30
    assert not list((tmp_path / machine_id(HERE)).glob(".*.tmp"))  # no temp file left


def test_writers_at_once_respect_keep(tmp_path: Path) -> None:
    threads = [
        threading.Thread(target=write_session, args=(tmp_path, session(i)), kwargs={"keep": 4})
        for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(session_files(tmp_path / machine_id(HERE))) == 4


def test_corrupt_and_foreign_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    write_session(tmp_path, session(1))
    folder = tmp_path / machine_id(HERE)
    (folder / "20261101T020000000000Z-bad.json").write_text("{not json")
    (folder / "20261101T030000000000Z-foreign.json").write_text('{"format": "other"}')
    good = json.loads(session_files(folder)[0].read_text())
    good["runs"][0]["figures"]["p50"] = "fast"
    (folder / "20261101T040000000000Z-typed.json").write_text(json.dumps(good))
    moved = dict(good, machine_id="elsewhere")
    moved["runs"][0]["figures"]["p50"] = 0.2
    (folder / "20261101T050000000000Z-moved.json").write_text(json.dumps(moved))
    (folder / "20261101T060000000000Z-trunc.json.gz").write_bytes(b"\x1f\x8b\x08garbage")
    history = load_history(tmp_path)
    assert len(history.sessions) == 1
    problems = "\n".join(history.problems)
    assert len(history.problems) == 5
    assert "bad.json skipped: not JSON" in problems
    assert "not a pytest-agentperf history file" in problems
    assert "runs[0].figures.p50: expected a number" in problems
    assert "belongs to machine 'elsewhere'" in problems
    assert "trunc.json.gz skipped" in problems


def test_a_large_session_is_gzipped_and_read_back(tmp_path: Path) -> None:
    big = session(1, tests=200)
    done = write_session(tmp_path, big)
    assert done.path.name.endswith(".json.gz")
    assert len(gzip.decompress(done.path.read_bytes())) > GZIP_ABOVE
    (read,) = load_history(tmp_path).sessions
    assert len(read.runs) == 200


def test_only_the_newest_files_are_read_when_asked(tmp_path: Path) -> None:
    for i in range(5):
        write_session(tmp_path, session(i))
    assert [s.created.hour for s in load_history(tmp_path, last=2).sessions] == [3, 4]


def test_a_missing_folder_is_an_empty_history(tmp_path: Path) -> None:
    assert load_history(tmp_path / "nothing").sessions == ()


def test_the_commit_comes_from_git_else_from_the_ci_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in COMMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # tmp_path is no repository
    assert session_commit(tmp_path) == (None, None)
    monkeypatch.setenv("GITHUB_SHA", "abc123")
    assert session_commit(tmp_path) == ("abc123", "GITHUB_SHA")
    monkeypatch.setenv("AGENTPERF_COMMIT", "v1.2-rc")
    assert session_commit(tmp_path) == ("v1.2-rc", "AGENTPERF_COMMIT")
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    sha, source = session_commit(repo)
    assert source == "git" and sha is not None and len(sha) == 40


@settings(max_examples=25, deadline=None)
@given(
    test=st.text(min_size=1, max_size=40),
    run=st.text(min_size=1, max_size=20),
    figures=st.fixed_dictionaries(
        {k: st.none() | st.floats(0, 1e6, allow_nan=False) for k in FIGURES}
    ),
    commit=st.none() | st.text(max_size=50),
)
def test_any_session_reads_back_as_written(
    tmp_path_factory: pytest.TempPathFactory, test: str, run: str, figures: dict, commit
) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    base = run_from_result(test, make_result([0.1, 0.2, 0.3]), "PASS")
    written = replace(base, run=run, figures=MappingProxyType(figures))
    folder = tmp_path_factory.mktemp("h")
    session = new_session([written], machine=HERE, commit=commit, plugin_version="0")
    write_session(folder, session)
    (read,) = load_history(folder).sessions
    assert read.commit == commit
    (back,) = read.runs.values()
    assert (back.test, back.run) == (test, run)
    for key, value in figures.items():
        assert back.figures[key] == (None if value is None else pytest.approx(value, rel=1e-12))
