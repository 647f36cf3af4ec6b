"""A run split over workers, live: early abort (``abort_on``) judged on each worker, which stops
the others, and the gateways opened at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from conftest import assert_processes_gone

# Imported here, in the outer process, so that pytester's in-process runs share one gateway
# pool (and execnet) instead of each starting worker processes of its own.
import pytest_agentperf.workers.controller as controller
from pytest_agentperf.errors import WorkerError
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.workers.remote import settings_from_plain, settings_to_plain, worker_observers
from pytest_agentperf.workers.split import split


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


# ------------------------------------------------------------------ what a worker is sent


def test_each_worker_gets_the_abort_on_budgets_whole_and_its_share_of_spend() -> None:
    base = parse_settings(
        {
            "requests": 100,
            "concurrency": 4,
            "error_rate": 0.05,
            "p95": 2.0,
            "total_tokens": 1000,
            "min_throughput": 5.0,
            "abort_on": ["error_rate", "p95"],
        }
    )
    for shard in split(base, None, 2):
        sent = settings_from_plain(settings_to_plain(shard.settings))
        assert sent.abort_on == ("error_rate", "p95")
        # judged live on the worker: the abort_on budgets whole, the spend budget its share;
        # the others (min_throughput) only on the merged calls, by the controller
        assert sent.budgets == {"error_rate": 0.05, "p95": 2.0, "total_tokens": 500}


class _View:
    """The calls so far, as the engine's LiveView shows them to an observer."""

    def __init__(self, statuses: list[int]) -> None:
        self.status = np.array(statuses, dtype=np.int8)
        self.done = len(statuses)
        self.errors = int(np.count_nonzero(self.status))

    def arrays(self) -> tuple[Any, Any, Any]:
        start = np.arange(self.done, dtype=np.float64)
        return start, start + 0.01, self.status


def _view(statuses: list[int]) -> Any:
    return _View(statuses)


def test_a_workers_abort_tells_the_controller_once_the_moment_it_stops() -> None:
    settings = parse_settings({"requests": 1000, "error_rate": 0.05, "abort_on": ["error_rate"]})
    sent: list[Any] = []
    (watch,) = worker_observers(settings, sent.append)
    watch.on_start(0.0)
    assert watch.on_tick(_view([0] * 30)) is None and sent == []
    reason = watch.on_tick(_view([1] * 40))  # judged again: 10 % more calls
    assert reason is not None and "error rate" in reason
    assert sent == [("abort", reason)]
    assert watch.on_tick(_view([1] * 50)) == reason and len(sent) == 1
    assert worker_observers(parse_settings({"requests": 10}), sent.append) == []


# ---------------------------------------------------------------- real worker processes


def test_a_worker_that_aborts_stops_the_others_at_once(project: pytest.Pytester) -> None:
    """Every call fails: a worker aborts after its first 20 calls (a fraction of a second);
    the run would take 100 000 calls x 10 ms / 4 in flight = over 4 minutes."""
    project.makepyfile(
        test_live_abort="""
import os, time
import pytest

@pytest.mark.agent_perf(requests=100_000, concurrency=4, workers=2, warmup=0,
                        error_rate=0.05, abort_on=["error_rate"])
def test_abort(agentperf, tmp_path):
    home, pids = os.getpid(), str(tmp_path / "pids")
    def agent(x):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(0.01)
        raise ValueError("down")
    t = time.monotonic()
    r = agentperf.run(agent, ["a"], check=False)
    assert time.monotonic() - t < 60
    assert r.aborted is not None, r
    assert r.aborted.startswith("aborted: gw"), r.aborted
    assert "error rate" in r.aborted, r.aborted
    assert "stopped, its calls are not in the result" in r.aborted, r.aborted
    # the result holds the aborting worker's calls; the other was stopped mid-run
    (w,) = r.workers
    assert w.name in r.aborted.split(";")[0] and r.requests == w.calls < 1000
    others = set(open(pids).read().split()) - {str(home), str(w.pid)}
    print("STOPPED", sorted(others))
"""
    )
    result = project.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    stopped = _pids(result, "STOPPED")
    assert len(stopped) == 1
    assert_processes_gone(stopped)


def test_a_split_run_whose_abort_on_holds_runs_to_the_end_as_before(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_live_ok="""
import pytest

def agent(x):
    return x

@pytest.mark.agent_perf(requests=200, concurrency=4, workers=2, warmup=0,
                        error_rate=0.05, abort_on=["error_rate"])
def test_ok(agentperf):
    r = agentperf.run(agent, ["a"])
    assert r.aborted is None and r.requests == 200 and r.errors == 0
    assert [w.calls for w in r.workers] == [100, 100]
"""
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert "judged at the end" not in result.stdout.str()


# ------------------------------------------------------------------- starting the gateways


def test_gateways_are_opened_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four gateways that take 1 s each to open: about 1 s together (4 s one after another)."""
    inside = 0
    most = 0
    lock = threading.Lock()

    def take(spec: str) -> controller.Gateway:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(1.0)
        with lock:
            inside -= 1
        return controller.Gateway(spec, None, None)

    monkeypatch.setattr(controller.POOL, "take", take)
    t = time.monotonic()
    gateways = controller.start_all([("popen", f"gw{k}") for k in range(4)])
    assert time.monotonic() - t < 3.0
    assert most == 4 and [g.spec for g in gateways] == ["popen"] * 4


def test_a_gateway_that_cannot_start_is_named_and_the_started_ones_are_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended: list[controller.Gateway] = []
    end = controller.end_gateways

    def record(gateways: list[controller.Gateway]) -> None:
        ended.extend(gateways)
        end(gateways)

    monkeypatch.setattr(controller, "end_gateways", record)
    bad = "popen//python=/nonexistent/python3"
    with pytest.raises(
        WorkerError, match=r"worker gw0 \(popen//python=/nonexistent/python3\) could not be started"
    ) as info:
        controller.start_all([(bad, "gw0"), ("popen", "gw1"), (bad, "gw2")])
    assert info.value.worker == "gw0"  # the first that failed, though gw2 failed too
    (started,) = ended
    assert started.spec == "popen" and not started.gateway.hasreceiver()


# ------------------------------------------------------------------------------ helpers


def _pids(result: pytest.RunResult, tag: str) -> list[int]:
    line = next(x for x in result.outlines if f"{tag} [" in x)
    return [int(p) for p in line.split("[", 1)[1].strip("]").replace("'", "").split(",") if p]
