"""End-to-end: saving a baseline and the regression gate, through pytester (also under xdist).

The agent (``make`` in conftest.py's AGENTS) sleeps for a delay read from an environment variable
at each call, so a test can make one agent 10x slower between two sessions: far beyond any timing
noise, so nothing here is flaky.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import INI, QUIET_MACHINE

pytest_plugins = ["pytester"]

TESTS = """
import pytest
from agents import make

@pytest.mark.agent_perf(requests=30)
def test_one(agentperf):
    agentperf.run(make("one"), name="main")

@pytest.mark.agent_perf(requests=30)
def test_two(agentperf):
    agentperf.run(make("two"), name="main")
"""

BASELINE = Path(".agentperf") / "baseline.json"
# Comparisons that must come out unchanged use a 100 % tolerance (a 2x limit), so that a loaded
# machine cannot turn sleep jitter into a regression; the 10x slowdowns are far beyond it, even
# when a loaded machine stretches the 10 ms baseline sleeps more than the slow ones.
LOOSE = "--agentperf-tolerance=100%"
# The machine is reported quiet to these sessions: this suite runs under ``-n 2``, so the other
# worker's load would otherwise make a session "busy" next to its baseline, and the gate would
# rightly call some regressions INCONCLUSIVE. How contention is judged is tested on its own in
# test_contention_plugin.py; here it is the gate. A conftest reaches xdist workers too.


@pytest.fixture
def project(agents: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("DELAY_ONE", raising=False)
    monkeypatch.delenv("DELAY_TWO", raising=False)
    agents.makepyfile(test_perf=TESTS)
    agents.makeconftest(QUIET_MACHINE)
    return agents


def _runs(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {(r["test"], r["run"]): r for r in doc["runs"]}


def test_save_compare_and_update_a_subset(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = project.runpytest("--agentperf-baseline")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*baseline saved to *baseline.json: 2 runs written, 0 kept*"])
    path = project.path / BASELINE
    runs = _runs(path)
    assert set(runs) == {("test_perf.py::test_one", "main"), ("test_perf.py::test_two", "main")}
    assert runs[("test_perf.py::test_one", "main")]["shape"]["requests"] == 30
    assert len(runs[("test_perf.py::test_one", "main")]["samples"]) == 30

    result = project.runpytest(LOOSE, "--agentperf-columns=all")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*Δp50 (95% CI)*Δp95 (95% CI)*status*",
            "*test_one*PASS*",
            "*baseline *baseline.json: 0 regressed, 0 improved, 0 inconclusive, 0 new, 0 missing",
        ]
    )
    assert "baseline saved" not in result.stdout.str()

    # Re-record one test only (-k): the other test's entry is kept as it was.
    monkeypatch.setenv("DELAY_ONE", "0.02")
    before = path.read_text(encoding="utf-8")
    result = project.runpytest("--agentperf-baseline", "-k", "test_one")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*1 runs written, 1 kept*"])
    now = _runs(path)
    two = ("test_perf.py::test_two", "main")
    assert now[two] == {(r["test"], r["run"]): r for r in json.loads(before)["runs"]}[two]
    assert now[("test_perf.py::test_one", "main")]["latency"]["p50"] > 0.018
    assert [p.name for p in (project.path / ".agentperf").iterdir()] == ["baseline.json"]


def test_a_regression_fails_only_the_test_that_regressed(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY_ONE", "0.1")  # 10x slower
    result = project.runpytest(LOOSE)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RegressionDetected: run 'main' regressed against the baseline*",
            "*p50 latency * ms -> * ms: x* (95% CI x* to x*) REGRESSED, tolerance +-100%*",
            "*test_one*REGRESSED*",
            "*test_two*PASS*",
            "test_perf.py::test_one [[]main[]]: p50 latency*REGRESSED*",
            "*: 1 regressed, 0 improved, 0 inconclusive, 0 new, 0 missing",
            "FAILED test_perf.py::test_one - *Regression*",
        ]
    )
    assert "FAILED test_perf.py::test_two" not in result.stdout.str()


def test_warn_mode_reports_but_passes(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY_TWO", "0.1")
    result = project.runpytest("--agentperf-regression=warn", LOOSE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*test_two*REGRESSED*", "*1 regressed*(warn mode: regressions do not fail)"]
    )


def test_tolerance_from_the_command_line_and_the_marker(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_perf=TESTS.replace(
            "@pytest.mark.agent_perf(requests=30)\ndef test_two",
            '@pytest.mark.agent_perf(requests=30, tolerance="100%")\ndef test_two',
        )
    )
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY_ONE", "0.015")
    monkeypatch.setenv("DELAY_TWO", "0.015")
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)  # test_two tolerates 100%
    result.stdout.fnmatch_lines(["FAILED test_perf.py::test_one*"])
    project.runpytest("--agentperf-tolerance=100%").assert_outcomes(passed=2)
    result = project.runpytest("--agentperf-tolerance=lots")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agentperf-tolerance*malformed*"])


def test_no_compare_turns_the_gate_off(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY_ONE", "0.1")
    result = project.runpytest("--agentperf-no-compare")
    result.assert_outcomes(passed=2)
    assert "Δp95" not in result.stdout.str()


def test_changed_load_shape_is_not_comparable(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY_ONE", "0.1")
    project.makepyfile(test_perf=TESTS.replace("requests=30", "requests=15"))
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_one*NOT COMPARABLE*",
            "*test_one [[]main[]]: load shape changed (requests 30 -> 15)*",
            "*0 regressed*2 not comparable*",
        ]
    )


def test_new_and_missing_runs(project: pytest.Pytester) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    project.makepyfile(
        test_perf=TESTS.replace('make("two"), name="main"', 'make("two"), name="renamed"')
    )
    result = project.runpytest(LOOSE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_two*NEW*",
            "test_perf.py::test_two [[]main[]]: in the baseline but not run this session",
            "*0 regressed, 0 improved, 0 inconclusive, 1 new, 1 missing",
        ]
    )
    # A deselected test is not "missing".
    result = project.runpytest("-k", "test_one", LOOSE)
    result.stdout.fnmatch_lines(["*0 new, 0 missing"])


@pytest.mark.parametrize(
    ("content", "ours"),
    [
        ('{"format": "pytest-agentperf-baseline", "schema": 1, "runs": [', True),  # cut short
        ("", True),  # an empty file may be replaced
        ("{ truncated", False),
        ('{"format": "something else"}', False),
    ],
)
def test_an_unusable_baseline_is_a_warning_and_is_left_alone(
    project: pytest.Pytester, content: str, ours: bool
) -> None:
    path = project.path / BASELINE
    path.parent.mkdir()
    path.write_text(content, encoding="utf-8")
    result = project.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["WARNING: baseline file *baseline.json is unusable: *"])
    assert path.read_text(encoding="utf-8") == content
    result = project.runpytest("--agentperf-baseline")
    result.assert_outcomes(passed=2)
    if ours:  # only an explicit --agentperf-baseline replaces it, and says so
        result.stdout.fnmatch_lines(["*2 runs written, 0 kept (replaced an unusable file:*"])
        assert len(_runs(path)) == 2
    else:  # a file that is not a baseline is never replaced: the save fails, loudly
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(
            ["*ERROR: refusing to write *baseline.json: it exists and is not a pytest-agentperf*"]
        )
        assert path.read_text(encoding="utf-8") == content


def test_an_interrupted_session_writes_no_baseline(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_stop="""
        from agents import make

        def test_then_interrupt(agentperf):
            agentperf.run(make("one"), requests=5)
            raise KeyboardInterrupt
        """
    )
    result = project.runpytest_subprocess("--agentperf-baseline", "test_stop.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert not (project.path / BASELINE).exists()


def test_a_saving_run_is_not_gated(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.setenv("DELAY_ONE", "0.1")
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    monkeypatch.delenv("DELAY_ONE")
    result = project.runpytest(LOOSE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_one*IMPROVED*"])


def test_baseline_path_from_option_and_ini(project: pytest.Pytester) -> None:
    project.runpytest("--agentperf-baseline", "--agentperf-baseline-path=perf/base.json")
    assert (project.path / "perf" / "base.json").exists()
    project.makeini(INI + "agentperf_baseline_path = ci/baseline.json\n")
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    assert (project.path / "ci" / "baseline.json").exists()
    assert not (project.path / BASELINE).exists()


XDIST_TESTS = """
import pytest
from agents import make

