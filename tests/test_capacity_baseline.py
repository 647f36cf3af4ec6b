"""Capacity searches against the baseline: the bracket rule, what the file keeps of a search,
what makes two searches not comparable, and the gate end to end (record, then compare)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import make_result, make_shape
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.baseline import Environment, Machine, dumps, parse, run_from_result
from pytest_agentperf.baseline.capacity import (
    bracket_status,
    bracket_text,
    compare_capacity,
)
from pytest_agentperf.baseline.change import Status
from pytest_agentperf.baseline.comparison import compare
from pytest_agentperf.results import Capacity, CapacityPoint, CapacitySearchOptions

pytest_plugins = ["pytester"]

OPTIONS = CapacitySearchOptions(
    start=20.0, limit=160.0, factor=2.0, resolution=0.1, step=0.5, repeats=2
)
ENV = Environment(
    machine=Machine("cpu", 2, "Linux", "x86_64", "3.11", "CPython", "linux"),
    commit="abc123",
    plugin_version="0.1",
)


def _cap(low: float | None, high: float | None, *, slo: float = 0.05, **options: Any) -> Capacity:
    search = CapacitySearchOptions(**{**OPTIONS.__dict__, **options})
    return Capacity({"p95": slo}, low, high, (), "resolution", search)


def _search(cap: Capacity, **shape: Any) -> Any:
    """A capacity search's recorded result: the step at ``max_rate``, with ``cap``."""
    point = CapacityPoint(cap.max_rate or 20.0, 19.0, 0.01, 0.02, 0.03, 59, 0, True)
    full = Capacity(cap.slo, cap.max_rate, cap.first_failing, (point,), cap.stopped, cap.search)
    step = make_shape(rate=cap.max_rate or 20.0, requests=59, arrival="poisson", **shape)
    return make_result([0.01] * 59, name="capacity", shape=step, capacity=full)


def _saved(cap: Capacity, **shape: Any) -> Any:
    """The baseline entry of a search, through the file's text (written, then read)."""
    run = run_from_result("t.py::test_x", _search(cap, **shape), ENV)
    return parse(dumps([run])).get("t.py::test_x", "capacity")


# ------------------------------------------------------------------------- the bracket rule


@pytest.mark.parametrize(
    ("baseline", "current", "status"),
    [
        ((47.6, 52.4), (28.7, 30.1), Status.REGRESSED),  # wholly below
        ((47.6, 52.4), (40.0, 47.6), Status.REGRESSED),  # fails where the baseline held
        ((47.6, 52.4), (45.0, 50.0), Status.UNCHANGED),  # the brackets overlap
        ((47.6, 52.4), (47.6, 52.4), Status.UNCHANGED),
        ((47.6, 52.4), (52.4, 60.0), Status.IMPROVED),  # holds where the baseline failed
        ((80.0, None), (80.0, None), Status.UNCHANGED),  # both reached the limit
        ((80.0, None), (None, 20.0), Status.REGRESSED),  # now even the start fails
        ((80.0, None), (40.0, 80.0), Status.REGRESSED),
        ((80.0, None), (56.0, 90.0), Status.UNCHANGED),  # 80 may still hold
        ((None, 20.0), (None, 20.0), Status.UNCHANGED),  # both failed at the start
        ((None, 20.0), (20.0, 40.0), Status.IMPROVED),
        ((40.0, 56.0), (48.0, None), Status.UNCHANGED),  # "at least 48" overlaps 40-56
    ],
)
def test_bracket_rule(
    baseline: tuple[float | None, float | None],
    current: tuple[float | None, float | None],
    status: Status,
) -> None:
    assert bracket_status(_cap(*baseline), _cap(*current)) is status


rates = st.floats(min_value=1.0, max_value=1000.0)


@settings(max_examples=60, deadline=None)
@given(a=rates, a_width=st.floats(1.01, 3.0), b=rates, b_width=st.floats(1.01, 3.0))
def test_a_regression_seen_from_the_other_side_is_an_improvement(
    a: float, a_width: float, b: float, b_width: float
) -> None:
    first, second = _cap(a, a * a_width), _cap(b, b * b_width)
    forward, backward = bracket_status(first, second), bracket_status(second, first)
    assert (forward is Status.REGRESSED) == (backward is Status.IMPROVED)
    assert (forward is Status.UNCHANGED) == (backward is Status.UNCHANGED)
    assert bracket_status(first, first) is Status.UNCHANGED


def test_bracket_text_says_where_the_capacity_lies() -> None:
    assert bracket_text(_cap(47.6, 52.4)) == "47.6-52.4/s"
    assert bracket_text(_cap(80.0, None)) == ">=80/s"
    assert bracket_text(_cap(None, 20.0)) == "<20/s"


# ------------------------------------------------------------------------- the comparison


