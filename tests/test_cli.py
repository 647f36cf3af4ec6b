"""The ``agentperf`` console script: ``agentperf report RESULTS.json --html PATH``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import INI

TESTS = """
import time, pytest
from pytest_agentperf import record_usage

def agent(x):
    time.sleep(0.001)
    record_usage(10, 5, model="gpt-4o-mini")
    if x == 1:
        raise ValueError("boom")

@pytest.mark.agent_perf(requests=12, concurrency=2, error_rate="50%")
def test_one(agentperf):
    agentperf.run(agent, [0, 1, 2])
    agentperf.run(agent, [0, 2], name="second")
"""


@pytest.fixture
def results(pytester: pytest.Pytester) -> Path:
    """A JSON report of two runs, written by a pytest session (without the per-call table)."""
    pytester.makeini(INI)
    pytester.makepyfile(test_cli_project=TESTS)
    pytester.runpytest("--agentperf-json=results.json").assert_outcomes(passed=1)
    return pytester.path / "results.json"


def test_report_renders_the_saved_runs_as_html(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_agentperf.cli import main

    out = tmp_path / "site" / "report.html"
    assert main(["report", str(results), "--html", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "test_cli_project.py::test_one [second]" in page
    assert page.count('class="run"') == 2
    assert f"from {results}" in page  # says what it was rendered from
    assert "Not in this report: the per-call table" in page  # the JSON kept no calls
    assert "HTML report of 2 runs written to" in capsys.readouterr().out


def test_the_runs_are_read_back_as_records(results: Path) -> None:
    from pytest_agentperf.cli import load_records

    records = load_records(results)
    assert [r.name for r in records] == ["default", "second"]
    assert records[0].result.errors == 4 and records[0].result.latency.n == 8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"format": "something-else", "runs": []}', "not a pytest-agentperf JSON report"),
        ("[1, 2]", "not a pytest-agentperf JSON report"),
        ('{"format": "pytest-agentperf-results", "runs": [{"nodeid": 3}]}', "run 0 cannot"),
        ('{"format": "pytest-agentperf-results", "runs": [7]}', "run 0 is not an object"),
    ],
)
def test_a_missing_or_invalid_file_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    from pytest_agentperf.cli import USAGE_ERROR, main

    source = tmp_path / "results.json"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    out = tmp_path / "report.html"
    assert main(["report", str(source), "--html", str(out)]) == USAGE_ERROR == 2
    err = capsys.readouterr().err
    assert err.startswith("agentperf report: error: ") and message in err
    assert not out.exists()


def test_a_file_that_is_not_a_report_is_not_overwritten(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_agentperf.cli import main

    out = tmp_path / "index.html"
    out.write_text("<p>my page</p>", encoding="utf-8")
    assert main(["report", str(results), "--html", str(out)]) == 2
    assert "refusing to write" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "<p>my page</p>"


def test_a_command_is_required_and_html_too(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_agentperf.cli import main

    with pytest.raises(SystemExit) as no_command:
        main([])
    with pytest.raises(SystemExit) as no_html:
        main(["report", "results.json"])
    assert no_command.value.code == no_html.value.code == 2
    assert "--html" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "pytest_agentperf", "report", str(results), "--html", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    nowhere = str(tmp_path / "no.json")
    missing = subprocess.run(
        [sys.executable, "-m", "pytest_agentperf", "report", nowhere, "--html", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_the_console_script_is_declared() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"agentperf": "pytest_agentperf.cli:main"}
    assert json.dumps(project["project"]["optional-dependencies"]["html"]).count("jinja2") == 1
