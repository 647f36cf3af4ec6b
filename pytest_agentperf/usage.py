"""Token usage: the per-call recorder (contextvars) and extraction from what a call returns."""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .results import ModelUsage, PerCallUsage, ToolStats, Usage


@dataclass(slots=True)
class UsageRecord:
    """Tokens of one LLM request made inside a measured call."""

    input_tokens: int
    output_tokens: int
    model: str | None = None
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(slots=True)
class CallScope:
    """What is recorded while one measured call runs; shared by the tasks and threads it spawns."""

    records: list[UsageRecord] = field(default_factory=list)
    tools: list[tuple[str, float, bool]] = field(default_factory=list)


_current: ContextVar[CallScope | None] = ContextVar("agentperf_call_scope", default=None)


def current_scope() -> CallScope | None:
    """The scope of the measured call in progress, or None outside a run."""
    return _current.get()


def record_usage(
    input_tokens: int = 0,
    output_tokens: int = 0,
    model: str | None = None,
    cached_input_tokens: int = 0,
    *,
    cache_creation_input_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> None:
    """Attribute the tokens of one LLM request to the measured call in progress.

    Works across awaits, tasks and ``asyncio.to_thread``; outside a run it does nothing.
    """
    scope = _current.get()
    if scope is None:
        return
    scope.records.append(
        UsageRecord(
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            model=model,
            cached_input_tokens=int(cached_input_tokens),
            cache_creation_input_tokens=int(cache_creation_input_tokens),
            reasoning_tokens=int(reasoning_tokens),
        )
    )


def record_tool(name: str, seconds: float, ok: bool) -> None:
    """Record one tool call made inside the measured call in progress."""
    scope = _current.get()
    if scope is not None:
        scope.tools.append((name, seconds, ok))


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return None


def _from_usage_block(usage: Any, model: str | None) -> UsageRecord | None:
    prompt = _as_int(_get(usage, "prompt_tokens"))
    completion = _as_int(_get(usage, "completion_tokens"))
    if prompt is None and completion is None:
        prompt = _as_int(_get(usage, "input_tokens"))
        completion = _as_int(_get(usage, "output_tokens"))
    if prompt is None and completion is None:
        return None
    return UsageRecord(input_tokens=prompt or 0, output_tokens=completion or 0, model=model)


def extract_usage(obj: Any) -> list[UsageRecord] | None:
    """Usage found in a call's return value (or a stream chunk), or None when there is none."""
    if obj is None or isinstance(obj, (str, bytes, int, float, bool)):
        return None
    model = _get(obj, "model")
    model = model if isinstance(model, str) else None
    meta = _get(obj, "usage_metadata")
    if meta is not None:
        rec = _from_usage_block(meta, model)
        if rec is not None:
            return [rec]
    usage = _get(obj, "usage")
    if usage is not None:
        rec = _from_usage_block(usage, model)
        if rec is not None:
            return [rec]
    return None


class UsageAccumulator:
    """Sums the usage of measured calls into a ``Usage``; not thread-safe, one per worker."""

    __slots__ = ("_by_model", "calls_with_usage", "tools")

    def __init__(self) -> None:
        self._by_model: dict[str, list[int]] = {}
        self.calls_with_usage = 0
        self.tools: dict[str, list[float]] = {}

    def add_call(self, records: Iterable[UsageRecord], default_model: str | None) -> None:
        """Add the usage of one call (all the LLM requests it made)."""
        seen = False
        for r in records:
            seen = True
            key = r.model or default_model or "unknown"
            row = self._by_model.setdefault(key, [0, 0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += r.input_tokens
            row[2] += r.output_tokens
            row[3] += r.cached_input_tokens
            row[4] += r.cache_creation_input_tokens
            row[5] += r.reasoning_tokens
        if seen:
            self.calls_with_usage += 1

    def add_tools(self, tools: Iterable[tuple[str, float, bool]]) -> None:
        for name, seconds, ok in tools:
            row = self.tools.setdefault(name, [0.0, 0.0, 0.0])
            row[0] += 1
            row[1] += 0 if ok else 1
            row[2] += seconds

    def merge(self, other: UsageAccumulator) -> None:
        for key, row in other._by_model.items():
            mine = self._by_model.setdefault(key, [0, 0, 0, 0, 0, 0])
            for i, v in enumerate(row):
                mine[i] += v
        self.calls_with_usage += other.calls_with_usage
        for name, trow in other.tools.items():
            tmine = self.tools.setdefault(name, [0.0, 0.0, 0.0])
            for i, tv in enumerate(trow):
                tmine[i] += tv

    def usage(self, requests: int) -> Usage:
        """The run's ``Usage``; per-call means divide by ``requests`` (failed calls included)."""
        if self.calls_with_usage == 0:
            return Usage()
        by_model = {
            k: ModelUsage(
                calls=r[0],
                input_tokens=r[1],
                output_tokens=r[2],
                cached_input_tokens=r[3],
                cache_creation_input_tokens=r[4],
                reasoning_tokens=r[5],
            )
            for k, r in sorted(self._by_model.items())
        }
        inp = sum(m.input_tokens for m in by_model.values())
        out = sum(m.output_tokens for m in by_model.values())
        n = max(requests, 1)
        return Usage(
            input_tokens=inp,
            output_tokens=out,
            total_tokens=inp + out,
            cached_input_tokens=sum(m.cached_input_tokens for m in by_model.values()),
            reasoning_tokens=sum(m.reasoning_tokens for m in by_model.values()),
            calls_with_usage=self.calls_with_usage,
            per_call=PerCallUsage(inp / n, out / n, (inp + out) / n),
            by_model=by_model,
        )

    def tool_stats(self) -> dict[str, ToolStats]:
        return {
            name: ToolStats(calls=int(r[0]), errors=int(r[1]), total_time=r[2])
            for name, r in sorted(self.tools.items())
        }
