"""A new user's first hour (issue 12): defaults that do not mislead."""

from __future__ import annotations

import json

import pytest
from conftest import QUIET_MACHINE

from pytest_agentperf.settings import DEFAULT_REQUESTS, parse_settings

pytest_plugins = ["pytester"]

AGENTS = """
import time


def broken(x=None):
    raise ConnectionError("upstream refused the connection")


def fast(x=None):
    time.sleep(0.001)
    return x


class Wrapper:
    def __call__(self, x=None):
        return fast(x)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(agents=AGENTS)
    pytester.syspathinsert()
    return pytester


def test_a_run_in_which_every_call_failed_fails_naming_the_first_error(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_perf="""
        import pytest
        from agents import broken

        @pytest.mark.agent_perf(requests=5, warmup=0)
        def test_down(agentperf):
            agentperf.run(broken)

        @pytest.mark.agent_perf(requests=5, warmup=0, error_rate="100%")
        def test_allowed(agentperf):
            agentperf.run(broken)

        @pytest.mark.agent_perf(requests=5, warmup=0)
        def test_unchecked(agentperf):
            r = agentperf.run(broken, check=False)
            assert r.errors == 5
        """
    )
    result = project.runpytest("--agentperf-json=perf.json")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*BudgetExceeded: every measured call of run 'default' failed (5 of 5), so nothing "
            "was measured; first error: ConnectionError: upstream refused the connection*",
        ]
    )
    doc = json.loads(project.path.joinpath("perf.json").read_text())
    runs = {r["nodeid"].split("::")[1]: r for r in doc["runs"]}
    assert runs["test_down"]["status"] == "ERROR"
    assert runs["test_unchecked"]["status"] == "ERROR"  # not raised, but still not a pass
    assert runs["test_allowed"]["status"] == "PASS"  # the user said every call may fail


@pytest.mark.parametrize(
    ("settings", "requests"),
    [
        ({"p95": "1s"}, 59),
        ({"p99": "1s", "p95": "1s"}, 299),
        ({"p90": "1s"}, 29),  # min_samples_for(90): more than the default 20
        ({"p50": "1s"}, DEFAULT_REQUESTS),
        ({}, DEFAULT_REQUESTS),
        ({"p99": "1s", "requests": 10}, 10),  # the user's count is kept
        ({"p99": "1s", "duration": "5s"}, None),  # a duration run counts no calls
    ],
)
def test_the_default_call_count_is_enough_for_the_percentile_budgets(
    settings: dict[str, object], requests: int | None
) -> None:
    assert parse_settings(settings).requests == requests


def test_a_first_test_with_a_p95_budget_does_not_warn_about_itself(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_perf="""
        import pytest
        from agents import fast

        @pytest.mark.agent_perf(p95="5s", warmup=0)
        def test_first(agentperf):
            r = agentperf.run(fast)
            assert r.requests == 59
        """
    )
    result = project.runpytest("-W", "error::pytest_agentperf.AgentPerfWarning")
    result.assert_outcomes(passed=1)


def test_the_small_sample_advice_fits_the_mode(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_perf="""
        import pytest
        from agents import fast

        @pytest.mark.agent_perf(duration="0.2s", p99="5s", warmup=0)
        def test_closed(agentperf):
            agentperf.run(fast)

        @pytest.mark.agent_perf(duration="0.2s", rate=50, p99="5s", warmup=0)
        def test_open(agentperf):
            agentperf.run(fast)

        @pytest.mark.agent_perf(requests=10, p99="5s", warmup=0)
        def test_counted(agentperf):
            agentperf.run(fast)
        """
    )
    result = project.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_closed: p99 budget checked on * Raise duration= (or concurrency=)*",
            "*test_open: p99 budget checked on * Raise duration= (or rate=)*",
            "*test_counted: p99 budget checked on 10 samples*Raise requests=*",
        ]
    )


def test_wrapping_the_agent_differently_keeps_its_baseline_entry(
    project: pytest.Pytester,
) -> None:
    """An unnamed run is the test's "default" run, whatever the callable is called."""
    test = """
        import pytest
        from agents import fast, Wrapper

        @pytest.mark.agent_perf(requests=30, warmup=0)
        def test_agent(agentperf):
            agentperf.run({agent})
    """
    project.makepyfile(test_perf=test.format(agent="fast"))
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    saved = json.loads(project.path.joinpath(".agentperf", "baseline.json").read_text())
    keys = [(r["test"], r["run"]) for r in saved["runs"]]
    assert keys == [("test_perf.py::test_agent", "default")]
    for agent in ("lambda x=None: fast(x)", "Wrapper()"):
        project.makepyfile(test_perf=test.format(agent=agent))
        result = project.runpytest("--agentperf-regression=warn")
        result.assert_outcomes(passed=1)
        out = result.stdout.str()
        assert "0 new" in out and "0 missing" in out, out


SAME_TEST = """
import pytest
from agents import fast

@pytest.mark.agent_perf(requests=40, warmup=0)
def test_agent(agentperf):
    agentperf.run(fast)
"""


def test_a_scaled_run_never_replaces_the_baseline_and_is_not_compared(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_perf=SAME_TEST)
    refused = project.runpytest("--agentperf-scale=0.5", "--agentperf-baseline")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*a scaled run must not replace a full one*"])
    assert not project.path.joinpath(".agentperf", "baseline.json").exists()
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    scaled = project.runpytest("--agentperf-scale=0.5", "--agentperf-json=perf.json")
    scaled.assert_outcomes(passed=1)
    scaled.stdout.fnmatch_lines(["*: scaled by --agentperf-scale=0.5: not compared"])
    assert "re-record" not in scaled.stdout.str()
    (run,) = json.loads(project.path.joinpath("perf.json").read_text())["runs"]
    assert run["status"] == "NOT COMPARABLE"


