"""The plugin's own hooks, the report writer registry, and the old import paths."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest
from pytest_agentperf.testing import SimulatedAgent

agent = SimulatedAgent(median="2ms", seed=1)


@pytest.mark.agent_perf(requests=12, concurrency=2, warmup=0)
@pytest.mark.parametrize("k", range(4))
def test_agent(agentperf, k):
    agentperf.run(agent.call_sync, name=f"run{k}")


@pytest.mark.agent_perf(requests=8, warmup=0)
def test_two_runs(agentperf):
    agentperf.run(agent.call_sync, name="first")
    agentperf.run(agent.call_sync, name="second")
"""

HOOKS = """
import json


def pytest_agentperf_run_finished(config, record):
    with open("runs.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps([record.nodeid, record.name]) + "\\n")


def pytest_agentperf_session_finished(config, records):
    rows = [
        {
            "nodeid": r.nodeid,
            "name": r.name,
            "status": r.status.value,
            "p95": r.result.latency.p95,
            "n": r.result.latency.n,
            "type": type(r).__name__,
        }
        for r in records
    ]
    with open("session.json", "w", encoding="utf-8") as f:
        json.dump(rows, f)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_perf=TESTS)
    pytester.makeconftest(HOOKS)
    return pytester


EXPECTED = sorted(
    [(f"test_perf.py::test_agent[{k}]", f"run{k}") for k in range(4)]
    + [("test_perf.py::test_two_runs", "first"), ("test_perf.py::test_two_runs", "second")]
)


def test_a_conftest_receives_every_record_of_an_xdist_session(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-n", "2", "--agentperf-json=perf.json")
    result.assert_outcomes(passed=5)
    rows = json.loads((project.path / "session.json").read_text(encoding="utf-8"))
    assert sorted((r["nodeid"], r["name"]) for r in rows) == EXPECTED
    for row in rows:  # objects with figures, not dicts
        assert row["type"] == "RunRecord" and row["status"] == "PASS"
        assert isinstance(row["p95"], float) and row["p95"] > 0
    per_run = (project.path / "runs.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(tuple(json.loads(line)) for line in per_run) == EXPECTED  # once per run
    # the conftest saw what the JSON writer wrote
    runs = json.loads((project.path / "perf.json").read_text(encoding="utf-8"))["runs"]
    by_key = {(r["nodeid"], r["name"]): r["result"]["latency"]["p95"] for r in runs}
    assert by_key == {(r["nodeid"], r["name"]): r["p95"] for r in rows}


def test_the_session_hook_runs_without_perf_tests_and_without_the_terminal(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(HOOKS)
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:terminal")
    assert result.ret == pytest.ExitCode.OK
    assert json.loads((pytester.path / "session.json").read_text(encoding="utf-8")) == []


TOY_WRITER = '''
"""``--agentperf-myformat=PATH``: one line per run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_agentperf.record import RunRecord
from pytest_agentperf.report.protocol import ReportContext


class MyFormatWriter:
    label = "my-format report"

    def __init__(self, path: str) -> None:
        self.target = path

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        lines = [f"{r.nodeid} [{r.name}] {r.status} p95={r.result.latency.p95}" for r in records]
        Path(self.target).write_text("\\n".join(lines) + "\\n", encoding="utf-8")
        return f"{self.label} written to {self.target}"


def create(value: str | None, options: Mapping[str, Any]) -> MyFormatWriter:
    assert value
    return MyFormatWriter(value)
