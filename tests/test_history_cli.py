"""``agentperf history [DIR]``: trends and change points, as tables, JSON or an HTML page."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import make_result

from pytest_agentperf.baseline.environment import Machine
from pytest_agentperf.cli import main
from pytest_agentperf.history.store import machine_id, new_session, run_from_result, write_session
from pytest_agentperf.results import Cost, PerCallUsage, Usage

HERE = Machine(cpu="Test CPU", cores=4, os="Linux", arch="x86_64", python="3.11.4", workers=0)
THERE = Machine(cpu="Other CPU", cores=2, os="Linux", arch="x86_64", python="3.11.4", workers=0)
T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def no_machine_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPERF_MACHINE", raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """30 daily sessions of two tests on one machine: test_a's p95 steps up 40 % at day 15
    (commit ...0f); test_b is steady; plus 3 sessions of another machine."""
    rng = np.random.default_rng(1)
    for day in range(30):
        slow = 1.4 if day >= 15 else 1.0
        runs = [
            run_from_result(
                "t.py::test_a",
                make_result(
                    0.1 * slow * np.exp(rng.normal(0, 0.02)) * np.exp(rng.normal(0, 0.05, 60)),
                    usage=Usage(per_call=PerCallUsage(total_tokens=500.0)),
                    cost=Cost(total=0.06, per_call=0.001),
                ),
                "PASS",
            ),
            run_from_result(
                "t.py::test_b",
                make_result(0.2 * np.exp(rng.normal(0, 0.05, 60)), name="stream"),
                "PASS",
            ),
        ]
        created = T0 + timedelta(days=day)
        session = new_session(
            runs, machine=HERE, commit=f"c{day:02d}abcdef", plugin_version="0", created=created
        )
        write_session(tmp_path, session)
    for day in range(3):
        run = run_from_result("t.py::test_a", make_result([5.0] * 20), "PASS")
        other = new_session(
            [run], machine=THERE, commit=None, plugin_version="0", created=T0 + timedelta(days=day)
        )
        write_session(tmp_path, other)
    return tmp_path


def test_the_table_shows_each_series_and_its_change_points(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"machine {machine_id(HERE)}: latest session 2026-10-30 00:00 UTC" in out
    assert f"machine {machine_id(THERE)}" in out  # a table of its own
    lines = out.splitlines()
    p95 = next(line for line in lines if "t.py::test_a" in line and " p95 " in line)
    assert re.search(r" 30 .* \+(3[5-9]|4[0-5])% ", p95)  # 30 sessions, a trend of about +40 %
    assert any("t.py::test_b [stream]" in line and "flat" in line for line in lines)
    change = next(line for line in lines if "test_a: p95 latency" in line)
    assert "-> " in change and "worse, p=" in change
    assert "at commit c15abcdef, 2026-10-16 00:00 UTC" in change  # day 15: its first session


def test_json_filtered_by_test_metric_and_since(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["history", str(folder), "--test", "test_a", "--metric", "p50,p95", "--json"]
    assert main([*args, "--machine", machine_id(HERE), "--since", "2026-10-05"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(s["test"], s["metric"]) for s in doc["series"]] == [
        ("t.py::test_a", "p50"),
        ("t.py::test_a", "p95"),
    ]
    p95 = doc["series"][1]
    assert len(p95["points"]) == 26  # from 2026-10-05 on
    (cp,) = p95["change_points"]
    assert cp["created"] == "2026-10-16T00:00:00Z" and cp["commit"] == "c15abcdef"
    assert cp["change"] == pytest.approx(0.4, abs=0.08)
    assert cp["p_value"] < 0.001


def test_machines_are_mixed_only_when_asked(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["history", str(folder), "--test", "test_a", "--metric", "p50", "--json"])
    separate = json.loads(capsys.readouterr().out)["series"]
    assert sorted(len(s["points"]) for s in separate) == [3, 30]
    main(
        ["history", str(folder), "--test", "test_a", "--metric", "p50", "--json", "--all-machines"]
    )
    (mixed,) = json.loads(capsys.readouterr().out)["series"]
    assert mixed["machine"] == "all" and len(mixed["points"]) == 33


def test_the_html_page_draws_each_series_with_its_change_points(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "history.html"
    assert main(["history", str(folder), "--metric", "p95", "--html", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>\n<!-- pytest-agentperf history page -->")
    assert "uPlot" in text and "http://" not in text.split("<script>", 1)[0]
    data = text.split('id="history-data">', 1)[1].split("</script>", 1)[0]
    series = json.loads(data)["series"]
    assert len(series) == 3  # test_a and test_b here, test_a there
    assert [s["changes"] for s in series if s["changes"]] == [[15]]
    assert "p95 latency" in text and "at commit c15abcdef" in text
    assert main(["history", str(folder), "--html", str(page)]) == 0  # replaces its own page
    foreign = tmp_path / "notes.html"
    foreign.write_text("mine")
    assert main(["history", str(folder), "--html", str(foreign)]) == 2
    assert foreign.read_text() == "mine"
    assert "refusing to write" in capsys.readouterr().err


def test_wrong_input_says_what_to_change(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", str(tmp_path / "none")]) == 2
    assert "no such folder (a session writes one with --agentperf-history=" in (
        capsys.readouterr().err
    )
    assert main(["history", str(folder), "--metric", "p42"]) == 2
    assert "unknown metric 'p42': choose from p50, p95" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["history", str(folder), "--since", "last week"])
    assert "is not a date" in capsys.readouterr().err
    assert main(["history", str(folder), "--p", "3"]) == 2
    assert main(["history", str(folder), "--test", "nothing-like-this"]) == 0
    assert "no history to show" in capsys.readouterr().out


def test_a_corrupt_file_is_named_and_skipped(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / machine_id(HERE) / "20261101T000000000000Z-x.json").write_text("{")
    assert main(["history", str(folder), "--metric", "p50"]) == 0
    captured = capsys.readouterr()
    assert "warning: history file" in captured.err and "x.json skipped: not JSON" in captured.err
    assert "t.py::test_a" in captured.out
