"""The Markdown summary (``--agentperf-markdown``, GitHub's step summary) and the JUnit
properties: the parts on their own, then end to end through pytester (also under xdist)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import INI, QUIET_MACHINE, make_result

pytest_plugins = ["pytester"]

LIMIT = 1024 * 1024

# ------------------------------------------------------------------------------- the parts


def _records(statuses: list[str]) -> list[object]:
    from pytest_agentperf.record import RunRecord, RunStatus

    return [
        RunRecord(
            nodeid=f"test_x.py::test_{i}",
            name="default",
            status=RunStatus(status),
            result=make_result([0.01, 0.02, 0.03]),
        )
        for i, status in enumerate(statuses)
    ]


def test_escape_keeps_a_cell_in_its_cell_and_opens_no_html() -> None:
    from pytest_agentperf.report.markdown import escape

    text = escape("a|b<img src=x onerror=alert(1)>`code`\nnext *row* [x](y) \\|")
    assert "<" not in text and ">" not in text and "\n" not in text
    assert re.search(r"(?<!\\)\|", text.replace("\\\\", "")) is None  # every pipe escaped
    assert re.search(r"(?<!\\)`", text.replace("\\\\", "")) is None
    assert text.startswith("a\\|b&lt;img src=x onerror=alert(1)&gt;")


def test_safe_masks_a_key_before_escaping() -> None:
    from pytest_agentperf.report.markdown import safe

    assert safe("key sk-proj-abcdefghijklmnopqrstuvwx|") == "key sk-proj-\\*\\*\\*\\|"


def test_the_verdict_counts_runs_by_status() -> None:
    from pytest_agentperf.report.markdown import verdict

    assert verdict(_records(["PASS", "REGRESSED", "PASS"])) == "3 runs: 2 PASS, 1 REGRESSED"
    assert verdict(_records(["FAIL"])) == "1 run: 1 FAIL"
    assert verdict([]) == "0 runs"


def _summary(statuses: list[str]):  # type: ignore[no-untyped-def]
    from pytest_agentperf.report.markdown import summary
    from pytest_agentperf.report.protocol import ReportContext

    return summary(_records(statuses), ReportContext(plugin_version="0"))  # type: ignore[arg-type]


def test_fit_cuts_passing_rows_first_says_how_many_and_keeps_the_verdict() -> None:
    from pytest_agentperf.report.markdown import fit

    text = _summary(["PASS"] * 40 + ["FAIL"] + ["PASS"] * 40)
    whole = text.text()
    limit = len(whole.encode()) // 3
    cut_text, cut = fit(text, limit)
    assert cut_text is not None and len(cut_text.encode()) <= limit
    assert "**81 runs: 80 PASS, 1 FAIL**" in cut_text
    assert 0 < cut < 81
    assert f"{cut} of 81 table rows" in cut_text
    assert "test\\_40 " in cut_text  # the failing run is kept
    rows = [line for line in cut_text.splitlines() if line.startswith("| test\\_x")]
    assert len(rows) == 81 - cut
    assert fit(text, len(whole.encode())) == (whole, 0)  # room enough: nothing cut


def test_fit_gives_none_when_not_even_the_verdict_fits() -> None:
    from pytest_agentperf.report.markdown import fit

    assert fit(_summary(["PASS"]), 40) == (None, 1)


def test_append_keeps_what_is_there_and_stays_below_an_injected_limit(tmp_path: Path) -> None:
    from pytest_agentperf.report.markdown import append_step_summary

    step = tmp_path / "step.md"
    step.write_text("# Earlier step\nno newline at the end", encoding="utf-8")
    line = append_step_summary(str(step), _summary(["PASS"] * 50), limit=3000)
    text = step.read_text(encoding="utf-8")
    assert text.startswith("# Earlier step\nno newline at the end\n\n<!-- pytest-agentperf")
    assert len(text.encode()) < 3000
    assert re.search(r"appended to .*step\.md \((\d+) of 50 table rows cut", line)
    before = step.read_bytes()
    full = append_step_summary(str(step), _summary(["PASS"]), limit=len(before) + 50)
    assert full.startswith("not appended to") and "bytes" in full
    assert step.read_bytes() == before


def test_append_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    from pytest_agentperf.report.markdown import append_step_summary

    line = append_step_summary(str(tmp_path), _summary(["PASS"]))
    assert line.endswith("it is not a regular file")


def test_junit_properties_name_each_run_and_give_seconds() -> None:
    from pytest_agentperf.record import RunRecord
    from pytest_agentperf.report.junit import properties

    result = make_result([0.1, 0.2, 0.3], name="c=4")
    props = dict(properties(RunRecord.of("t.py::test", result)))
    assert props["agentperf[c=4].status"] == "PASS"
    assert props["agentperf[c=4].requests"] == 3
    assert props["agentperf[c=4].p50_s"] == pytest.approx(0.2)
    assert props["agentperf[c=4].throughput_per_s"] == 10.0
    assert "agentperf[c=4].cost_per_call_usd" not in props  # unknown: left out
    assert all(name.startswith("agentperf[c=4].") for name in props)
    assert "agentperf[c=4].ttft_p95_s" not in props  # no stream


def test_junit_properties_of_a_streamed_run_have_its_time_to_first_chunk() -> None:
    import numpy

    from pytest_agentperf.record import RunRecord
    from pytest_agentperf.report.junit import properties
    from pytest_agentperf.stats import summarize

    ttft = summarize(numpy.asarray([0.05] * 20))
    props = dict(properties(RunRecord.of("t.py::test", make_result([0.1] * 20, ttft=ttft))))
    assert props["agentperf[default].ttft_p95_s"] == pytest.approx(0.05)


# ------------------------------------------------------------------------------ end to end

TESTS = """
import pytest
from agents import fast_sync, make