'''


def test_a_toy_writer_added_as_the_architecture_doc_says(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/architecture.md, "A report": one module and one ``WRITERS`` entry, nothing else.
    The module is the doc's example; the entry is added to the registry as the doc's edit
    would (a test cannot edit the installed package)."""
    from pytest_agentperf import report

    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_perf=TESTS)
    pytester.makepyfile(toy_myformat=TOY_WRITER)
    pytester.syspathinsert()
    entry = report.WriterEntry(
        "myformat",
        "toy_myformat",
        option="--agentperf-myformat",
        help="write one line per run to PATH",
    )
    monkeypatch.setattr(report, "WRITERS", (*report.WRITERS, entry))
    result = pytester.runpytest("--agentperf-myformat=out.txt", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["agentperf: my-format report written to out.txt"])
    lines = (pytester.path / "out.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6
    head, p95 = lines[0].split(" p95=")
    assert head == "test_perf.py::test_agent[0] [run0] PASS"
    assert 0.001 < float(p95) < 5  # a 2 ms agent, however slow the machine
    # without its option the writer's module is never imported
    (pytester.path / "out.txt").unlink()
    pytester.makeconftest(
        "import sys\n"
        "def pytest_agentperf_session_finished(config, records):\n"
        "    open('loaded.txt', 'w').write(str('toy_myformat' in sys.modules))\n"
    )
    sys.modules.pop("toy_myformat", None)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=5)
    assert (pytester.path / "loaded.txt").read_text() == "False"
    assert not (pytester.path / "out.txt").exists()


def test_a_writer_that_fails_fails_the_session_with_its_label(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_agentperf import report

    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_perf=TESTS)
    pytester.makepyfile(
        toy_broken=textwrap.dedent(
            """
            class Broken:
                label = "broken report"
                target = "nowhere"

                def write(self, records, context):
                    raise OSError(28, "No space left on device")


            def create(value, options):
                return Broken()
            """
        )
    )
    pytester.syspathinsert()
    entry = report.WriterEntry("broken", "toy_broken", option="--agentperf-broken")
    monkeypatch.setattr(report, "WRITERS", (*report.WRITERS, entry))
    result = pytester.runpytest("--agentperf-broken=x", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["agentperf: ERROR: could not write the broken report nowhere: No space left on device"]
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pytest_agentperf.compare", "pytest_agentperf.baseline.comparison"),
        ("pytest_agentperf.gate", "pytest_agentperf.baseline.gate"),
        ("pytest_agentperf.memory", "pytest_agentperf.observers.memory"),
        ("pytest_agentperf.windows", "pytest_agentperf.observers.windows"),
        ("pytest_agentperf.abort", "pytest_agentperf.observers.abort"),
        ("pytest_agentperf.contention", "pytest_agentperf.observers.contention"),
        ("pytest_agentperf.runner", "pytest_agentperf.fixture"),
        ("pytest_agentperf.collect", "pytest_agentperf.assemble"),
    ],
)
def test_old_import_paths_give_the_moved_modules(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_old_baseline_and_sim_names_still_import() -> None:
    from pytest_agentperf.compare import compare  # type: ignore[import-not-found]

    from pytest_agentperf.baseline import Baseline, load, machine_info  # noqa: F401
    from pytest_agentperf.baseline.comparison import compare as new_compare
    from pytest_agentperf.sim import SimulatedAgent
    from pytest_agentperf.testing import SimulatedAgent as NewSimulatedAgent

    assert compare is new_compare and SimulatedAgent is NewSimulatedAgent


def test_a_record_that_cannot_be_read_fails_the_session_and_says_so(
    project: pytest.Pytester,
) -> None:
    """As a worker running another plugin version would send: the run is not silently lost."""
    project.makeconftest(
        HOOKS
        + textwrap.dedent(
            """
            import pytest

            @pytest.hookimpl(hookwrapper=True, tryfirst=True)  # its after-part runs last
            def pytest_runtest_makereport(item, call):
                outcome = yield
                report = outcome.get_result()
                for data in getattr(report, "agentperf_runs", None) or []:
                    data["status"] = "MAYBE"
            """
        )
    )
    result = project.runpytest("-p", "no:randomly", "-k", "test_two_runs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "agentperf: ERROR: a run of test_perf.py::test_two_runs could not be read: "
            "record.status: 'MAYBE' is not a RunStatus"
        ]
    )


def test_every_writer_names_modules_its_extra_installs() -> None:
    from pytest_agentperf import report

    needing = {e.name: e for e in report.WRITERS if e.requires}
    assert set(needing) == {"openmetrics", "pushgateway", "otel", "html"}
    for entry in needing.values():
        assert entry.extra and entry.missing() == []  # the dev extra installs every one


def test_a_missing_extra_stops_the_session_before_any_load_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_agentperf import report

    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_perf=TESTS)
    html = next(e for e in report.WRITERS if e.name == "html")
    lacking = dataclasses.replace(html, requires=("jinja2", "no_such_module_for_agentperf.sub"))
    monkeypatch.setattr(
        report, "WRITERS", tuple(lacking if e is html else e for e in report.WRITERS)
    )
    result = pytester.runpytest("--agentperf-html=out.html", "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--agentperf-html needs the [[]html[]] extra (no_such_module_for_agentperf.sub is "
            "not installed): pip install 'pytest-agentperf[[]html[]]'"
        ]
    )
    assert "passed" not in result.stdout.str()
