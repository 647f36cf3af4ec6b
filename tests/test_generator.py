"""The watch on the load generator: the test process's CPU, threads and event-loop lag."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from pytest_agentperf import findings
from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import arun_load, run_load
from pytest_agentperf.findings import run_findings
from pytest_agentperf.observers.generator import GeneratorWatch, ThreadCounter
from pytest_agentperf.observers.memory import MemorySampler
from pytest_agentperf.record import RunRecord
from pytest_agentperf.results import PerfResult
from pytest_agentperf.settings import parse_settings


async def spinning_agent() -> None:
    """Holds the event loop 20 ms per call: the calls queue behind each other on one thread."""
    end = time.perf_counter() + 0.02
    while time.perf_counter() < end:
        pass


async def sleeping_agent() -> None:
    await asyncio.sleep(0.01)


def _run_async(agent: object, requests: int, concurrency: int) -> PerfResult:
    settings = parse_settings({"requests": requests, "concurrency": concurrency, "warmup": 0})
    memory, watch = MemorySampler(), GeneratorWatch()

    async def main() -> PerfResult:
        raw = await arun_load(agent, None, settings, observers=[memory, watch])
        extra = [o.result_fields(raw.log, raw.duration) for o in (memory, watch)]
        return build_result("default", settings, raw, extra_fields=extra)

    return asyncio.run(main())


def test_thread_count_is_this_process_s() -> None:
    counter = ThreadCounter()
    try:
        before = counter()
        stop = threading.Event()
        extra = threading.Thread(target=stop.wait, daemon=True)
        extra.start()
        assert counter() >= before + 1 >= 2
        stop.set()
        extra.join()
    finally:
        counter.close()


def test_a_cpu_spinning_async_agent_saturates_the_generator() -> None:
    result = _run_async(spinning_agent, requests=50, concurrency=4)
    gen = result.generator
    assert gen.event_loop
    # the loop is busy 20 ms at a time, whatever share of a core the machine gives it
    assert gen.loop_lag_p99 is not None and gen.loop_lag_p99 >= findings.GENERATOR_LAG
    # a spinning loop uses what CPU it gets: at load 10 on 2 cores that can be a fifth of a core
    assert gen.cpu_one_core is not None and gen.cpu_one_core > 0.05
    assert gen.threads is not None and gen.threads >= 1
    assert gen.windows and [(w.start, w.end) for w in gen.windows] == [
        (w.start, w.end) for w in result.windows
    ]
    (found,) = [
        f for f in run_findings(RunRecord.of("t.py::t", result)) if f.rule == "generator-saturated"
    ]
    assert found.evidence["loop_lag_p99"] >= findings.GENERATOR_LAG


def test_a_sleeping_async_agent_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    # generous thresholds: a machine shared with other jobs may delay a tick now and then
    monkeypatch.setattr(findings, "GENERATOR_LAG", 0.2)
    monkeypatch.setattr(findings, "GENERATOR_CPU", 0.95)
    result = _run_async(sleeping_agent, requests=100, concurrency=2)
    gen = result.generator
    assert gen.event_loop and gen.cpu_one_core is not None
    assert gen.cpu_one_core < 0.9
    assert not [
        f for f in run_findings(RunRecord.of("t.py::t", result)) if f.rule == "generator-saturated"
    ]


def test_a_sync_run_counts_its_worker_threads_and_has_no_loop() -> None:
    settings = parse_settings({"requests": 200, "concurrency": 4, "warmup": 0})
    watch = GeneratorWatch()
    raw = run_load(lambda: time.sleep(0.01), None, settings, observers=[watch])
    gen = watch.figures(len(raw.log), raw.duration)
    assert not gen.event_loop and gen.loop_lag_p99 is None
    assert gen.threads is not None and gen.threads >= 5  # the 4 workers and this thread
    assert gen.cpu_all_cores is not None and 0 <= gen.cpu_all_cores <= 1
    assert gen.windows and all(w.loop_lag_p99 is None for w in gen.windows)


def test_figures_before_a_run_are_empty() -> None:
    assert GeneratorWatch().figures(0, 0.0).cpu_one_core is None


SPINNING = """
import time, pytest

async def spin():
    end = time.perf_counter() + 0.02
    while time.perf_counter() < end:
        pass

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=40, concurrency=4, warmup=0)
async def test_spin(agentperf):
    await agentperf.arun(spin)
"""


def test_a_saturated_generator_is_a_finding_and_a_warning(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_spin=SPINNING)
    result = pytester.runpytest("-p", "no:randomly", "--agentperf-json=out.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*AgentPerfWarning: test_spin.py::test_spin: the test process itself was the "
            "bottleneck*",
            "test_spin.py::test_spin: generator-saturated: the test process itself was the "
            "bottleneck*workers=*",
        ]
    )
    (run,) = json.loads((pytester.path / "out.json").read_text())["runs"]
    assert "generator-saturated" in [f["rule"] for f in run["findings"]]
    assert any("bottleneck" in w for w in run["warnings"])
    assert run["result"]["generator"]["event_loop"] is True
    assert run["result"]["generator"]["windows"]


def test_findings_off_hides_them(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_spin=SPINNING)
    result = pytester.runpytest(
        "-p", "no:randomly", "--agentperf-findings=off", "--agentperf-json=out.json"
    )
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*: generator-saturated: *")
    (run,) = json.loads((pytester.path / "out.json").read_text())["runs"]
    assert "generator-saturated" in [f["rule"] for f in run["findings"]]  # JSON keeps them
