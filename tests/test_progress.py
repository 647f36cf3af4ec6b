from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.engine import Progress, run_load
from pytest_agentperf.progress import ProgressLine
from pytest_agentperf.settings import parse_settings


def test_progress_line_appears_after_two_seconds_on_a_line_of_its_own() -> None:
    out: list[str] = []
    line = ProgressLine("t::x[agent]", out.append)
    line(Progress(done=5, total=100, elapsed=1.0, duration=None, errors=0))
    assert out == []
    line(Progress(done=50, total=100, elapsed=2.5, duration=None, errors=3))
    assert out[-1] == "\n  agentperf t::x[agent]: 50/100 calls, 2.5 s, 3 errors"
    line(Progress(done=70, total=None, elapsed=3.0, duration=10.0, errors=0))
    assert out[-1].startswith("\r  agentperf t::x[agent]: 70 calls, 3 s of 10 s")
    line(Progress(done=100, total=100, elapsed=4.0, duration=None, errors=3, finished=True))
    assert out[-2].startswith("\r  agentperf t::x[agent]: 100/100 calls, 4 s, 3 errors")
    assert out[-1] == "\n"
    quiet: list[str] = []
    short = ProgressLine("t::y", quiet.append)
    short(Progress(done=3, total=3, elapsed=0.5, duration=None, errors=0, finished=True))
    assert quiet == []  # a short run prints nothing


def test_engine_reports_progress_during_and_at_the_end() -> None:
    seen: list[Progress] = []

    def agent() -> None:
        time.sleep(0.01)

    run_load(agent, None, parse_settings({"duration": "1.2s", "warmup": 0}), progress=seen.append)
    assert seen[-1].finished
    assert seen[-1].done >= 20
    mid = [p for p in seen if not p.finished]
    assert mid and all(p.duration == 1.2 for p in mid)
    assert [p.done for p in seen] == sorted(p.done for p in seen)


def test_progress_line_never_wraps_the_terminal() -> None:
    out: list[str] = []
    line = ProgressLine("tests/test_a_rather_long_module_name.py::test_x[agent]", out.append, 60)
    line(Progress(done=5, total=100, elapsed=3.0, duration=None, errors=7))
    text = out[-1].lstrip("\r\n")
    assert len(text) <= 59 and text.endswith(": 5/100 calls, 3 s, 7 errors") and "…" in text


@settings(max_examples=80, deadline=None)
@given(
    width=st.integers(30, 200),
    done=st.integers(0, 10**9),
    label=st.text(alphabet="abcdefghij_:/[]", min_size=1, max_size=120),
)
def test_the_line_fits_and_never_cuts_a_number(width: int, done: int, label: str) -> None:
    out: list[str] = []
    line = ProgressLine(label, out.append, width=width)
    line.detail = lambda: "last 2 s: 17.5/s, p95 100 ms, 4 errors, RSS 152 MB"
    line(Progress(done=done, total=10**9, elapsed=12.5, duration=None, errors=3))
    text = out[-1].lstrip("\n")
    figures = f": {done}/{10**9} calls, 12.5 s, 3 errors"
    assert figures in text  # the run's own figures, whole
    essential = len("  agentperf ") + 9 + len(figures)  # a label cut to 8 characters and "…"
    assert len(text) <= max(width - 1, essential)
    for part in ("17.5/s", "p95 100 ms", "4 errors", "RSS 152 MB"):  # window parts: whole or gone
        stem = part.split()[0]
        assert part in text or stem not in text.split(figures, 1)[1]