@pytest.mark.agent_perf(requests=30)
@pytest.mark.parametrize("name", ["one", "two", "three", "four"])
def test_agent(agentperf, name):
    agentperf.run(make(name), name="main")
"""


def test_xdist_gate_fails_the_right_test_and_the_baseline_is_written_once(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(test_perf=XDIST_TESTS)
    result = project.runpytest_subprocess("-n", "2", "--agentperf-baseline")
    result.assert_outcomes(passed=4)
    assert result.stdout.str().count("baseline saved to") == 1
    result.stdout.fnmatch_lines(["*4 runs written, 0 kept*"])
    path = project.path / BASELINE
    assert len(_runs(path)) == 4
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]

    monkeypatch.setenv("DELAY_THREE", "0.1")
    result = project.runpytest_subprocess("-n", "2", LOOSE)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_agent?three?*REGRESSED*",
            "*: 1 regressed, 0 improved, 0 inconclusive, 0 new, 0 missing",
            "FAILED test_perf.py::test_agent?three? - *Regression*",
        ]
    )
    assert result.stdout.str().count("FAILED") == 1
    assert "baseline saved" not in result.stdout.str()


def test_a_baseline_that_cannot_be_written_fails_the_session(project: pytest.Pytester) -> None:
    (project.path / "blocker").write_text("a file, not a folder")
    result = project.runpytest("--agentperf-baseline", "--agentperf-baseline-path=blocker/b.json")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR: could not write the baseline file*"])


def test_a_test_skipped_at_run_time_is_not_missing(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_perf="""
        import os, pytest
        from agents import make

        def test_maybe(agentperf):
            if os.environ.get("SKIP_IT"):
                pytest.skip("not today")
            agentperf.run(make("one"), name="main", requests=10)
        """
    )
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("SKIP_IT", "1")
    result = project.runpytest(LOOSE)
    result.assert_outcomes(skipped=1)
    assert "not run this session" not in result.stdout.str()


def test_usage_known_on_one_side_only_is_noted_even_when_latency_passes(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_perf="""
        import os
        def agent(x=None):
            if os.environ.get("NO_USAGE"):
                return "text"
            return {"usage": {"prompt_tokens": 10, "completion_tokens": 5}}

        def test_usage(agentperf):
            agentperf.run(agent, name="main", requests=20)
        """
    )
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("NO_USAGE", "1")
    result = project.runpytest(LOOSE)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*note: token usage known on one side only*"])


def test_an_unreadable_entry_is_named_and_kept_while_the_rest_is_used(
    project: pytest.Pytester,
) -> None:
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    path = project.path / BASELINE
    doc = json.loads(path.read_text(encoding="utf-8"))
    (two,) = [r for r in doc["runs"] if r["test"].endswith("test_two")]
    two["shape"]["timeout"] = "thirty"  # edited by hand
    path.write_text(json.dumps(doc), encoding="utf-8")

    result = project.runpytest(LOOSE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_one*PASS*",
            "*test_two*NEW*",
            "WARNING: baseline file *baseline.json: entry of test 'test_perf.py::test_two' run "
            "'main' is ignored (runs[[]1[]].shape.timeout: expected a number, got a string)*",
            "*: 0 regressed, 0 improved, 0 inconclusive, 1 new, 0 missing",
        ]
    )
    # saving a subset keeps the unreadable entry as it was, and says so
    result = project.runpytest("--agentperf-baseline", "-k", "test_one")
    result.stdout.fnmatch_lines(
        ["*1 runs written, 0 kept (1 unreadable entries kept as they were)"]
    )
    saved = json.loads(path.read_text(encoding="utf-8"))["runs"]
    assert [r["shape"]["timeout"] for r in saved if r["test"].endswith("test_two")] == ["thirty"]
    # re-recording that test replaces it
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=2)
    assert "WARNING" not in project.runpytest(LOOSE).stdout.str()
