"""The names of the terminal table's columns, for ``--agentperf-columns`` (light: checked at
start-up, before any perf test runs)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..errors import SettingsError

TABLE_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "n": "measured calls",
        "load": "load shape (c=N, or offered rate in open loop)",
        "achieved": "open loop: calls started per second",
        "late": "open loop: calls that started late",
        "p50": "latency p50",
        "p95": "latency p95",
        "p99": "latency p99",
        "ttft": "time to first chunk p95",
        "thru": "successful calls per second",
        "err": "failed calls",
        "tok": "tokens per call",
        "cost": "cost per call, or per 1,000 calls when every one is below $0.01",
        "month": "projected monthly cost",
        "tools": "tool calls, errors and time",
        "share": "share of the calls' time in LLM requests and in tools (the rest: own code)",
        "drift": "soak: last window p95 / first window p95 (windows)",
        "rss": "peak memory growth",
        "cpu": "CPU time per call",
        "mb1k": "memory slope, MB per 1,000 calls",
        "dp50": "change of p50 against the baseline",
        "dp95": "change of p95 against the baseline",
        "dtokens": "change of tokens per call against the baseline",
        "dcost": "change of cost per call against the baseline",
        "dcpu": "change of CPU time per call against the baseline",
        "ab": "A/B arm: p95 against the reference arm, with the verdict",
        "abcost": "A/B arm: cost per call against the reference arm, with the verdict",
    }
)
"""Every optional column by its name; the test and status columns are always shown."""

ALL = "all"


def parse_columns(value: str | None) -> tuple[str, ...] | None:
    """The columns ``--agentperf-columns`` names: None (fit the terminal) when not given,
    every column for ``all``. Raises SettingsError listing the valid names."""
    if value is None or not value.strip():
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names == [ALL]:
        return tuple(TABLE_COLUMNS)
    unknown = [n for n in names if n not in TABLE_COLUMNS]
    if unknown:
        raise SettingsError(
            f"--agentperf-columns: unknown column {', '.join(repr(n) for n in unknown)}; "
            f"valid: {ALL} or a comma list of {', '.join(TABLE_COLUMNS)}",
            key="agentperf_columns",
        )
    return tuple(dict.fromkeys(names))
