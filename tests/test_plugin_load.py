"""What loading the plugin costs, and what pytest versions it meets at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import pytest_agentperf
from pytest_agentperf.plugin import is_tty

pytest_plugins = ["pytester"]

HEAVY = (
    "numpy",
    "pytest_agentperf.engine",
    "pytest_agentperf.results",
    "pytest_agentperf.fixture",
    "pytest_agentperf.record",
    "pytest_agentperf.baseline",
    "langchain_core",
    "openai",
)
"""Modules that a session without perf tests must not pay for."""


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [m for m in json.loads(out) if m.split(".")[0] in {h.split(".")[0] for h in HEAVY}]


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m in HEAVY]


def test_importing_the_plugin_loads_neither_numpy_nor_the_engine_nor_an_integration() -> None:
    assert _heavy(_loaded_after("import pytest_agentperf.plugin")) == []
    assert _heavy(_loaded_after("import pytest_agentperf")) == []


def test_public_names_still_resolve_and_load_on_first_use() -> None:
    for name in pytest_agentperf.__all__:
        assert getattr(pytest_agentperf, name) is not None
        assert name in dir(pytest_agentperf)
    assert pytest_agentperf.PerfResult.__name__ == "PerfResult"
    assert callable(pytest_agentperf.record_usage)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = pytest_agentperf.no_such_name  # type: ignore[attr-defined]
    assert "numpy" in _loaded_after("from pytest_agentperf import PerfResult")


TWICE = """
from pytest_agentperf import record_usage

def agent():
    record_usage(input_tokens=3, output_tokens=2, model="gpt-4o-mini")

def test_tokens(agentperf):
    assert agentperf.run(agent, requests=4, warmup=0).usage.total_tokens == 20
"""


def test_record_usage_is_seen_in_a_second_in_process_session(pytester: pytest.Pytester) -> None:
    # pytester drops the package's submodules after each in-process session while the package
    # itself stays loaded: a lazily resolved public name must follow the reloaded module.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_twice=TWICE)
    for _ in range(2):
        pytester.runpytest_inprocess("-p", "no:randomly").assert_outcomes(passed=1)


CONFTEST = """
import json, sys

def pytest_sessionfinish(session):
    with open("modules.json", "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def _session_modules(pytester: pytest.Pytester, *args: str) -> set[str]:
    result = pytester.runpytest_subprocess("-p", "no:randomly", *args)
    result.assert_outcomes(passed=1)
    return set(json.loads((pytester.path / "modules.json").read_text()))


def test_a_session_without_perf_tests_does_not_import_numpy_through_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "agentperf_monthly_calls = 1000\n"  # cost options are checked at start-up, numpy-free
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_plain():\n    pass\n")
    with_plugin = _session_modules(pytester, "--agentperf-scale=0.5")
    without = _session_modules(pytester, "-p", "no:agentperf")
    assert "pytest_agentperf.plugin" in with_plugin
    added = with_plugin - without
    assert [m for m in added if m.split(".")[0] == "numpy" or m in HEAVY] == []


def test_a_perf_test_loads_what_it_needs_on_first_use(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        "def test_agent(agentperf):\n    agentperf.run(lambda: None, requests=3, warmup=0)\n"
    )
    modules = _session_modules(pytester)
    assert {"numpy", "pytest_agentperf.engine", "pytest_agentperf.fixture"} <= modules


class _CallableBool:
    """Like pytest's CallableBool: ``TerminalReporter.isatty`` in pytest >= 8.1."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value

    def __call__(self) -> bool:
        return self.value


class _Reporter:
    def __init__(self, isatty: Any) -> None:
        self.isatty = isatty


@pytest.mark.parametrize("value", [True, False])
def test_is_tty_reads_isatty_as_an_attribute_or_a_method(value: bool) -> None:
    assert is_tty(_Reporter(value)) is value  # pytest 7.4 and 8.0: a plain bool
    assert is_tty(_Reporter(_CallableBool(value))) is value  # later pytest
    assert is_tty(_Reporter(lambda: value)) is value  # a plain method


PROGRESS_TEST = """
import time
import pytest

@pytest.mark.agent_perf(duration="2.3s", warmup=0)
def test_slow(agentperf):
    agentperf.run(lambda: time.sleep(0.01))
"""


@pytest.mark.parametrize("isatty", ["True", "lambda: True"], ids=["bool", "method"])
def test_the_progress_line_is_drawn_on_a_terminal_of_any_pytest_version(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, isatty: str
) -> None:
    """pytest 7.4 and 8.0 have ``isatty`` as a bool: calling it failed every perf test."""
    monkeypatch.delenv("CI", raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    # pytest itself calls isatty() at collection: change it only while the test runs
    pytester.makeconftest(
        "import pytest\n\n"
        "@pytest.fixture(autouse=True)\n"
        "def terminal(request):\n"
        "    tr = request.config.pluginmanager.get_plugin('terminalreporter')\n"
        "    old, tr.isatty = tr.isatty, " + isatty + "\n"
        "    yield\n"
        "    tr.isatty = old\n"
    )
    pytester.makepyfile(test_p=PROGRESS_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*agentperf test_p.py::test_slow*: * calls, *"])


def test_a_session_without_perf_tests_does_not_read_the_baseline(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    baseline = pytester.path / ".agentperf" / "baseline.json"
    baseline.parent.mkdir()
    baseline.write_text("{ truncated", encoding="utf-8")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "unusable" not in result.stdout.str()
    pytester.makepyfile(
        test_perf="def test_agent(agentperf):\n    agentperf.run(lambda: None, requests=3)\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["WARNING: baseline file *baseline.json is unusable: *"])