def test_a_lower_bracket_regresses_with_both_brackets_in_the_message() -> None:
    found = compare_capacity(_search(_cap(28.7, 30.1)), _saved(_cap(47.6, 52.4)))
    assert found.status is Status.REGRESSED and found.regressed
    change = found.get("capacity")
    assert change is not None and change.baseline == 47.6 and change.current == 28.7
    assert change.text == (
        "capacity 47.6/s -> 28.7/s (baseline bracket 47.6-52.4/s, now 28.7-30.1/s): REGRESSED"
    )
    message = found.failure_message("capacity")
    assert "commit abc123" in message and change.text in message


def test_an_overlapping_bracket_is_unchanged_and_no_baseline_is_new() -> None:
    assert compare_capacity(_search(_cap(45.0, 50.0)), _saved(_cap(47.6, 52.4))).status is (
        Status.UNCHANGED
    )
    assert compare_capacity(_search(_cap(45.0, 50.0)), None).status is Status.NEW


@pytest.mark.parametrize(
    ("now", "shape", "said"),
    [
        (_cap(47.6, 52.4, slo=0.06), {}, "slo p95 <= 50 ms -> p95 <= 60 ms"),
        (_cap(47.6, 52.4, resolution=0.25), {}, "resolution 0.1 -> 0.25"),
        (_cap(47.6, 52.4, start=10.0, step=1.0), {}, "start 20/s -> 10/s; step 0.5s -> 1s"),
        (_cap(47.6, 52.4), {"concurrency": 8}, "concurrency 1 -> 8"),
    ],
)
def test_another_slo_search_or_load_is_not_comparable_and_says_which(
    now: Capacity, shape: dict[str, Any], said: str
) -> None:
    found = compare_capacity(_search(now, **shape), _saved(_cap(47.6, 52.4)))
    assert found.status is Status.NOT_COMPARABLE and not found.metrics
    assert f"capacity search changed ({said}); re-record the baseline" in found.messages[0]


def test_a_search_and_an_ordinary_run_are_not_compared_with_each_other() -> None:
    ordinary = run_from_result("t.py::test_x", make_result([0.01] * 59, name="capacity"), ENV)
    assert ordinary.capacity is None
    found = compare_capacity(_search(_cap(47.6, 52.4)), ordinary)
    assert found.status is Status.NOT_COMPARABLE
    assert "the baseline run is not a capacity search" in found.messages[0]
    back = compare(make_result([0.01] * 59, name="capacity"), _saved(_cap(47.6, 52.4)))
    assert back.status is Status.NOT_COMPARABLE
    assert "the baseline run is a capacity search" in back.messages[0]


# ------------------------------------------------------------------------------ the file


def test_the_file_keeps_the_slo_options_and_bracket_but_not_the_curve() -> None:
    cap = _cap(47.6, None, time_budget=30.0)
    saved = _saved(cap)
    assert saved is not None and saved.capacity is not None
    assert saved.capacity == cap  # points dropped: the curve is in the reports
    assert dict(saved.capacity.slo) == {"p95": 0.05}
    text = dumps([run_from_result("t.py::test_x", _search(cap), ENV)])
    entry = json.loads(text)["runs"][0]["capacity"]
    assert entry["search"]["time_budget"] == 30.0 and entry["first_failing"] is None


def test_a_file_without_capacity_fields_still_loads() -> None:
    text = dumps([run_from_result("t.py::test_x", make_result([0.01] * 10), ENV)])
    assert '"capacity"' not in text  # an ordinary run's entry is written as before
    baseline = parse(text)
    assert not baseline.problems
    run = baseline.get("t.py::test_x", "default")
    assert run is not None and run.capacity is None


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"slo": []}, "capacity.slo: expected an object"),
        ({"slo": {}}, "capacity.slo: expected 1 to 64 budgets"),
        ({"slo": {"p95": -1}}, "capacity.slo.p95: out of range"),
        ({"max_rate": 60.0}, "first_failing 52.4 is not above max_rate 60.0"),
        ({"max_rate": "fast"}, "capacity.max_rate: expected a number"),
        ({"search": {"factor": 1.0}}, "capacity.search.factor: must be above 1"),
        ({"search": {"limit": 10.0}}, "limit 10.0 is not above start 20.0"),
        ({"search": {"step": 0}}, "capacity.search.step: must be above 0"),
        ({"search": {"repeats": 1.5}}, "capacity.search.repeats: expected a whole number"),
    ],
)
def test_a_malformed_capacity_sets_that_entry_aside(edit: dict[str, Any], problem: str) -> None:
    doc = json.loads(dumps([run_from_result("t.py::test_x", _search(_cap(47.6, 52.4)), ENV)]))
    entry = doc["runs"][0]["capacity"]
    for key, value in edit.items():
        if key == "search":
            entry["search"].update(value)
        else:
            entry[key] = value
    baseline = parse(json.dumps(doc))
    assert not baseline.runs and len(baseline.problems) == 1
    assert problem in baseline.problems[0]


# ---------------------------------------------------------------------------- end to end

