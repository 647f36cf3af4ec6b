from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import run_load
from pytest_agentperf.errors import OutputPathError
from pytest_agentperf.record import RunRecord
from pytest_agentperf.report import json as json_report
from pytest_agentperf.report import terminal
from pytest_agentperf.settings import parse_settings


def _record(test: str, name: str, **settings: object) -> RunRecord:
    s = parse_settings({"requests": 10, "warmup": 0, **settings})
    raw = run_load(lambda: {"usage": {"prompt_tokens": 3, "completion_tokens": 4}}, None, s)
    return RunRecord.of(test, build_result(name, s, raw))


def test_table_has_one_row_per_run_and_human_units() -> None:
    records = [
        _record("tests/test_a.py::test_one", "agent"),
        _record("tests/test_a.py::test_two", "first", rate=500),
        _record("tests/test_a.py::test_two", "second", p95="1us"),
    ]
    text = terminal.render(records)
    lines = text.splitlines()
    header = ["test", "n", "load", "achieved", "late", "p50", "p95", "p99"]  # one run is open loop
    assert lines[0].split()[:8] == header
    assert "test_a.py::test_one " in text
    assert "test_a.py::test_two [first]" in text and "test_a.py::test_two [second]" in text
    assert "500/s" in text and "c=1" in text
    assert "FAIL p95" in text
    assert " 7 " in text  # tokens per call
    assert "µs" in text or "ms" in text
    failures = terminal.failure_lines(records)
    assert any("p95 latency" in line and "budget 1 µs" in line for line in failures)


def test_nothing_rendered_without_runs() -> None:
    assert terminal.render([]) == ""


def test_json_report_is_valid_and_versioned(tmp_path: Path) -> None:
    records = [_record("t::x", "agent")]
    path = json_report.write(tmp_path / "sub" / "perf.json", records, "9.9")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2 and data["plugin_version"] == "9.9"
    assert data["machine"]["cores"] >= 1
    (run,) = data["runs"]
    assert run["nodeid"] == "t::x" and run["result"]["requests"] == 10
    assert run["status"] == "PASS"
    assert RunRecord.from_dict(run).result.latency.p50 == records[0].result.latency.p50
    assert len(run["result"]["latency"]["samples"]) == 10
    assert run["result"]["usage"]["total_tokens"] == 70


def test_json_report_replaces_its_own_file_and_no_other(tmp_path: Path) -> None:
    target = tmp_path / "perf.json"
    json_report.write(target, [_record("t::x", "first")], "1")
    assert json.loads(target.read_text())["format"] == "pytest-agentperf-results"
    json_report.write(target, [_record("t::x", "second")], "1")
    assert json.loads(target.read_text())["runs"][0]["name"] == "second"
    target.write_text('{"results": "of another tool"}')
    with pytest.raises(OutputPathError, match="not a pytest-agentperf JSON report"):
        json_report.write(target, [_record("t::x", "third")], "1")
    assert target.read_text() == '{"results": "of another tool"}'


def test_json_report_never_leaves_a_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "perf.json"
    target.write_text("old")
    monkeypatch.setattr(json_report, "document", lambda *a: {"bad": float("nan")})
    with pytest.raises(ValueError):
        json_report.write(target, [_record("t::x", "first")], "1")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["perf.json"]


def test_section_is_silent_without_runs_or_notes() -> None:
    assert terminal.section([], [], []) == []
    assert terminal.section([], ["WARNING: bad file"], []) == ["agentperf: WARNING: bad file"]
    lines = terminal.section(
        [_record("t::x", "agent")], ["baseline b.json: 0 regressed"], ["saved"]
    )
    assert lines[0].startswith("test") and lines[-2:] == [
        "baseline b.json: 0 regressed",
        "agentperf: saved",
    ]