@pytest.mark.agent_perf(requests=6, warmup=0)
def test_fast(agentperf):
    agentperf.run(fast_sync)


@pytest.mark.agent_perf(requests=6, warmup=0, p95="1us")
def test_over_budget(agentperf):
    agentperf.run(fast_sync)
"""


@pytest.fixture
def project(agents: pytest.Pytester) -> pytest.Pytester:
    agents.makepyfile(test_perf=TESTS)
    return agents


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_the_markdown_file_has_the_verdict_the_table_and_the_broken_budget(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest("-p", "no:randomly", "--agentperf-markdown=out/summary.md")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["agentperf: Markdown summary written to *summary.md"])
    text = _read(project.path / "out" / "summary.md")
    lines = text.splitlines()
    assert lines[:4] == [
        "<!-- pytest-agentperf summary -->",
        "## Agent performance",
        "",
        "**2 runs: 1 PASS, 1 FAIL**",
    ]
    assert lines[5].startswith("| test | n | load | p50 | p95 | p99 |")
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| test\\_perf")}
    assert rows["| test\\_perf.py::test\\_fast"].endswith("| PASS |")
    assert rows["| test\\_perf.py::test\\_over\\_budget"].endswith("| FAIL p95 |")
    broken = text.split("### Budgets, errors and notes\n\n")[1].splitlines()[0]
    assert re.fullmatch(
        r"- test\\_perf\.py::test\\_over\\_budget: p95 latency .* &gt; budget 1 µs .*", broken
    )
    # run again: our own file is replaced
    project.runpytest("-p", "no:randomly", "--agentperf-markdown=out/summary.md")
    assert _read(project.path / "out" / "summary.md").count("## Agent performance") == 1


def test_a_file_that_is_not_a_summary_is_not_replaced(project: pytest.Pytester) -> None:
    (project.path / "notes.md").write_text("# my notes\n", encoding="utf-8")
    result = project.runpytest("-p", "no:randomly", "--agentperf-markdown=notes.md")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ERROR: Markdown summary not written: refusing to write *"])
    assert _read(project.path / "notes.md") == "# my notes\n"


# The gate's tests make the agent 5x slower between sessions (see test_gate_plugin.py).
REGRESSION = """
import pytest
from agents import make

@pytest.mark.agent_perf(requests=30)
def test_one(agentperf):
    agentperf.run(make("one"), name="main")
