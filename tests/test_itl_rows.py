"""Each gap between stream chunks stays with its call: through the merge of the workers' logs
(sorted by start), through a snapshot of logs still written to, and across the workers' wire."""

from __future__ import annotations

from array import array

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_agentperf.engine.log import ERROR, OK, CallLog, MergedLog, merge
from pytest_agentperf.engine.run import RawRun
from pytest_agentperf.engine.streams import StreamTimes
from pytest_agentperf.workers.merge import ShardReport, merge_shards
from pytest_agentperf.workers.wire import pack_run


def _stream(first: float, gaps: list[float]) -> StreamTimes:
    times = StreamTimes(0.0)
    times.first = first
    times.gaps = array("d", gaps)
    return times


def _logs(layout: list[list[tuple[int, int]]]) -> tuple[list[CallLog], dict[float, list[float]]]:
    """Logs of calls with distinct starts, out of order within and across logs (as concurrent
    calls end); each kept gap is ``start + j / 1000``, so it names its call."""
    logs, expected = [], {}
    call_id = 0
    for calls in layout:
        log = CallLog()
        for kind, n_gaps in calls:
            start = float(call_id * 7 % 101) + call_id / 1000  # distinct, not in log order
            call_id += 1
            gaps = [start + (j + 1) / 1000 for j in range(n_gaps)]
            stream = None if kind == 0 else _stream(0.001, gaps)
            status = ERROR if kind == 2 else OK
            log.record(
                start, start + 1.0, status, "E" if kind == 2 else None, stream, None, None, None
            )
            expected[start] = gaps if kind == 1 else []
        logs.append(log)
    return logs, expected


def _gaps_by_start(merged: MergedLog) -> dict[float, list[float]]:
    out: dict[float, list[float]] = {float(s): [] for s in merged.start}
    for row, gap in zip(merged.gap_rows().tolist(), merged.itl.tolist(), strict=True):
        out[float(merged.start[row])].append(gap)
    return out


# per log, its calls as (kind, gaps): kind 0 plain, 1 stream, 2 failed stream (gaps not kept)
layouts = st.lists(
    st.lists(st.tuples(st.sampled_from([0, 1, 1, 2]), st.integers(0, 4)), max_size=12),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(layouts)
def test_the_merge_keeps_every_gap_with_its_call(layout: list[list[tuple[int, int]]]) -> None:
    logs, expected = _logs(layout)
    merged = merge(logs)
    assert _gaps_by_start(merged) == expected
    assert int(merged.itl_counts.sum()) == merged.itl.size
    assert bool(np.all(merged.itl_counts > 0))
    assert bool(np.all(np.diff(merged.itl_rows) > 0))
    # the gaps are laid out in row order, each stream's in the order they came
    assert bool(np.all(np.diff(merged.gap_rows()) >= 0))


@settings(max_examples=40, deadline=None)
@given(layouts)
def test_the_gaps_cross_the_workers_wire_with_their_calls(
    layout: list[list[tuple[int, int]]],
) -> None:
    logs, expected = _logs(layout)
    start_unix = 1_000_000.0
    reports = []
    for k, log in enumerate(logs):
        merged = merge([log])
        raw = RawRun(merged, log.usage, {}, (), 1.0, 0, None, "agent", t0_unix=start_unix)
        reports.append(ShardReport(f"gw{k}", "popen", "h", 1, pack_run(raw, cpu_seconds=0.0)))
    raw, _ = merge_shards(reports, start_unix)
    assert _gaps_by_start(raw.log) == expected


def test_a_stream_not_complete_yet_leaves_its_gaps_out_of_a_merge() -> None:
    """A reader on another thread may merge while a stream's row is half written: its row and
    gaps are in, its TTFT and end not yet; the gaps must not be taken for another call's."""
    log = CallLog()
    log.record(0.0, 1.0, OK, None, _stream(0.1, [0.5, 0.6]), None, None, None)
    log.ttft_rows.append(1)  # the next stream, as far as its writer got
    log.itl.extend(array("d", [9.0, 9.0, 9.0]))
    log.itl_counts.append(3)
    merged = merge([log])
    assert merged.itl.tolist() == [0.5, 0.6]
    assert merged.itl_rows.tolist() == [0] and merged.itl_counts.tolist() == [2]
