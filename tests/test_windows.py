"""Per-window statistics and the p95_drift budget on top of them."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import make_result

from pytest_agentperf.budgets import BUDGETS, evaluate
from pytest_agentperf.engine import Progress
from pytest_agentperf.observers.windows import LiveWindow, choose_window, compute_windows
from pytest_agentperf.progress import ProgressLine
from pytest_agentperf.results import PerfResult, Window


@pytest.mark.parametrize(
    ("duration", "calls", "expected"),
    [
        (0.2, 10, 1.0),  # never below 1 s
        (10.0, 1000, 1.0),  # 10 windows of 100 calls
        (60.0, 6000, 5.0),  # 60/15 = 4 s, rounded up to 5 s
        (600.0, 60_000, 60.0),  # 40 s -> 60 s
        (3600.0, 10**6, 300.0),  # 240 s -> 5 min
        (60.0, 30, 60.0),  # 30 calls: one window, not 15 windows of 2 calls
        (20.0, 100, 5.0),  # 20 calls per window on average: 4 s -> 5 s
        (10 * 3600.0, 10**7, 3600.0),
        (30 * 3600.0, 10**7, 7200.0),
    ],
)
def test_window_length_from_run_length(duration: float, calls: int, expected: float) -> None:
    assert choose_window(duration, calls) == expected


def test_requested_window_wins() -> None:
    assert choose_window(600.0, 10, requested=30.0) == 30.0


def test_calls_are_assigned_by_completion_time() -> None:
    # (start, end, status): a call spanning windows counts where it ended.
    log = [
        (0.0, 0.5, 0),
        (0.2, 1.0, 0),  # ends exactly at the edge: second window
        (0.9, 2.5, 0),  # started in the first, ends in the third
        (1.1, 1.3, 1),  # error
        (1.5, 1.9, 2),  # timeout
        (2.0, 2.2, 0),
    ]
    start, end, status = (np.array(c) for c in zip(*log, strict=True))
    w = compute_windows(start, end, status, duration=3.0, window=1.0)
    assert [(x.start, x.end) for x in w] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert [x.calls for x in w] == [1, 3, 2]
    assert [x.errors for x in w] == [0, 2, 0]
    assert [x.throughput for x in w] == [1.0, 1.0, 2.0]
    assert w[0].p50 == pytest.approx(0.5)
    assert w[1].p50 == pytest.approx(0.8)  # only the successful call
    assert w[2].p50 == pytest.approx(np.percentile([1.6, 0.2], 50))
    assert w[2].p95 == pytest.approx(np.percentile([1.6, 0.2], 95))


def test_window_without_successes_has_no_percentiles() -> None:
    w = compute_windows([0.0, 1.1], [0.5, 1.5], [0, 1], duration=2.0, window=1.0)
    assert w[1].calls == 1 and w[1].errors == 1
    assert w[1].p50 is None and w[1].p95 is None and w[1].throughput == 0.0


def test_a_stall_is_an_empty_window() -> None:
    w = compute_windows([0.0, 0.1, 2.1], [0.5, 0.6, 2.5], [0, 0, 0], duration=3.0, window=1.0)
    assert [x.calls for x in w] == [2, 0, 1]
    assert w[1].p95 is None


@pytest.mark.parametrize(
    ("duration", "edges"),
    [
        (3.3, [(0.0, 1.0), (1.0, 2.0), (2.0, 3.3)]),  # 0.3 s tail merged into the last window
        (3.6, [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 3.6)]),  # 0.6 s tail kept
        (3.0, [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]),
        (0.4, [(0.0, 0.4)]),  # shorter than one window
    ],
)
def test_short_trailing_window_is_merged(duration: float, edges: list[tuple[float, float]]) -> None:
    ends = np.linspace(0.01, duration, 50)
    w = compute_windows(
        ends - 0.01, ends, np.zeros(50, dtype=np.int8), duration=duration, window=1.0
    )
    assert [(x.start, pytest.approx(x.end)) for x in w] == edges
    assert sum(x.calls for x in w) == 50
    assert w[-1].throughput == pytest.approx(w[-1].calls / (w[-1].end - w[-1].start))


def test_calls_ending_after_the_duration_fall_in_the_last_window() -> None:
    w = compute_windows([0.0, 1.5], [0.5, 2.05], [0, 0], duration=2.0, window=1.0)
    assert [x.calls for x in w] == [1, 1]


def test_rss_is_the_peak_inside_each_window() -> None:
    rss_t = np.array([0.0, 0.5, 0.99, 1.0, 1.7, 2.5, 3.01])
    rss_mb = np.array([100.0, 103.0, 101.0, 104.0, 102.0, 110.0, 111.0])
    w = compute_windows(
        [0.0, 1.0, 2.0], [0.5, 1.5, 2.5], [0, 0, 0], duration=3.0, window=1.0, rss=(rss_t, rss_mb)
    )
    assert [x.rss_mb for x in w] == [103.0, 104.0, 111.0]  # the stop sample belongs to the last


def test_rss_absent_when_no_sample_in_window() -> None:
    w = compute_windows(
        [0.0, 1.0], [0.5, 1.5], [0, 0], duration=2.0, window=1.0, rss=([0.2], [50.0])
    )
    assert [x.rss_mb for x in w] == [50.0, None]


def test_empty_log() -> None:
    assert compute_windows([], [], [], duration=0.0) == ()
    w = compute_windows([], [], [], duration=2.0, window=1.0)
    assert [x.calls for x in w] == [0, 0]


def _result(windows: tuple[Window, ...]) -> PerfResult:
    return make_result(
        name="run",
        requests=sum(w.calls for w in windows),
        duration=windows[-1].end if windows else 0.0,
        windows=windows,
    )


def test_slowing_agent_breaks_the_drift_budget() -> None:
    rng = np.random.default_rng(11)
    n = 2000
    ends = np.sort(rng.uniform(0.0, 20.0, size=n))
    latency = 0.1 * (1.0 + ends / 10.0) * rng.lognormal(0.0, 0.2, size=n)  # 3x slower at the end
    w = compute_windows(ends - latency, ends, np.zeros(n, dtype=np.int8), duration=20.0)
    assert len(w) == 10  # 20/15 s rounded up to 2 s windows of ~200 calls
    drift, _ = BUDGETS["p95_drift"].measure(_result(w))
    assert drift is not None and 2.0 < drift < 4.0
    (check,) = evaluate({"p95_drift": 1.5}, _result(w))
    assert not check.passed
    assert "p95 drift" in check.message


def test_steady_agent_keeps_the_drift_budget() -> None:
    rng = np.random.default_rng(12)
    n = 2000
    ends = np.sort(rng.uniform(0.0, 20.0, size=n))
    latency = 0.1 * rng.lognormal(0.0, 0.2, size=n)
    w = compute_windows(ends - latency, ends, np.zeros(n, dtype=np.int8), duration=20.0)
    (check,) = evaluate({"p95_drift": 1.5}, _result(w))
    assert check.passed, check.message


# live window for the progress line -----------------------------------------------------------


@dataclass
class _View:
    start: np.ndarray
    end: np.ndarray
    status: np.ndarray
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return int(np.count_nonzero(self.end <= self.elapsed))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seen = self.end <= self.elapsed
        return self.start[seen], self.end[seen], self.status[seen]


def test_live_window_summarises_the_last_completed_window() -> None:
    ends = np.arange(1, 601) * 0.05  # 20 calls/s for 30 s
    status = np.where(np.arange(600) % 10 == 0, 1, 0).astype(np.int8)
    view = _View(ends - 0.1, ends, status)
    live = LiveWindow(duration=30.0, rss_mb=lambda: 152.4)
    live.on_start(0.0)
    for t in np.arange(0.1, 3.0, 0.1):
        view.elapsed = float(t)
        assert live.on_tick(view) is None
    assert live.length == 2.0  # 30 s / 15
    # window [0 s, 2 s): 39 calls ended, 4 of them failed; 35 / 2 s
    assert live.describe() == "last 2 s: 17.5/s, p95 100 ms, 4 errors, RSS 152 MB"


def test_live_window_picks_a_length_for_count_bound_runs_from_their_pace() -> None:
    ends = np.arange(1, 201) * 0.1
    view = _View(ends - 0.01, ends, np.zeros(200, dtype=np.int8))
    live = LiveWindow(total=6000)  # at 10 calls/s: a 600 s run, so 60 s windows
    live.on_start(0.0)
    view.elapsed = 1.0
    live.on_tick(view)
    assert live.length is None and live.describe() is None  # too early to tell
    view.elapsed = 2.05
    live.on_tick(view)
    assert live.length == 60.0


def test_progress_line_shows_the_window_figures() -> None:
    out: list[str] = []
    line = ProgressLine("t[run]", out.append)
    line.detail = lambda: "last 1 s: 10/s"
    line(Progress(done=50, total=None, elapsed=5.0, duration=10.0, errors=0))
    assert out[-1].endswith("agentperf t[run]: 50 calls, 5 s of 10 s | last 1 s: 10/s")


# end to end ----------------------------------------------------------------------------------

SLOWING_TEST = """
import time
import pytest

