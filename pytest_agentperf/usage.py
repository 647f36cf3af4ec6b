"""Token usage: the per-call recorder (contextvars) and extraction from what a call returns."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .errors import InvalidUsage, UsageExtractionError, describe
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


class CallScope:
    """What is recorded while one measured call runs; shared by the tasks and threads it spawns.

    One is made per call, so it is a plain slotted class: cheaper to create than a dataclass
    with default factories.
    """

    __slots__ = ("records", "tools")

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.tools: list[tuple[str, float, bool]] = []


UNNAMED_MODEL = "unknown"
"""The model key of usage that named no model, when the marker gives no ``model=`` either."""

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

    ``input_tokens`` counts every prompt token; ``cached_input_tokens`` (read from the
    provider's prompt cache) and ``cache_creation_input_tokens`` (written to it) are the parts
    of it billed at the cache prices. ``reasoning_tokens`` is the part of ``output_tokens``
    spent on reasoning. Works across awaits, tasks and ``asyncio.to_thread``; outside a run it
    does nothing (but still checks its arguments).

    Raises ``InvalidUsage`` (a TypeError and a ValueError) naming the argument when a count is
    not a whole number >= 0 or ``model`` is not a non-empty string; inside a run, that makes
    the call in progress fail with that error.
    """
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidUsage(
            f"record_usage(model={model!r}): expected the model name as a non-empty str "
            f"or None, got {type(model).__name__}"
        )
    record = UsageRecord(
        input_tokens=_count(input_tokens, "input_tokens"),
        output_tokens=_count(output_tokens, "output_tokens"),
        model=model,
        cached_input_tokens=_count(cached_input_tokens, "cached_input_tokens"),
        cache_creation_input_tokens=_count(
            cache_creation_input_tokens, "cache_creation_input_tokens"
        ),
        reasoning_tokens=_count(reasoning_tokens, "reasoning_tokens"),
    )
    scope = _current.get()
    if scope is not None:
        scope.records.append(record)


def _count(value: Any, name: str) -> int:
    """``value`` as a token count: a whole number >= 0 (an integral float such as 12.0 is
    accepted); anything else is an ``InvalidUsage`` naming the argument."""
    number: int | None = None
    if not isinstance(value, bool):
        try:
            number = operator.index(value)  # int, numpy integers
        except TypeError:
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                number = int(value)
    if number is None:
        raise InvalidUsage(
            f"record_usage({name}={value!r}): expected a whole number of tokens, "
            f"got {type(value).__name__}"
        )
    if number < 0:
        raise InvalidUsage(f"record_usage({name}={value!r}): a token count cannot be negative")
    return number


def record_tool(name: str, seconds: float, ok: bool) -> None:
    """Record one tool call made inside the measured call in progress."""
    scope = _current.get()
    if scope is not None:
        scope.tools.append((name, seconds, ok))


_SCALARS = (str, bytes, bytearray, int, float, bool)
_EVENT_KINDS = frozenset(
    (
        "message_start",
        "message_delta",
        "response.completed",
        "response.incomplete",
        "response.failed",
    )
)


def _get(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``; None when missing (also when ``obj`` is None)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _has(obj: Any, name: str) -> bool:
    if isinstance(obj, dict):
        return name in obj
    return hasattr(obj, name)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"token count {value!r} is not a number of tokens")
        return int(value)
    return None