PROJECT = """
import asyncio, collections, time
import pytest

SLOW = {slow}
starts = collections.deque()

async def agent(x=None):
    # copes with 60 calls/s; the slow one takes 0.3 s a call when more than 15 calls started
    # in the last 0.25 s (constant arrivals: 10 at 40/s, 14 at 56.6/s, 17 at 67.3/s, 20 at 80/s)
    now = time.monotonic()
    starts.append(now)
    while starts[0] < now - 0.25:
        starts.popleft()
    await asyncio.sleep(0.3 if SLOW and len(starts) > 15 else 0.002)

@pytest.mark.agent_perf(warmup=0, timeout="5s")
def test_search(agentperf):
    found = agentperf.capacity(agent, slo={{"p95": "{p95}"}}, start="40/s", limit="80/s",
                               step="0.5s", resolution=0.25, arrival="constant")
"""


def _project(pytester: pytest.Pytester, *, slow: bool, p95: str = "100ms") -> None:
    pytester.makepyfile(test_cap=PROJECT.format(slow=slow, p95=p95))


def _entry(pytester: pytest.Pytester) -> dict[str, Any]:
    doc = json.loads((pytester.path / ".agentperf" / "baseline.json").read_text())
    (run,) = doc["runs"]
    assert isinstance(run, dict)
    return run


def test_a_slower_agent_fails_against_its_recorded_capacity(agents: pytest.Pytester) -> None:
    _project(agents, slow=False)
    agents.runpytest("--agentperf-baseline").assert_outcomes(passed=1)
    saved = _entry(agents)["capacity"]
    assert saved["slo"] == {"p95": 0.1} and saved["max_rate"] == 80.0
    assert saved["first_failing"] is None and saved["stopped"] == "limit"
    assert saved["search"] == {
        "start": 40.0,
        "limit": 80.0,
        "factor": 2.0,
        "resolution": 0.25,
        "step": 0.5,
        "repeats": 2,
        "time_budget": None,
    }

    unchanged = agents.runpytest()
    unchanged.assert_outcomes(passed=1)
    unchanged.stdout.fnmatch_lines(
        ["*against the baseline: capacity 80/s -> 80/s (baseline bracket >=80/s, now >=80/s)*"]
    )

    _project(agents, slow=True)
    slower = agents.runpytest(
        "--agentperf-confirm", "--agentperf-json=out.json", "--agentperf-markdown=out.md"
    )
    slower.assert_outcomes(failed=1)
    slower.stdout.fnmatch_lines(
        [
            "*RegressionDetected*run 'capacity' regressed against the baseline*",
            "*capacity 80/s -> *(baseline bracket >=80/s, now *-*/s): REGRESSED*",
            "*confirmed by a second measurement (--agentperf-confirm)*",
        ]
    )
    slower.stdout.fnmatch_lines(["test_cap.py::test_search  *REGRESSED"])  # the table's status
    record = json.loads((agents.path / "out.json").read_text())["runs"][0]
    assert record["status"] == "REGRESSED"
    change = record["result"]["comparison"]["metrics"]["capacity"]
    assert change["status"] == "REGRESSED" and change["baseline"] == 80.0
    markdown = (agents.path / "out.md").read_text()
    assert "REGRESSED" in markdown and "baseline bracket" in markdown


def test_a_changed_slo_or_an_old_baseline_is_not_comparable(agents: pytest.Pytester) -> None:
    _project(agents, slow=False)
    agents.runpytest("--agentperf-baseline").assert_outcomes(passed=1)

    _project(agents, slow=False, p95="150ms")
    changed = agents.runpytest()
    changed.assert_outcomes(passed=1)
    changed.stdout.fnmatch_lines(
        [
            "*test_search*NOT COMPARABLE*",
            "*capacity search changed (slo p95 <= 100 ms -> p95 <= 150 ms); re-record*",
        ]
    )

    # a file written before searches were kept: the entry loads, and the search says why
    # it is not compared
    path = agents.path / ".agentperf" / "baseline.json"
    doc = json.loads(path.read_text())
    del doc["runs"][0]["capacity"]
    path.write_text(json.dumps(doc))
    _project(agents, slow=False)
    old = agents.runpytest()
    old.assert_outcomes(passed=1)
    assert "WARNING" not in old.stdout.str()
    old.stdout.fnmatch_lines(["*the baseline run is not a capacity search*"])


def test_the_baseline_gate_compares_a_search_even_when_scaled_and_history_leaves_it(
    tmp_path: Any,
) -> None:
    from pytest_agentperf.baseline import save
    from pytest_agentperf.baseline.gate import BaselineGate, GateOptions
    from pytest_agentperf.history.gate import HistoryGate
    from pytest_agentperf.settings import parse_settings

    path = tmp_path / "baseline.json"
    save(path, [run_from_result("t.py::test_x", _search(_cap(80.0, None)), ENV)])
    gate = BaselineGate(GateOptions(path=path, scale=0.5))  # a search is never scaled
    now = gate.after_run("t.py::test_x", _search(_cap(40.0, 56.6)), parse_settings())
    assert now.comparison is not None and now.comparison.status is Status.REGRESSED
    history = HistoryGate(tmp_path / "history", "machine")
    search = _search(_cap(40.0, 56.6))
    assert history.after_run("t.py::test_x", search, parse_settings()) is search