"""


def test_a_regression_shows_baseline_vs_now_in_markdown_and_junit(
    agents: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DELAY_ONE", raising=False)
    agents.makepyfile(test_perf=REGRESSION)
    agents.makeconftest(QUIET_MACHINE)
    agents.runpytest("-p", "no:randomly", "--agentperf-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("DELAY_ONE", "0.05")  # 5x slower
    result = agents.runpytest(
        "-p",
        "no:randomly",
        "--agentperf-tolerance=100%",
        "--agentperf-markdown=summary.md",
        "--junitxml=junit.xml",
    )
    result.assert_outcomes(failed=1)
    text = _read(agents.path / "summary.md")
    assert "**1 run: 1 REGRESSED**" in text
    table = text.split("### Against the baseline\n\n")[1].splitlines()
    assert table[0] == "| test | metric | baseline | now | change (95% CI) | verdict |"
    p50 = next(row for row in table if "| p50 latency |" in row)
    assert re.match(
        r"\| test\\_perf\.py::test\\_one \\\[main\\\] \| p50 latency \| [\d.]+ ms \| "
        r"[\d.]+ ms \| x\d.*\| REGRESSED \|",
        p50,
    ), p50
    assert "1 regressed, 0 improved" in text.split("### Baseline\n\n")[1]
    props = _properties(agents.path / "junit.xml")["test_one"]
    assert props["agentperf[main].status"] == "REGRESSED"
    assert props["agentperf[main].baseline.verdict"] == "REGRESSED"
    assert 0.009 < float(props["agentperf[main].baseline.p50_s"]) < 0.05
    assert float(props["agentperf[main].change.p50_s"]) > 2  # the limit at 100 %


def test_the_step_summary_is_appended_and_keeps_what_earlier_steps_wrote(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = project.path / "step_summary.md"
    step.write_text("## Lint\n\nall clean\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = project.runpytest("-p", "no:randomly")  # no --agentperf-markdown: the variable
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["agentperf: Markdown summary appended to the GitHub step *"])
    text = _read(step)
    assert text.startswith("## Lint\n\nall clean\n\n<!-- pytest-agentperf summary -->\n")
    assert "**2 runs: 1 PASS, 1 FAIL**" in text
    project.runpytest("-p", "no:randomly", "-k", "fast")  # a second session appends again
    assert _read(step).startswith(text) and _read(step).count("## Agent performance") == 2


def test_no_step_summary_turns_it_off(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = project.path / "step_summary.md"
    step.write_text("kept\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = project.runpytest(
        "-p", "no:randomly", "--agentperf-no-step-summary", "--agentperf-markdown=s.md"
    )
    result.assert_outcomes(passed=1, failed=1)
    assert _read(step) == "kept\n"
    assert "step summary" not in result.stdout.str()
    assert "**2 runs" in _read(project.path / "s.md")


def test_a_session_without_perf_tests_leaves_the_step_summary_alone(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = pytester.path / "step_summary.md"
    step.write_text("kept\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    pytester.makeini(INI)
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert _read(step) == "kept\n"
    assert "agentperf:" not in result.stdout.str()


MANY = """
import pytest
from agents import fast_sync

@pytest.mark.agent_perf(requests=2, warmup=0)
@pytest.mark.parametrize("k", range(30))
def test_many(agentperf, k):
    agentperf.run(fast_sync)
"""


def test_the_step_summary_stays_below_1_mib_by_cutting_rows(
    agents: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what earlier steps wrote leaves room for the verdict and a few rows, not for 30
    agents.makepyfile(test_perf=MANY)
    step = agents.path / "step_summary.md"
    earlier = ("x" * 99 + "\n") * ((LIMIT - 2500) // 100)
    step.write_text(earlier, encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = agents.runpytest("-p", "no:randomly", "--agentperf-markdown=whole.md")
    result.assert_outcomes(passed=30)
    result.stdout.fnmatch_lines(["*appended to the GitHub step summary * (* of 30 table rows cut*"])
    data = step.read_bytes()
    assert len(data) < LIMIT
    assert data.startswith(earlier.encode())
    added = data[len(earlier) :].decode()
    assert "**30 runs: 30 PASS**" in added
    cut = int(re.search(r"(\d+) of 30 table rows", added).group(1))  # type: ignore[union-attr]
    assert added.count("| test\\_perf.py::test\\_many") == 30 - cut
    whole = _read(agents.path / "whole.md")  # the file is never cut
    assert whole.count("| test\\_perf.py::test\\_many") == 30 and "Cut to stay" not in whole


EVIL = """
import pytest
from agents import fast_sync