def _int0(value: Any) -> int:
    v = _as_int(value)
    return 0 if v is None else v


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _from_usage_block(usage: Any, model: str | None) -> UsageRecord | None:
    """One record from a ``usage`` block: OpenAI chat, OpenAI Responses, Anthropic, Bedrock.

    ``input_tokens`` always counts every prompt token (cache reads and writes included) and
    ``output_tokens`` every generated token (reasoning included), whatever the provider's
    own convention; the cache and reasoning fields are subsets used for pricing.
    """
    prompt = _as_int(_get(usage, "prompt_tokens"))
    completion = _as_int(_get(usage, "completion_tokens"))
    if prompt is not None or completion is not None:
        # OpenAI chat completions (and every OpenAI-compatible server).
        pdet = _get(usage, "prompt_tokens_details")
        cdet = _get(usage, "completion_tokens_details")
        return UsageRecord(
            input_tokens=prompt or 0,
            output_tokens=completion or 0,
            model=model,
            cached_input_tokens=_int0(_get(pdet, "cached_tokens")),
            cache_creation_input_tokens=_int0(_get(pdet, "cache_write_tokens")),
            reasoning_tokens=_int0(_get(cdet, "reasoning_tokens")),
        )
    inp = _as_int(_get(usage, "input_tokens"))
    out = _as_int(_get(usage, "output_tokens"))
    if inp is not None or out is not None:
        odet = _get(usage, "output_tokens_details")
        if _has(usage, "cache_read_input_tokens") or _has(usage, "cache_creation_input_tokens"):
            # Anthropic: input_tokens excludes the cached and cache-written tokens.
            read = _int0(_get(usage, "cache_read_input_tokens"))
            write = _int0(_get(usage, "cache_creation_input_tokens"))
            return UsageRecord(
                input_tokens=(inp or 0) + read + write,
                output_tokens=out or 0,
                model=model,
                cached_input_tokens=read,
                cache_creation_input_tokens=write,
                reasoning_tokens=_int0(_get(odet, "thinking_tokens")),
            )
        # OpenAI Responses API.
        idet = _get(usage, "input_tokens_details")
        return UsageRecord(
            input_tokens=inp or 0,
            output_tokens=out or 0,
            model=model,
            cached_input_tokens=_int0(_get(idet, "cached_tokens")),
            cache_creation_input_tokens=_int0(_get(idet, "cache_write_tokens")),
            reasoning_tokens=_int0(_get(odet, "reasoning_tokens")),
        )
    inp = _as_int(_get(usage, "inputTokens"))
    out = _as_int(_get(usage, "outputTokens"))
    if inp is not None or out is not None:
        # AWS Bedrock Converse: inputTokens excludes cache reads and writes.
        read = _int0(_get(usage, "cacheReadInputTokens"))
        write = _int0(_get(usage, "cacheWriteInputTokens"))
        return UsageRecord(
            input_tokens=(inp or 0) + read + write,
            output_tokens=out or 0,
            model=model,
            cached_input_tokens=read,
            cache_creation_input_tokens=write,
        )
    return None


def _from_usage_metadata(meta: Any, model: str | None) -> UsageRecord | None:
    """LangChain ``usage_metadata`` (or Google GenAI's, which shares the attribute name)."""
    inp = _as_int(_get(meta, "input_tokens"))
    out = _as_int(_get(meta, "output_tokens"))
    if inp is not None or out is not None:
        idet = _get(meta, "input_token_details")
        odet = _get(meta, "output_token_details")
        return UsageRecord(
            input_tokens=inp or 0,
            output_tokens=out or 0,
            model=model,
            cached_input_tokens=_int0(_get(idet, "cache_read")),
            cache_creation_input_tokens=_int0(_get(idet, "cache_creation")),
            reasoning_tokens=_int0(_get(odet, "reasoning")),
        )
    prompt = _as_int(_get(meta, "prompt_token_count"))
    cand = _as_int(_get(meta, "candidates_token_count"))
    if prompt is not None or cand is not None:
        # Google GenAI: candidates exclude the thinking tokens, which are billed as output.
        thoughts = _int0(_get(meta, "thoughts_token_count"))
        return UsageRecord(
            input_tokens=prompt or 0,
            output_tokens=(cand or 0) + thoughts,
            model=model,
            cached_input_tokens=_int0(_get(meta, "cached_content_token_count")),
            reasoning_tokens=thoughts,
        )
    return None


def _lc_model(msg: Any) -> str | None:
    meta = getattr(msg, "response_metadata", None)
    if isinstance(meta, dict):
        return _str(meta.get("model_name")) or _str(meta.get("model"))
    return None


def _from_generations(obj: Any) -> list[UsageRecord] | None:
    """LangChain ``LLMResult`` / ``ChatResult``: message usage, else ``llm_output``."""
    gens = _get(obj, "generations")
    llm_output = _get(obj, "llm_output")
    llm_model = None
    if isinstance(llm_output, dict):
        llm_model = _str(llm_output.get("model_name")) or _str(llm_output.get("model"))
    out: list[UsageRecord] = []
    if isinstance(gens, (list, tuple)):
        for item in gens:
            batch = item if isinstance(item, (list, tuple)) else (item,)
            for gen in batch:
                msg = getattr(gen, "message", None)
                meta = getattr(msg, "usage_metadata", None) if msg is not None else None
                if meta is not None:
                    rec = _from_usage_metadata(meta, _lc_model(msg) or llm_model)
                    if rec is not None:
                        out.append(rec)
    if out:
        return out
    if isinstance(llm_output, dict):
        for key in ("token_usage", "usage"):
            block = llm_output.get(key)
            if block is not None:
                rec = _from_usage_block(block, llm_model)
                if rec is not None:
                    return [rec]
    return None


