"""The terminal table: it fits the terminal, says what it left out, and shows what a run has
(tools, soak drift, open-loop rates, money per 1,000 calls, unraised failures)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine import run_load
from pytest_agentperf.record import RunRecord
from pytest_agentperf.report import terminal
from pytest_agentperf.report.columns import TABLE_COLUMNS, parse_columns
from pytest_agentperf.results import Cost, LoadShape, Memory, TimeShare, ToolStats, Window
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.stats import summarize
from pytest_agentperf.units import Unit, format_usd, format_value

pytest_plugins = ["pytester"]


def _record(
    nodeid: str = "tests/perf/test_agent.py::test_agent",
    *,
    checked: bool = True,
    settings: dict[str, Any] | None = None,
    **fields: Any,
) -> RunRecord:
    """A real run of a tiny agent, with ``fields`` of its result replaced."""
    s = parse_settings({"requests": 10, "warmup": 0, **(settings or {})})
    raw = run_load(lambda: {"usage": {"prompt_tokens": 300, "completion_tokens": 40}}, None, s)
    result = dataclasses.replace(build_result("default", s, raw), **fields)
    return RunRecord.of(nodeid, result, checked=checked)


def _priced(nodeid: str, per_call: float = 2.7e-05, **fields: Any) -> RunRecord:
    """A priced record whose measured figures are fixed, so the cells (and so which columns fit
    a width) do not change with how fast the machine ran the tiny agent."""
    fixed: dict[str, Any] = {
        "latency": summarize(np.linspace(21e-6, 29e-6, 10)),
        "throughput": 41000.0,
        "duration": 0.00025,
        "memory": Memory(rss_start_mb=80.0, rss_peak_mb=80.5, rss_delta_mb=0.5, samples=3),
    }
    fixed.update(fields)
    return _record(nodeid, cost=Cost(total=per_call * 10, per_call=per_call), **fixed)


LONG = "tests/integration/perf/test_customer_support_agent.py::test_answers_refund_questions"


def _widest(lines: list[str]) -> int:
    return max(len(line) for line in lines)


# --------------------------------------------------------------------------- fitting


@pytest.mark.parametrize("width", [80, 120])
def test_the_table_fits_the_width_and_one_line_says_what_was_left_out(width: int) -> None:
    records = [_priced(LONG), _priced(LONG.replace("refund", "billing"))]
    lines = terminal.section(records, [], [], width=width)
    table = lines[0].splitlines()
    assert _widest(table) <= width
    assert _widest(terminal.section(records, [], [])[0].splitlines()) > width  # it had to fit
    (note,) = [line for line in lines if line.startswith("left out to fit")]
    assert note.startswith(f"left out to fit {width} columns: ")
    assert note.endswith("; --agentperf-columns=all shows them")
    assert len(note) <= width  # the line fits too: names, then "and N more"
    listed = note.split(": ", 1)[1].split(";")[0]
    left_out = listed.split(" and ")[0].split(", ")
    assert left_out and set(left_out) <= set(TABLE_COLUMNS)
    assert "p95" not in left_out and "p95" in table[0].split()
    assert table[0].split()[0] == "test" and table[0].split()[-1] == "status"
    for name in left_out:  # what the line names is indeed not in the table
        assert name not in table[0].split()


def test_the_least_important_columns_go_first() -> None:
    records = [_priced(LONG)]
    at_80 = terminal.table(records, width=80)
    at_120 = terminal.table(records, width=120)
    assert set(at_120.left_out) < set(at_80.left_out)  # narrower: more left out
    assert "rss" in at_120.left_out and "p99" in at_120.left_out
    header = at_120.text.splitlines()[0].split()
    assert {"n", "p50", "p95", "err"} <= set(header)


def test_a_wide_terminal_shows_every_column_and_no_left_out_line() -> None:
    records = [_priced(LONG)]
    lines = terminal.section(records, [], [], width=400)
    assert not any(line.startswith("left out to fit") for line in lines)
    header = lines[0].splitlines()[0].split()
    assert header[:7] == ["test", "n", "load", "p50", "p95", "p99", "thru"]
    assert {"tok/call", "RSS+", "status"} <= set(header)


def test_change_columns_drop_their_intervals_before_important_columns_go(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_same="""
        import time, pytest

        @pytest.mark.agent_perf(requests=20, warmup=0)
        def test_agent(agentperf):
            agentperf.run(lambda: time.sleep(0.002))
        """
    )
    pytester.runpytest("-p", "no:randomly", "--agentperf-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("COLUMNS", "400")
    wide = pytester.runpytest("-p", "no:randomly", "--agentperf-tolerance=100%")
    wide.stdout.fnmatch_lines(["*Δp50 (95% CI)*Δp95 (95% CI)*status*"])
    monkeypatch.setenv("COLUMNS", "80")
    narrow = pytester.runpytest("-p", "no:randomly", "--agentperf-tolerance=100%")
    out = narrow.stdout.lines
    start = next(i for i, line in enumerate(out) if line.startswith("test "))
    header = out[start].split()
    assert "Δp95" in header and "(95%" not in header
    assert all(len(line) <= 80 for line in out[start : start + 3])
    narrow.stdout.fnmatch_lines(["left out to fit 80 columns: *"])


@pytest.mark.parametrize(("columns", "width"), [(None, 120), ("80", 80), ("300", 300)])
def test_the_width_is_the_terminals_and_120_in_a_log_without_a_tty(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, columns: str | None, width: int
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)  # pytester's output is not a tty
    else:
        monkeypatch.setenv("COLUMNS", columns)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    name = "test_a_rather_long_name"
    pytester.makepyfile(
        **{
            name: """
            import pytest

            @pytest.mark.agent_perf(requests=5, warmup=0)
            def test_agent_with_a_long_name(agentperf):
                agentperf.run(lambda: {"usage": {"prompt_tokens": 3, "completion_tokens": 4}})
            """
        }
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    out = result.stdout.lines
    start = next(i for i, line in enumerate(out) if line.startswith("test "))
    assert all(len(line) <= width for line in out[start : start + 3])
    if width < 300:
        result.stdout.fnmatch_lines([f"left out to fit {width} columns: *"])
    else:
        result.stdout.no_fnmatch_line("left out to fit*")


# --------------------------------------------------------------------------- the option


def test_columns_option_picks_columns_in_its_order() -> None:
    records = [_priced(LONG)]
    chosen = terminal.table(records, width=80, columns=("err", "p95", "tok"))
    assert chosen.left_out == ()
    assert chosen.text.splitlines()[0].split() == ["test", "err", "p95", "tok/call", "status"]


def test_columns_all_shows_every_column_even_when_wider_than_the_terminal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_columns_option="""
        import pytest

        @pytest.mark.agent_perf(requests=5, warmup=0)
        def test_agent(agentperf):
            agentperf.run(lambda: {"usage": {"prompt_tokens": 3, "completion_tokens": 4}})
        """
    )
    monkeypatch.setenv("COLUMNS", "80")
    result = pytester.runpytest("-p", "no:randomly", "--agentperf-columns=all")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test * n * load * p50 * p95 * p99 * tok/call * RSS+ * status"])
    result.stdout.no_fnmatch_line("left out to fit*")
    named = pytester.runpytest("-p", "no:randomly", "--agentperf-columns=p99, n")
    named.stdout.re_match_lines([r"^test +p99 +n +status *$"])


def test_an_unknown_column_name_is_a_usage_error_listing_the_valid_ones(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest("--agentperf-columns=p95,latency")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--agentperf-columns: unknown column 'latency'; valid: all or a comma list of n, *p95*"]
    )


def test_parse_columns() -> None:
    assert parse_columns(None) is None and parse_columns(" ") is None
    assert parse_columns("all") == tuple(TABLE_COLUMNS)
    assert parse_columns("p95, err,p95") == ("p95", "err")


def test_every_column_of_the_table_has_a_name_the_option_accepts() -> None:
    record = _priced(
        LONG,
        tools={"search": ToolStats(calls=3)},
        windows=(_window(0.01), _window(0.02)),
        shape=dataclasses.replace(_record().result.shape, rate=100.0),
    )
    keys = [c.key for c in terminal._columns([record])]
    assert set(keys) <= set(TABLE_COLUMNS)
    assert keys == [k for k in TABLE_COLUMNS if k in keys]  # `all` shows them in table order


# --------------------------------------------------------------------------- test ids


def test_two_files_of_the_same_name_keep_the_folder_that_tells_them_apart(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    body = """
        import pytest

        @pytest.mark.agent_perf(requests=3, warmup=0)
        def test_agent(agentperf):
            agentperf.run(lambda: None)
        """
    for folder in ("billing", "support"):
        pytester.mkpydir(folder)
        (pytester.path / folder / "test_same.py").write_text(
            "\n".join(line[8:] for line in body.splitlines())
        )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["billing/test_same.py::test_agent *", "support/test_same.py::*"])


def test_unique_paths_cut_each_path_to_its_shortest_unambiguous_suffix() -> None:
    short = terminal.unique_paths(
        [
            "tests/a/test_same.py::test_x",
            "tests/b/test_same.py::test_x[a/b]",
            "tests/test_other.py::test_y",
            "test_same.py::test_z",
            "x/a/test_same.py::test_w",
        ]
    )
    assert short == {
        "tests/a/test_same.py": "tests/a/test_same.py",
        "x/a/test_same.py": "x/a/test_same.py",
        "tests/b/test_same.py": "b/test_same.py",
        "tests/test_other.py": "test_other.py",
        "test_same.py": "test_same.py",
    }
    assert len(set(short.values())) == len(short)


# --------------------------------------------------------------------------- tools and soak


def _window(p95: float) -> Window:
    return Window(start=0.0, end=1.0, calls=5, errors=0, throughput=5.0, p50=p95, p95=p95)


def test_tools_column_shows_calls_errors_and_time_only_when_a_run_used_tools() -> None:
    tools = {"search": ToolStats(calls=8, errors=1, total_time=0.2), "calc": ToolStats(calls=4)}
    with_tools = _record("t.py::a", tools=tools)
    text = terminal.render([with_tools, _record("t.py::b")])
    header, _, row_a, row_b = text.splitlines()
    col = header.index("tools")
    assert row_a[col:].startswith("12 (1 err) 200 ms") and row_b[col:].startswith("- ")
    assert "tools" not in terminal.render([_record("t.py::b")]).splitlines()[0].split()


def test_time_in_column_shows_the_llm_and_tool_shares_only_when_timed() -> None:
    timed = _record("t.py::a", time_share=TimeShare(model=0.62, tools=0.2, own=0.18))
    llm_only = _record("t.py::b", time_share=TimeShare(model=0.5, own=0.5))
    text = terminal.render([timed, llm_only, _record("t.py::c")])
    header, _, row_a, row_b, row_c = text.splitlines()
    col = header.index("time in")
    assert row_a[col:].startswith("llm 62% tool 20%")
    assert row_b[col:].startswith("llm 50% ") and row_c[col:].startswith("- ")
    assert "time in" not in terminal.render([_record("t.py::c")]).splitlines()[0]


def test_drift_column_shows_last_over_first_window_p95_and_the_windows() -> None:
    soak = _record("t.py::soak", windows=(_window(0.010), _window(0.012), _window(0.015)))
    short = _record("t.py::short", windows=(_window(0.010),))
    text = terminal.render([soak, short])
    header, _, row_soak, row_short = text.splitlines()
    col = header.index("drift")
    assert row_soak[col:].startswith("1.50x (3 win)")
    assert row_short[col:].startswith("-")
    assert "drift" not in terminal.render([short]).splitlines()[0]


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.7e-05, "$0.000027"),
        (7.45e-05, "$0.0000745"),
        (0.0021, "$0.0021"),
        (0.5, "$0.50"),
        (0.123456, "$0.123"),
        (1234.5, "$1,234.50"),
        (0.0, "$0"),
        (None, "-"),
    ],
)
def test_one_money_format_without_exponents(value: float | None, text: str) -> None:
    assert format_usd(value) == text
    assert format_value(value, Unit.USD) == text  # budget messages and baseline changes


def test_a_budget_message_and_a_baseline_change_print_money_the_same_way() -> None:
    from pytest_agentperf.baseline.change import ChangeKind, MetricChange, Status

    record = _priced("t.py::a", per_call=2.7e-05)
    broken = _record("t.py::b", settings={"cost_per_call": "$0.00001"}, cost=record.result.cost)
    assert "e-0" not in " ".join(b.message for b in broken.result.budgets)
    change = MetricChange(
        key="cost",
        name="cost per call",
        unit=Unit.USD,
        kind=ChangeKind.RATIO,
        baseline=2.7e-05,
        current=5.4e-05,
        change=2.0,
        low=None,
        high=None,
        status=Status.REGRESSED,
        limit=0.1,
    )
    assert "$0.000027 -> $0.000054" in change.text


def test_tiny_costs_are_shown_per_1000_calls() -> None:
    text = terminal.render([_priced("t.py::a", 2.7e-05), _priced("t.py::b", 0.004)])
    header, _, row_a, row_b = text.splitlines()
    col = header.index("$/1k calls")
    assert "$/call" not in header
    assert row_a[col:].startswith("$0.027 ") and row_b[col:].startswith("$4.00 ")


def test_a_cost_of_a_cent_or_more_keeps_the_per_call_column() -> None:
    text = terminal.render([_priced("t.py::a", 2.7e-05), _priced("t.py::b", 0.02)])
    header, _, row_a, row_b = text.splitlines()
    col = header.index("$/call")
    assert "$/1k" not in header
    assert row_a[col:].startswith("$0.000027 ") and row_b[col:].startswith("$0.02 ")


# --------------------------------------------------------------------------- check=False


def test_a_failure_not_raised_says_so() -> None:
    raised = _record("t.py::a", settings={"p95": "1us"})
    unraised = _record("t.py::b", settings={"p95": "1us"}, checked=False)
    text = terminal.render([raised, unraised])
    assert "FAIL p95 (not raised)" in text.splitlines()[3]
    assert "not raised" not in text.splitlines()[2]
    passed = _record("t.py::c", checked=False)
    assert "not raised" not in terminal.render([passed])


def test_check_false_in_a_session_shows_the_failure_was_not_raised(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_unchecked="""
        import pytest

        def fail():
            raise RuntimeError("down")

        @pytest.mark.agent_perf(requests=3, warmup=0, p95="1us")
        def test_agent(agentperf):
            agentperf.run(lambda: sum(range(2000)), check=False, name="slow")
            agentperf.run(fail, check=False, name="broken")
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*[[]slow[]]*FAIL p95 (not raised)", "*[[]broken[]]*ERROR (not raised)"]
    )


