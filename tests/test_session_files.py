"""End-to-end: the files a session writes (JSON report, baseline) and the runs it must make."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ONE_TEST = """
import pytest
from agents import fast_sync

@pytest.mark.agent_perf(requests=5)
def test_agent(agentperf):
    agentperf.run(fast_sync)
"""


# --------------------------------------------------------------------------- reports at the end


def test_the_json_report_is_written_without_the_terminal_reporter(agents: pytest.Pytester) -> None:
    agents.makepyfile(test_perf=ONE_TEST)
    result = agents.runpytest("-p", "no:terminal", "--agentperf-json=out/perf.json")
    assert result.ret == pytest.ExitCode.OK
    doc = json.loads((agents.path / "out" / "perf.json").read_text(encoding="utf-8"))
    assert doc["format"] == "pytest-agentperf-results"
    (run,) = doc["runs"]
    assert run["nodeid"] == "test_perf.py::test_agent" and run["result"]["requests"] == 5


@pytest.mark.parametrize("terminal", [True, False])
def test_a_report_that_cannot_be_written_fails_the_session(
    agents: pytest.Pytester, terminal: bool
) -> None:
    agents.makepyfile(test_perf=ONE_TEST)
    (agents.path / "blocker").write_text("a file, not a folder", encoding="utf-8")
    args = ["--agentperf-json=blocker/perf.json"] + ([] if terminal else ["-p", "no:terminal"])
    result = agents.runpytest(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    expected = "*agentperf: ERROR: could not write the JSON report blocker/perf.json: *"
    (result.stdout if terminal else result.stderr).fnmatch_lines([expected])
    assert (agents.path / "blocker").read_text(encoding="utf-8") == "a file, not a folder"


def test_a_failing_session_keeps_its_exit_code_and_still_writes_the_report(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(test_perf=ONE_TEST + "\ndef test_broken():\n    assert False\n")
    result = agents.runpytest("--agentperf-json=perf.json")
    result.assert_outcomes(passed=1, failed=1)
    assert json.loads((agents.path / "perf.json").read_text(encoding="utf-8"))["runs"]


# --------------------------------------------------------------------------- what is never replaced


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="POSIX device")
@pytest.mark.parametrize("option", ["--agentperf-json=/dev/null", "--agentperf-baseline-path"])
def test_a_device_is_refused_and_fails_the_session(agents: pytest.Pytester, option: str) -> None:
    agents.makepyfile(test_perf=ONE_TEST)
    before = os.stat("/dev/null")
    if option == "--agentperf-baseline-path":
        args = ["--agentperf-baseline", "--agentperf-baseline-path=/dev/null"]
    else:
        args = [option]
    result = agents.runpytest(*args)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*refusing to write /dev/null: it is a character device*"])
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino
    assert not os.path.exists("/dev/null.lock")


def test_a_foreign_file_is_not_replaced_by_the_json_report(agents: pytest.Pytester) -> None:
    agents.makepyfile(test_perf=ONE_TEST)
    notes = agents.path / "notes.json"
    notes.write_text('{"my": "data"}', encoding="utf-8")
    result = agents.runpytest("--agentperf-json=notes.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*it exists and is not a pytest-agentperf JSON report*"])
    assert notes.read_text(encoding="utf-8") == '{"my": "data"}'
    # a report of ours (even one written before the format marker existed) is replaced
    notes.write_text('{"schema_version": 1, "plugin_version": "0", "runs": []}', encoding="utf-8")
    assert agents.runpytest("--agentperf-json=notes.json").ret == pytest.ExitCode.OK
    assert json.loads(notes.read_text(encoding="utf-8"))["runs"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_a_baseline_link_out_of_the_project_to_nothing_is_refused(
    agents: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    agents.makepyfile(test_perf=ONE_TEST)
    outside = tmp_path_factory.mktemp("outside") / "planted"
    (agents.path / ".agentperf").mkdir()
    (agents.path / ".agentperf" / "baseline.json").symlink_to(outside)
    result = agents.runpytest("--agentperf-baseline")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*which does not exist and is outside the project*"])
    assert not outside.exists()


# --------------------------------------------------------------------------- a test with no run


NO_RUN = """
import pytest
from agents import fast_async, fast_sync

@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=3)
async def test_forgot_await(agentperf):
    agentperf.arun(fast_async).close()  # the coroutine is made, never awaited

@pytest.mark.agent_perf(requests=3)
def test_never_called(agentperf):
    pass

@pytest.mark.agent_perf(requests=3)
def test_ran(agentperf):
    agentperf.run(fast_sync)

@pytest.mark.agent_perf(requests=3)
def test_skipped_at_run_time(agentperf):
    pytest.skip("not today")

@pytest.mark.agent_perf(requests=3)
def test_failed_before_running(agentperf):
    raise RuntimeError("setup of the agent broke")

@pytest.fixture
def measured_at_teardown(agentperf):
    yield
    agentperf.run(fast_sync, name="teardown")

@pytest.mark.agent_perf(requests=3)
def test_run_in_a_fixture_teardown(measured_at_teardown):
    pass

def test_unmarked(agentperf):
    pass
"""


def test_a_marked_test_that_made_no_run_is_warned_about(agents: pytest.Pytester) -> None:
    agents.makepyfile(test_perf=NO_RUN)
    result = agents.runpytest("-rA")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    out = result.stdout.str()
    # counted by name: older pytest-asyncio adds warnings of its own to the total
    assert out.count("AgentPerfWarning: test_perf.py::") == 2
    result.stdout.fnmatch_lines(
        ["*AgentPerfWarning: test_perf.py::test_forgot_await is marked agent_perf but made no*"]
    )
    assert "test_never_called is marked agent_perf but made no run" in out
    warned = out.split("warnings summary")[1].split("-- Docs")[0]
    for quiet in ("test_ran", "test_skipped", "test_failed_before", "test_run_in_a", "unmarked"):
        assert quiet not in warned


@pytest.mark.parametrize("flag", ["error::pytest_agentperf.AgentPerfWarning", "error"])
def test_a_test_that_made_no_run_fails_under_w_error(agents: pytest.Pytester, flag: str) -> None:
    agents.makepyfile(test_perf=NO_RUN)
    # pytest-asyncio 0.23 does not know the ini's loop-scope option: its config warning must
    # not be what "-W error" turns into an error here
    ignore = "ignore::pytest.PytestConfigWarning"
    result = agents.runpytest("-W", flag, "-W", ignore, "-k", "never_called or test_ran")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "E *AgentPerfWarning: test_perf.py::test_never_called is marked agent_perf but*",
            "ERROR test_perf.py::test_never_called - *AgentPerfWarn*",
        ]
    )


def test_agentperf_skip_makes_no_warning(agents: pytest.Pytester) -> None:
    agents.makepyfile(test_perf=NO_RUN)
    result = agents.runpytest("--agentperf-skip")
    result.assert_outcomes(passed=0, skipped=7)
    assert "AgentPerfWarning" not in result.stdout.str()


def test_report_path_in_summary_is_the_one_given(agents: pytest.Pytester) -> None:
    agents.makepyfile(test_perf=ONE_TEST)
    result = agents.runpytest("--agentperf-json=perf.json")
    result.stdout.fnmatch_lines(["agentperf: JSON report written to perf.json"])
    assert Path(agents.path / "perf.json").is_file()