CALLS = {"n": 0}

def slowing(x=None):
    CALLS["n"] += 1
    # 1 ms calls, then 15 ms ones: a step large enough that a loaded machine, which can
    # stretch a few fast calls of the first window, cannot hide it
    time.sleep(0.001 if CALLS["n"] <= 100 else 0.015)

@pytest.mark.agent_perf(requests=150, window="0.1s", p95_drift="1.5x")
def test_drift(agentperf):
    agentperf.run(slowing)
"""


def test_slowing_agent_fails_drift_and_json_has_windows(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_slowing=SLOWING_TEST)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    out = pytester.path / "perf.json"
    result = pytester.runpytest("-p", "no:randomly", f"--agentperf-json={out}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*p95 drift (last window / first) *x > budget 1.5x*"])
    (run,) = json.loads(out.read_text())["runs"]
    windows = run["result"]["windows"]
    assert len(windows) >= 3
    assert sum(w["calls"] for w in windows) == 150
    assert windows[0]["start"] == 0.0 and windows[1]["start"] == pytest.approx(0.1)
    assert windows[-1]["p95"] >= 0.015 > windows[0]["p50"]
    assert all(w["rss_mb"] > 0 for w in windows)
    assert set(windows[0]) == {
        "start",
        "end",
        "calls",
        "errors",
        "throughput",
        "p50",
        "p95",
        "rss_mb",
    }


def test_a_tiny_requested_window_is_capped_at_1000_windows() -> None:
    from pytest_agentperf.observers.windows import MAX_WINDOWS, choose_window

    assert choose_window(5.0, 100, requested=1e-6) == pytest.approx(5.0 / MAX_WINDOWS)
    assert choose_window(5.0, 100, requested=0.5) == 0.5
