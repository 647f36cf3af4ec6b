"""Merging the workers' raw call logs into one ``RawRun``, and each worker's own figures.

Only raw calls are merged (times, statuses, usage, tools): every percentile, rate and budget
of the run is computed afterwards, once, from the pooled calls, so a merged p95 is the p95 of
all the workers' samples together, not a mean of their p95s.

Times: each worker measures from its own start; the merged log measures from the common start
that the controller gave (``start_unix``). A worker's calls move by how much later than that
its own start was (its start skew plus its planned offset), read from the wall clock: exact on
one host, and across hosts as good as their clocks agree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..engine.log import MAX_ERROR_MESSAGES, OK, merge, merge_counters, merge_usage
from ..engine.run import RawRun
from ..results import WorkerShard
from .wire import unpack_log


@dataclass(frozen=True)
class ShardReport:
    """What one worker sent back, with where it ran."""

    name: str
    spec: str
    host: str
    pid: int
    payload: dict[str, Any]
    planned_offset: float = 0.0
    """Seconds after the common start at which it was meant to start."""


def _shard(report: ShardReport, start_unix: float) -> WorkerShard:
    payload = report.payload
    status = np.frombuffer(payload["status"], dtype=np.int8)
    calls = int(status.size)
    ok = int(np.count_nonzero(status == OK))
    duration = max(float(payload["duration"]), 1e-9)
    cpu = float(payload["cpu_seconds"])
    return WorkerShard(
        name=report.name,
        spec=report.spec,
        host=report.host,
        pid=report.pid,
        calls=calls,
        errors=calls - ok,
        throughput=ok / duration,
        duration=duration,
        cpu_seconds=cpu,
        cpu_use=cpu / duration,
        start_skew=float(payload["t0_unix"]) - (start_unix + report.planned_offset),
    )


def merge_shards(
    reports: Sequence[ShardReport], start_unix: float
) -> tuple[RawRun, tuple[WorkerShard, ...]]:
    """One run of every worker's calls, timed from ``start_unix`` (the common start)."""
    # the merged log's t0: this process's perf_counter reading at the common start
    t0 = time.perf_counter() - (time.time() - start_unix)
    logs = []
    for report in reports:
        shift = float(report.payload["t0_unix"]) - start_unix
        logs.append(unpack_log(report.payload, shift, t0))
    log = replace(merge(logs, 0.0), t0=t0)
    messages: list[str] = []
    for report in reports:
        for message in report.payload["error_messages"]:
            if message not in messages and len(messages) < MAX_ERROR_MESSAGES:
                messages.append(str(message))
    aborted = [
        f"{r.name}: {r.payload['aborted']}" for r in reports if r.payload["aborted"] is not None
    ]
    issued = [r.payload["issued"] for r in reports]
    ran = not aborted and len(log) > 0
    duration = float(log.end.max()) if ran else max(float(r.payload["duration"]) for r in reports)
    raw = RawRun(
        log=log,
        usage=merge_usage(logs),
        error_types=merge_counters(logs),
        error_messages=tuple(messages),
        duration=max(duration, 1e-9),
        late_starts=sum(int(r.payload["late_starts"]) for r in reports),
        aborted="; ".join(aborted) or None,
        target=str(reports[0].payload["target"]) if reports else "",
        issued=None if any(i is None for i in issued) else sum(int(i) for i in issued),
        t0_unix=start_unix,
    )
    return raw, tuple(_shard(r, start_unix) for r in reports)
