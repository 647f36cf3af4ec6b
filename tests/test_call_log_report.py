"""``--agentperf-log``: one JSON line per measured call, end to end through pytest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import INI

LOG_AGENTS = """
import asyncio, os, time
from pytest_agentperf import record_usage
from pytest_agentperf.usage import record_tool

SLOW = float(os.environ.get("AGENT_SLOW", "0"))

def agent(x):
    time.sleep(0.002 + SLOW)
    record_usage(10 + x, 5, model="gpt-4o-mini")
    if x == 3:
        raise ValueError("bad input sk-abcdefghijklmnopqrstuvwxyz0123")
    if x == 2:
        record_tool("search", 0.001, True)
    return f"answer {x} sk-abcdefghijklmnopqrstuvwxyz0123"

async def aagent(x):
    await asyncio.sleep(0.002 + SLOW)
    return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
"""

TESTS = """
import pytest
from agents_log import agent, aagent

@pytest.mark.agent_perf(requests=8, concurrency=2, warmup=3, error_rate="50%")
def test_sync(agentperf):
    agentperf.run(agent, inputs=[0, 1, 2, 3])

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=6, concurrency=3, warmup=1)
async def test_async(agentperf):
    await agentperf.arun(aagent, inputs=["q"])

@pytest.mark.agent_perf(requests=4, warmup=0, p95="1us")
def test_budget_broken(agentperf):
    agentperf.run(agent, inputs=[0, 1])
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(agents_log=LOG_AGENTS, test_perf=TESTS)
    return pytester


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check(lines: list[dict[str, Any]]) -> None:
    by_test: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_test.setdefault(line["test"].split("::")[-1], []).append(line)
    assert {k: len(v) for k, v in by_test.items()} == {  # warmup calls are not logged
        "test_sync": 8,
        "test_async": 6,
        "test_budget_broken": 4,
    }
    sync = by_test["test_sync"]
    assert [line["i"] for line in sync] == list(range(8))
    assert list(sync[0])[:3] == ["test", "run", "i"]
    assert sync[0]["run"] == "default"
    assert all(line["end"] >= line["start"] >= line["intended_start"] >= 0 for line in sync)
    assert all(
        line["latency"] == pytest.approx(line["end"] - line["intended_start"]) for line in sync
    )
    errors = [line for line in sync if line["status"] == "error"]
    assert len(errors) == 2 and {line["error_type"] for line in errors} == {"ValueError"}
    assert all(line["input_tokens"] - 10 == 3 for line in errors)  # x == 3 failed
    assert all(line["model"] == "gpt-4o-mini" and line["cost"] > 0 for line in sync)
    assert sum(line["tool_calls"] for line in sync) == 2
    assert all(line["llm_calls"] == 1 for line in sync)
    assert all(line["ttft"] is None for line in sync)
    assert all("input" not in line and "output" not in line for line in sync)
    asyncs = by_test["test_async"]
    assert {(line["input_tokens"], line["output_tokens"], line["status"]) for line in asyncs} == {
        (7, 3, "ok")
    }
    assert all(line["timestamp"] > 1.7e9 for line in lines)


def test_every_measured_call_is_one_line(project: pytest.Pytester) -> None:
    result = project.runpytest("--agentperf-log=out/calls.jsonl", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)  # the broken budget still fails its test
    result.stdout.fnmatch_lines(["agentperf: per-call log written to *calls.jsonl (18 calls)"])
    _check(_lines(project.path / "out" / "calls.jsonl"))


def test_under_xdist_the_controller_writes_every_worker_s_calls(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    result = project.runpytest("--agentperf-log=calls.jsonl", "-n", "2", "-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    _check(_lines(project.path / "calls.jsonl"))


def test_content_only_when_asked_and_redacted(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "--agentperf-log=calls.jsonl", "--agentperf-log-content", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=2, failed=1)
    text = (project.path / "calls.jsonl").read_text(encoding="utf-8")
    assert "sk-abcdefghijklmnop" not in text
    sync = [line for line in _lines(project.path / "calls.jsonl") if "test_sync" in line["test"]]
    ok = [line for line in sync if line["status"] == "ok"]
    assert all(line["input"] in {"0", "1", "2"} for line in ok)
    assert all(line["output"] == f"answer {line['input']} sk-***" for line in ok)
    assert all(line["output"] is None for line in sync if line["status"] == "error")


def test_content_without_a_log_is_refused(project: pytest.Pytester) -> None:
    result = project.runpytest("--agentperf-log-content")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agentperf-log-content*give --agentperf-log=PATH too*"])


def test_a_regressed_run_is_logged_too(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest(
        "--agentperf-baseline", "-k", "test_async", "-p", "no:randomly"
    ).assert_outcomes(passed=1)
    monkeypatch.setenv("AGENT_SLOW", "0.03")
    result = project.runpytest(
        "--agentperf-log=calls.jsonl", "-k", "test_async", "-p", "no:randomly"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*REGRESSED*"])
    lines = _lines(project.path / "calls.jsonl")
    assert len(lines) == 6 and all(line["latency"] >= 0.03 for line in lines)


def test_a_file_that_is_not_a_log_is_left_alone(project: pytest.Pytester) -> None:
    (project.path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    result = project.runpytest("--agentperf-log=notes.txt", "-k", "test_async")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR: per-call log not written: refusing to write notes.txt*"])
    assert (project.path / "notes.txt").read_text(encoding="utf-8") == "my notes\n"
    # a log of ours is replaced
    project.runpytest("--agentperf-log=calls.jsonl", "-k", "test_async").assert_outcomes(passed=1)
    project.runpytest("--agentperf-log=calls.jsonl", "-k", "test_async").assert_outcomes(passed=1)
    assert len(_lines(project.path / "calls.jsonl")) == 6


def test_without_the_option_runs_keep_no_call_table(project: pytest.Pytester) -> None:
    result = project.runpytest("--agentperf-json=out.json", "-k", "test_async")
    result.assert_outcomes(passed=1)
    (run,) = json.loads((project.path / "out.json").read_text(encoding="utf-8"))["runs"]
    assert run["result"]["calls"] is None
