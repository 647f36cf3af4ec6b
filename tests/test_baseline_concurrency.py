"""Sessions saving the same baseline at once: every run ends up in the file, or a clear error."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_agentperf.baseline import BaselineRun, Environment, Machine, load, save
from pytest_agentperf.errors import BaselineError
from pytest_agentperf.locking import LockTimeout, lock_path, locked
from pytest_agentperf.results import LoadShape
from pytest_agentperf.stats import summarize

ENV = Environment(Machine(), None, "1")
PROCESSES = 4
ROUNDS = 12


def _entry(test: str) -> BaselineRun:
    shape = LoadShape(3, 1, None, "closed", None, 0, 1.0)
    latency = summarize(np.asarray([0.1, 0.2, 0.3]))
    return BaselineRun(
        test, "default", shape, 3, 0, 0, 1.0, 3.0, latency, ENV.machine, None, "1", ""
    )


def _saver(path: str, worker: int, barrier: Any, failures: Any) -> None:
    """One process: every round, wait for the others, then save a run of its own."""
    for r in range(ROUNDS):
        barrier.wait(timeout=60)
        try:
            save(path, [_entry(f"t.py::test_{worker}_{r}")])
        except BaselineError as exc:  # a loud failure is allowed; record it
            failures.put(str(exc))


def test_racing_saves_from_several_processes_lose_no_run(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    ctx = multiprocessing.get_context(method)
    barrier = ctx.Barrier(PROCESSES)
    failures = ctx.Queue()
    procs = [
        ctx.Process(target=_saver, args=(str(path), i, barrier, failures)) for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    failed = []
    while not failures.empty():
        failed.append(failures.get())
    got = load(path)
    assert got is not None and got.problems == ()
    expected = {f"t.py::test_{i}_{r}" for i in range(PROCESSES) for r in range(ROUNDS)}
    # every run saved is in the file; only a save that failed loudly may be absent
    assert got.tests() == expected or (failed and got.tests() < expected), failed
    assert failed == []  # with the lock, none fails on a machine this size
    assert not lock_path(path).exists()


def test_a_save_that_cannot_get_the_lock_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save(path, [_entry("t.py::test_old")])
    before = path.read_text(encoding="utf-8")
    with (
        locked(path),  # another session holds it (flock is per open file, so this conflicts)
        pytest.raises(BaselineError, match=r"could not lock the baseline file .*another process"),
    ):
        save(path, [_entry("t.py::test_new")], lock_timeout=0.2)
    assert path.read_text(encoding="utf-8") == before


def test_the_lock_waits_for_its_holder_then_times_out(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    ticks = iter(range(100))
    with (
        locked(target),
        pytest.raises(LockTimeout, match="more than 5 s"),
        locked(target, timeout=5, clock=lambda: float(next(ticks))),
    ):
        pass  # pragma: no cover
    with locked(target) as lock:  # released: free again
        assert lock.exists()
    assert not lock.exists()


def test_a_lock_file_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    lock_path(target).symlink_to("/dev/null")
    with pytest.raises(OSError), locked(target):
        pass  # pragma: no cover