def _from_event(obj: Any, kind: str) -> list[UsageRecord] | None:
    """Streaming events that carry usage: Anthropic message events, OpenAI Responses events."""
    if kind == "message_start":
        # Anthropic: input counts here; its output count is a placeholder that the final
        # message_delta's cumulative count replaces.
        found = extract_usage(_get(obj, "message"))
        for rec in found or ():
            rec.output_tokens = 0
            rec.reasoning_tokens = 0
        return found
    if kind == "message_delta":
        # Anthropic's final delta: cumulative output tokens; input was in message_start.
        usage = _get(obj, "usage")
        out = _as_int(_get(usage, "output_tokens")) if usage is not None else None
        return None if out is None else [UsageRecord(input_tokens=0, output_tokens=out)]
    if kind in ("response.completed", "response.incomplete", "response.failed"):
        return extract_usage(_get(obj, "response"))
    return None


def extract_usage(obj: Any) -> list[UsageRecord] | None:
    """Usage found in a call's return value (or a stream chunk), or None when there is none.

    Duck-typed, so no client library is imported: OpenAI chat completions, Responses and
    stream chunks (usage only in the last one), Anthropic messages and stream events,
    LangChain messages / ``LLMResult`` / ``ChatResult``, Google GenAI responses, and plain
    dicts with a top-level ``usage`` / ``usage_metadata`` / ``token_usage`` key. The model
    name comes from the object when it has one, else it is None.
    """
    if obj is None or isinstance(obj, _SCALARS):
        return None
    if isinstance(obj, dict):
        return _from_dict(obj)
    meta = getattr(obj, "usage_metadata", None)
    if meta is not None:
        model = _lc_model(obj) or _str(getattr(obj, "model_version", None))
        rec = _from_usage_metadata(meta, model)
        if rec is not None:
            return [rec]
    kind = getattr(obj, "type", None)
    if isinstance(kind, str) and kind in _EVENT_KINDS:
        return _from_event(obj, kind)
    usage = getattr(obj, "usage", None)
    if usage is not None:
        rec = _from_usage_block(usage, _str(getattr(obj, "model", None)))
        if rec is not None:
            return [rec]
    if hasattr(obj, "generations"):
        return _from_generations(obj)
    return None


def read_usage(obj: Any) -> list[UsageRecord] | None:
    """``extract_usage(obj)``, with any failure raised as ``UsageExtractionError``.

    What a call returns is the agent's, not ours: an object whose attributes raise, or a NaN
    token count, must fail that call with an error that says so, not the worker making it.
    """
    try:
        return extract_usage(obj)
    except Exception as exc:
        raise UsageExtractionError(
            f"reading token usage from a {type(obj).__name__} failed: {describe(exc)}"
        ) from exc


def _from_dict(obj: dict[str, Any]) -> list[UsageRecord] | None:
    model = _str(obj.get("model")) or _str(obj.get("model_name"))
    meta = obj.get("usage_metadata")
    if meta is not None:
        rec = _from_usage_metadata(meta, model)
        if rec is not None:
            return [rec]
    kind = obj.get("type")
    if isinstance(kind, str) and kind in _EVENT_KINDS:
        return _from_event(obj, kind)
    for key in ("usage", "token_usage"):
        block = obj.get(key)
        if block is not None:
            rec = _from_usage_block(block, model)
            if rec is not None:
                return [rec]
    return None


def combine_records(records: Iterable[UsageRecord]) -> list[UsageRecord]:
    """Sum records of one LLM request (e.g. the chunks of a stream) into one per model.

    Records without a model name join the single named model when there is exactly one
    (a stream often names its model in only some chunks).
    """
    by_model: dict[str | None, UsageRecord] = {}
    for r in records:
        acc = by_model.get(r.model)
        if acc is None:
            by_model[r.model] = UsageRecord(
                r.input_tokens,
                r.output_tokens,
                r.model,
                r.cached_input_tokens,
                r.cache_creation_input_tokens,
                r.reasoning_tokens,
            )
        else:
            _add_into(acc, r)
    named = [m for m in by_model if m is not None]
    if None in by_model and len(named) == 1:
        _add_into(by_model[named[0]], by_model.pop(None))
    return list(by_model.values())


def _add_into(acc: UsageRecord, r: UsageRecord) -> None:
    acc.input_tokens += r.input_tokens
    acc.output_tokens += r.output_tokens
    acc.cached_input_tokens += r.cached_input_tokens
    acc.cache_creation_input_tokens += r.cache_creation_input_tokens
    acc.reasoning_tokens += r.reasoning_tokens


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
            key = r.model or default_model or UNNAMED_MODEL
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