# --------------------------------------------------------------------------- open loop


def _open(rate: float, requests: int, duration: float, late: int) -> RunRecord:
    shape = LoadShape(
        requests=requests,
        concurrency=4,
        rate=rate,
        arrival="poisson",
        duration=None,
        warmup=0,
        timeout=60.0,
    )
    return _record(
        "t.py::open", shape=shape, requests=requests, duration=duration, late_starts=late
    )


def test_open_loop_shows_offered_and_achieved_rates_and_late_starts() -> None:
    record = _open(rate=100, requests=50, duration=2.0, late=10)
    text = terminal.render([record, _record("t.py::closed")])
    header, _, row_open, row_closed = text.splitlines()
    assert row_open[header.index("load") :].startswith("100/s ≤4")
    assert row_open[header.index("achieved") :].startswith("25/s")
    assert row_open[header.index("late") :].startswith("10 (20%)")
    assert row_closed[header.index("achieved") :].startswith("-")
    assert "achieved" not in terminal.render([_record("t.py::closed")])
    assert terminal.failure_lines([record]) == []  # a fifth late: no note


def test_a_run_where_most_calls_started_late_says_the_agent_was_not_the_bottleneck() -> None:
    record = _open(rate=100, requests=50, duration=2.0, late=30)
    (note,) = terminal.failure_lines([record])
    assert note.startswith("t.py::open: note: 30 of 50 calls started late ")
    assert "25/s achieved of 100/s ≤4 offered" in note
    assert "the concurrency cap (concurrency=4) or the load generator" in note
    assert "not the agent, was the bottleneck" in note