@pytest.mark.agent_perf(requests=3, warmup=0)
@pytest.mark.parametrize("k", [1], ids=["a|b<img src=x onerror=alert(1)>"])
def test_evil(agentperf, k):
    agentperf.run(fast_sync, name="sk-proj-abcdefghijklmnopqrstuvwx`")
    agentperf.run(fast_sync, name="plain")
"""


def test_a_hostile_test_id_and_run_name_are_escaped_and_redacted(
    agents: pytest.Pytester,
) -> None:
    agents.makepyfile(test_perf=EVIL)
    result = agents.runpytest("-p", "no:randomly", "--agentperf-markdown=s.md", "--junitxml=j.xml")
    result.assert_outcomes(passed=1)
    text = _read(agents.path / "s.md")
    assert "<img" not in text and "abcdefghijklmnop" not in text
    row = next(line for line in text.splitlines() if line.startswith("| test\\_perf"))
    assert row.startswith(
        "| test\\_perf.py::test\\_evil\\[a\\|b&lt;img src=x onerror=alert(1)&gt;\\] "
        "\\[sk-proj-\\*\\*\\*\\`\\] | 3 |"
    )
    assert row.count(" | ") == text.splitlines()[5].count(" | ")  # as many cells as the header
    props = _properties(agents.path / "j.xml")
    (test,) = props
    assert props[test]["agentperf[sk-proj-***`].status"] == "PASS"
    assert all(n.startswith(("agentperf[sk-proj-***`].", "agentperf[plain].")) for n in props[test])


# ------------------------------------------------------------------------------------ JUnit

JUNIT = """
import pytest
from agents import fast_sync


@pytest.fixture
def after(agentperf):
    yield
    agentperf.run(fast_sync, name="in teardown")


@pytest.mark.agent_perf(requests=4, warmup=0)
def test_two_runs(agentperf, after):
    agentperf.run(fast_sync, name="first")
    agentperf.run(fast_sync, name="second", concurrency=2)


@pytest.mark.agent_perf(requests=4, warmup=0)
def test_one_run(agentperf):
    agentperf.run(fast_sync)


def test_plain():
    pass
"""

FIGURES = {
    "status",
    "requests",
    "errors",
    "timeouts",
    "error_rate",
    "p50_s",
    "p95_s",
    "p99_s",
    "throughput_per_s",
}


def _properties(path: Path) -> dict[str, dict[str, str]]:
    """Each test case's properties by name, from a JUnit XML file."""
    root = ET.parse(path).getroot()
    return {
        case.get("name", ""): {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        for case in root.iter("testcase")
    }


def _figures(props: dict[str, str], run: str) -> dict[str, str]:
    head = f"agentperf[{run}]."
    return {n[len(head) :]: v for n, v in props.items() if n.startswith(head)}


@pytest.mark.parametrize("xdist", [False, True], ids=["one process", "-n 2"])
def test_junit_xml_carries_one_set_of_properties_per_run(
    agents: pytest.Pytester, xdist: bool
) -> None:
    agents.makepyfile(test_perf=JUNIT)
    args = ["-p", "no:randomly", "--junitxml=junit.xml"]
    run = agents.runpytest_subprocess if xdist else agents.runpytest
    result = run(*args, *(["-n", "2"] if xdist else []))
    result.assert_outcomes(passed=3)
    props = _properties(agents.path / "junit.xml")
    assert props["test_plain"] == {}
    two = props["test_two_runs"]
    assert all(name.startswith("agentperf[") for name in two)
    for run in ("first", "second", "in teardown"):  # the teardown's run too
        figures = _figures(two, run)
        assert set(figures) == FIGURES, run
        assert figures["status"] == "PASS" and figures["requests"] == "4"
        assert 0.0005 < float(figures["p50_s"]) < 1.0  # seconds: a 1 ms agent
        assert float(figures["error_rate"]) == 0.0
    assert len(two) == 3 * len(FIGURES)  # once each, not once per report phase
    assert set(_figures(props["test_one_run"], "default")) == FIGURES
