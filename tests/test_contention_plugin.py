"""End-to-end: a run measured under an injected busy machine is flagged in the table and JSON.

The machine's CPU times are faked by a conftest that replaces ``read_cpu_times``: other
processes use the share of the CPUs that FAKE_OTHERS says, so nothing depends on real load.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import os, time
import pytest
import pytest_agentperf.observers.contention as contention

@pytest.fixture(autouse=True)
def fake_machine(monkeypatch):
    others = float(os.environ.get("FAKE_OTHERS", "0"))
    t0 = time.perf_counter()

    def cpu_times():
        wall = time.perf_counter() - t0
        busy = 2 * wall * others + time.process_time()  # 2 cores: others' share, plus ours
        idle = 1000.0 + 2 * wall - busy
        return contention.CpuTimes(busy=busy, idle=idle, steal=0.0), "fake"

    monkeypatch.setattr(contention, "read_cpu_times", cpu_times)
"""

TESTS = """
import os, time
import pytest

def agent():
    time.sleep(0.01 * float(os.environ.get("SLOWER", "1")))

@pytest.mark.agent_perf(requests=40)
def test_agent(agentperf):
    agentperf.run(agent, name="main")
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("SLOWER", raising=False)
    monkeypatch.setenv("FAKE_OTHERS", "0")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_perf=TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def _run(project: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = project.runpytest("--agentperf-json=perf.json", *args)
    doc = json.loads((project.path / "perf.json").read_text(encoding="utf-8"))
    return result, doc["runs"][0]


def test_contention_and_cpu_time_are_reported_and_saved(project: pytest.Pytester) -> None:
    result, run = _run(project, "--agentperf-baseline", "--agentperf-columns=all")
    result.assert_outcomes(passed=1)
    contention = run["result"]["contention"]
    assert contention["source"] == "fake"
    assert contention["other_cpu"] == pytest.approx(0.0, abs=0.05)
    assert 0 <= contention["own_cpu"] <= 1
    cpu = run["result"]["cpu"]
    assert cpu["source"] == "thread" and cpu["per_call"] < 0.005
    result.stdout.fnmatch_lines(["*cpu/call*"])
    saved = json.loads((project.path / ".agentperf" / "baseline.json").read_text("utf-8"))
    entry = saved["runs"][0]
    assert entry["order"] == "start"
    assert entry["contention"]["other_cpu"] == pytest.approx(0.0, abs=0.05)
    assert entry["cpu_per_call"] == pytest.approx(cpu["per_call"], rel=1e-3)


def test_a_run_under_a_busy_machine_is_flagged(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(project, "--agentperf-baseline")[0].assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_OTHERS", "0.6")
    result, run = _run(project, "--agentperf-tolerance=100%")
    result.assert_outcomes(passed=1)
    comparison = run["result"]["comparison"]
    assert comparison["busy"].startswith("machine busy: other processes used 6")
    assert comparison["busy"].endswith("CPU vs 0% in the baseline")
    result.stdout.fnmatch_lines(
        ["*test_perf.py::test_agent*PASS (busy)*", "*note: machine busy: other processes used*"]
    )


def test_a_slowdown_seen_only_on_a_busy_machine_does_not_fail(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(project, "--agentperf-baseline")[0].assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_OTHERS", "0.9")
    monkeypatch.setenv("SLOWER", "1.3")
    result, run = _run(project)
    result.assert_outcomes(passed=1)
    comparison = run["result"]["comparison"]
    assert comparison["busy"] is not None
    assert comparison["status"] != "REGRESSED"


def test_a_quiet_run_is_not_flagged(project: pytest.Pytester) -> None:
    _run(project, "--agentperf-baseline")[0].assert_outcomes(passed=1)
    result, run = _run(project, "--agentperf-tolerance=100%")
    result.assert_outcomes(passed=1)
    assert run["result"]["comparison"]["busy"] is None
    assert "busy" not in result.stdout.str()