def test_open_loop_behind_its_rate_in_a_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_open="""
        import time, pytest

        # one call in flight, each 20 ms, offered 200/s: nearly every call waits for the slot
        @pytest.mark.agent_perf(requests=20, warmup=0, rate=200, concurrency=1)
        def test_agent(agentperf):
            agentperf.run(lambda: time.sleep(0.02))
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "test * load * achieved * late *",
            "test_open.py::test_agent * 200/s ≤1 *[0-9]/s *[0-9] (*%) *",
            "test_open.py::test_agent: late-starts: * of 20 calls started late*concurrency=1*"
            "not the agent, was the bottleneck*; raise concurrency= or lower rate=",
        ]
    )
    result.stdout.no_fnmatch_line("*note: * calls started late*")  # said once, as a finding


def test_the_left_out_line_names_what_fits_most_important_first() -> None:
    names = ["p99", "load", "achieved", "late", "cost", "tok", "drift", "cpu", "rss"]
    assert terminal.left_out_line(names, 120) == (
        "left out to fit 120 columns: p99, load, achieved, late, cost, tok, drift, cpu, "
        "rss; --agentperf-columns=all shows them"
    )
    assert terminal.left_out_line(names, 80) == (
        "left out to fit 80 columns: p99 and 8 more; --agentperf-columns=all shows them"
    )
    assert len(terminal.left_out_line(names, 80)) <= 80


def test_a_narrow_column_comes_back_when_a_wide_one_made_room() -> None:
    records = [_priced(LONG)]
    full = terminal.table(records).text.splitlines()[0]
    fitted = terminal.table(records, width=len(full) - 1)
    assert len(fitted.left_out) == 1  # the least important column alone made the room
    assert _widest(fitted.text.splitlines()) <= len(full) - 1


def _busy(nodeid: str, other_cpu: float | None) -> RunRecord:
    from pytest_agentperf.results import Contention

    return _priced(nodeid, contention=Contention(other_cpu=other_cpu, source="fake"))


def test_a_busy_machine_is_said_once_for_the_runs_it_affected() -> None:
    several = [_busy("t.py::a", 0.5), _busy("t.py::b", 0.93), _busy("t.py::c", 0.01)]
    lines = terminal.failure_lines(several)
    assert lines == ["note: machine busy during 2 of 3 runs: other processes used 50% to 93% CPU"]
    one = terminal.failure_lines([_busy("t.py::a", 0.6), _busy("t.py::b", None)])
    assert one == ["t.py::a: note: machine busy: other processes used 60% CPU during the run"]