def test_the_xdist_worker_count_is_recorded_and_a_change_is_flagged(
    project: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    project.makepyfile(test_perf=SAME_TEST)
    project.runpytest_subprocess("-n", "2", "--agentperf-baseline").assert_outcomes(passed=1)
    saved = json.loads(project.path.joinpath(".agentperf", "baseline.json").read_text())
    assert saved["runs"][0]["machine"]["workers"] == 2
    result = project.runpytest("-p", "no:xdist", "--agentperf-regression=warn")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["note: baseline from another machine: xdist workers 2 -> 0"])


def test_failed_warmup_calls_are_said_at_once(project: pytest.Pytester) -> None:
    """Under -W error the warning stops the test before its measured calls: said at once."""
    project.makepyfile(
        test_perf="""
        import pytest
        from agents import broken

        CALLS = []

        def counted(x=None):
            CALLS.append(x)
            return broken(x)

        @pytest.mark.agent_perf(requests=50, warmup=3)
        def test_sync(agentperf):
            agentperf.run(counted, check=False)

        async def abroken(x=None):
            raise TimeoutError("model endpoint timed out")

        @pytest.mark.asyncio
        @pytest.mark.agent_perf(requests=5, warmup=2)
        async def test_async(agentperf):
            await agentperf.arun(abroken, check=False)

        def test_calls_stopped_after_warmup():
            assert len(CALLS) == 3
        """
    )
    result = project.runpytest(
        "-p", "no:randomly", "-W", "error::pytest_agentperf.AgentPerfWarning"
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_sync: 3 of 3 warmup calls failed before the measured calls "
            "started; first error: ConnectionError: upstream refused the connection*",
            "*test_async: 2 of 2 warmup calls failed*TimeoutError: model endpoint*",
        ]
    )


def test_after_an_abort_budgets_that_need_the_whole_run_are_not_evaluated(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_perf="""
        import time
        import pytest
        from agents import broken

        def slow_broken(x=None):
            time.sleep(0.005)
            broken(x)

        @pytest.mark.agent_perf(
            requests=400, warmup=0, error_rate="5%", min_throughput=1_000_000,
            p95_drift=1.5, abort_on=["error_rate"],
        )
        def test_aborts(agentperf):
            r = agentperf.run(slow_broken, check=False)
            checks = {b.name: b for b in r.budgets}
            assert r.aborted
            assert not checks["error_rate"].passed and checks["error_rate"].evaluated
            for name in ("min_throughput", "p95_drift"):
                assert checks[name].passed and not checks[name].evaluated
                assert "not evaluated: run aborted" in checks[name].message
        """
    )
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


CONFIRM_TEST = """
import itertools
import os
import time

import pytest

CALLS = itertools.count()
SLOW_FIRST = int(os.environ.get("SLOW_FIRST", "0"))  # calls made 5x slower, from the start


def agent(x=None):
    time.sleep(0.010 if next(CALLS) < SLOW_FIRST else 0.002)


@pytest.mark.agent_perf(requests=40, warmup=0)
def test_agent(agentperf):
    agentperf.run(agent)
"""


def test_confirm_measures_a_regressed_run_again_before_failing_it(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(QUIET_MACHINE)
    project.makepyfile(test_perf=CONFIRM_TEST)
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    # a 2x tolerance: load on a shared machine cannot turn the 2 ms re-run into a regression,
    # while the 5x slowdown lies far beyond it
    loose = "--agentperf-tolerance=100%"
    monkeypatch.setenv("SLOW_FIRST", "40")  # the first measurement only: a passing blip
    blip = project.runpytest(loose, "--agentperf-confirm", "--agentperf-json=perf.json")
    blip.assert_outcomes(passed=1)
    blip.stdout.fnmatch_lines(
        ["*note: not confirmed (--agentperf-confirm): the first measurement regressed (p*"]
    )
    (run,) = json.loads(project.path.joinpath("perf.json").read_text())["runs"]
    assert run["result"]["requests"] == 40 and run["status"] != "REGRESSED"
    monkeypatch.setenv("SLOW_FIRST", "80")  # both measurements slow: a real regression
    real = project.runpytest(loose, "--agentperf-confirm")
    real.assert_outcomes(failed=1)
    real.stdout.fnmatch_lines(["*confirmed by a second measurement (--agentperf-confirm)*"])
    # without the option the blip fails at once
    monkeypatch.setenv("SLOW_FIRST", "40")
    project.runpytest(loose).assert_outcomes(failed=1)


def test_confirm_measures_generator_inputs_again_on_the_same_items(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(QUIET_MACHINE)
    project.makepyfile(
        test_perf=CONFIRM_TEST.replace(
            "def agent(x=None):\n",
            "def agent(x=None):\n    open('seen.txt', 'a').write(f'{x}\\n')\n",
        ).replace("agentperf.run(agent)", "agentperf.run(agent, (f'q{i}' for i in range(40)))")
    )
    project.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    project.path.joinpath("seen.txt").unlink()
    monkeypatch.setenv("SLOW_FIRST", "40")  # the first measurement only
    blip = project.runpytest("--agentperf-tolerance=100%", "--agentperf-confirm")
    blip.assert_outcomes(passed=1)
    blip.stdout.fnmatch_lines(["*note: not confirmed (--agentperf-confirm)*"])
    seen = project.path.joinpath("seen.txt").read_text().split()
    assert seen == [f"q{i}" for i in range(40)] * 2  # the second pass read the same items
