"""Token usage: the per-call recorder (contextvars) and extraction from what a call returns."""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
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
    # When and where: not part of what a record counts, so records compare by tokens and model.
    start: float | None = field(default=None, compare=False)
    """When the request was sent (``time.perf_counter``); None when nothing timed it (usage
    read from a return value, or ``record_usage``)."""
    end: float | None = field(default=None, compare=False)
    """When its answer (the last chunk of a stream) arrived (``time.perf_counter``)."""
    ttft: float | None = field(default=None, compare=False)
    """Seconds from ``start`` to the first chunk of a streamed answer."""
    provider: str | None = field(default=None, compare=False)
    """Who served it ("openai", "anthropic", ...), when the integration knows."""

    @property
    def seconds(self) -> float | None:
        """How long the request took, when it was timed."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


ToolCall = tuple[str, float, bool, float]
"""One tool call: its name, seconds, whether it succeeded, and when it ended
(``time.perf_counter``)."""


class CallScope:
    """What is recorded while a measured call runs; shared by the tasks and threads it spawns.

    The engine sets one per worker, not per call (setting a context variable per call costs
    more than a no-op call). After each call it takes out what the call recorded, if anything
    (``take``), so each call is still credited with its own usage and tools.
    """

    __slots__ = ("records", "tools")

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self.tools: list[ToolCall] = []

    def take(self) -> CallScope:
        """What was recorded so far, as a scope of its own; this one starts empty again."""
        taken = CallScope.__new__(CallScope)
        taken.records, taken.tools = self.records, self.tools
        self.records, self.tools = [], []
        return taken


UNNAMED_MODEL = "unknown"
"""The model key of usage that named no model, when the marker gives no ``model=`` either."""

CURRENT_SCOPE: ContextVar[CallScope | None] = ContextVar("agentperf_call_scope", default=None)
"""The ``CallScope`` of the measured call in progress, None outside a run.

The engine sets it once per worker (``token = CURRENT_SCOPE.set(scope)`` ...
``CURRENT_SCOPE.reset(token)``, a plain ContextVar) and takes each call's records out of it
when the call ends; tasks and threads started inside a call inherit it. Usage that a task left
running records after its call ended counts toward the worker's next call (or, after the last,
is not counted). Everything else reads it with ``current_scope()``.
"""


def current_scope() -> CallScope | None:
    """The scope of the measured call in progress, or None outside a run."""
    return CURRENT_SCOPE.get()


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
    scope = CURRENT_SCOPE.get()
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
    """Record one tool call made inside the measured call in progress, as it ends: it took
    ``seconds`` up to now."""
    scope = CURRENT_SCOPE.get()
    if scope is not None:
        scope.tools.append((name, seconds, ok, time.perf_counter()))


_SCALARS = (str, bytes, bytearray, int, float, bool)

BlockReader = Callable[[Any, "str | None"], "UsageRecord | None"]
"""Reads one usage block (with the model name found beside it); None when the block is not in
this provider's field names."""
EventReader = Callable[[Any], "list[UsageRecord] | None"]
"""Reads the usage a stream event of one ``type`` carries; None or [] when it has none."""


@dataclass(frozen=True)
class UsageReader:
    """How one provider's objects carry token usage; every part is optional.

    ``block`` reads the object under ``usage`` (or ``token_usage``); ``metadata`` the object
    under ``usage_metadata``, named by ``model`` when it returns a name; ``events`` read stream
    events by their ``type``; ``whole`` reads an object that has none of these (LangChain's
    ``LLMResult``) and claims it by its ``claims`` attribute; ``chunk_output`` tells whether a
    stream chunk carries generated output (None: not this provider's chunk). The registered
    readers (``integrations.USAGE_READERS``, then ``register_reader``) are tried in order.
    """

    block: BlockReader | None = None
    metadata: BlockReader | None = None
    model: Callable[[Any], str | None] | None = None
    events: Mapping[str, EventReader] = field(default_factory=dict)
    claims: str | None = None
    whole: EventReader | None = None
    chunk_output: Callable[[Any], bool | None] | None = None


@dataclass(frozen=True)
class _Tables:
    """The registered readers, split per part so that extraction is a few lookups."""

    blocks: tuple[BlockReader, ...]
    metadata: tuple[BlockReader, ...]
    models: tuple[Callable[[Any], str | None], ...]
    events: Mapping[str, EventReader]
    whole: tuple[tuple[str, EventReader], ...]
    chunk_output: tuple[Callable[[Any], bool | None], ...]


def _tables_of(readers: Iterable[UsageReader]) -> _Tables:
    rs = tuple(readers)
    events: dict[str, EventReader] = {}
    for r in rs:
        for kind, read in r.events.items():
            events.setdefault(kind, read)  # the first registered reader of a kind wins
    return _Tables(
        blocks=tuple(r.block for r in rs if r.block is not None),
        metadata=tuple(r.metadata for r in rs if r.metadata is not None),
        models=tuple(r.model for r in rs if r.model is not None),
        events=events,
        whole=tuple((r.claims, r.whole) for r in rs if r.whole is not None and r.claims),
        chunk_output=tuple(r.chunk_output for r in rs if r.chunk_output is not None),
    )


_readers: list[UsageReader] = []
_tables: _Tables | None = None


def _loaded() -> _Tables:
    """The reader tables, built on first use: the integrations register their readers in
    ``integrations/__init__.py``, imported only when usage is first read."""
    global _tables
    if _tables is None:
        # Two threads may both build the tables on first use; they build equal ones and the
        # last assignment wins, so no lock is needed on this per-call path.
        from .integrations import USAGE_READERS

        _tables = _tables_of((*USAGE_READERS, *_readers))
    return _tables


def register_reader(reader: UsageReader) -> None:
    """Read usage in one more provider's shape too; tried after the built-in readers."""
    global _tables
    _readers.append(reader)
    _tables = None


def unregister_reader(reader: UsageReader) -> None:
    """Undo ``register_reader(reader)``."""
    global _tables
    _readers.remove(reader)
    _tables = None


def get_field(obj: Any, name: str) -> Any:
    """``obj[name]`` or ``obj.name``; None when missing (also when ``obj`` is None).

    Provider objects reach us as SDK objects or as plain dicts (a JSON body, a LangChain
    ``llm_output``); readers use this so that one reader serves both.
    """
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def has_field(obj: Any, name: str) -> bool:
    """Whether ``obj`` has key or attribute ``name``."""
    if isinstance(obj, dict):
        return name in obj
    return hasattr(obj, name)


def token_count(value: Any) -> int | None:
    """``value`` as a token count when it is a number, else None; a NaN or infinite count is a
    ValueError (the provider object is broken, and the call must say so)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"token count {value!r} is not a number of tokens")
        return int(value)
    return None


def token_count0(value: Any) -> int:
    """``token_count(value)``, 0 when it is missing."""
    v = token_count(value)
    return 0 if v is None else v


def model_name(value: Any) -> str | None:
    """``value`` when it is a non-empty string (a model name), else None."""
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class UsageFields:
    """One provider's usage block as data: which fields hold which count.

    A name with dots reads a nested field (``"prompt_tokens_details.cached_tokens"``). The
    block is this provider's when ``input`` or ``output`` is present (and, with ``marks``, one
    of those fields too). Records are normalised: ``cache_outside_input`` adds cache reads and
    writes to the input (Anthropic and Bedrock count them apart), ``reasoning_outside_output``
    adds reasoning to the output (Google counts it apart). Called like a ``BlockReader``.
    """

    input: str
    output: str
    cached: str = ""
    cache_write: str = ""
    reasoning: str = ""
    marks: tuple[str, ...] = ()
    cache_outside_input: bool = False
    reasoning_outside_output: bool = False

    def __call__(self, block: Any, model: str | None) -> UsageRecord | None:
        if self.marks and not any(has_field(block, m) for m in self.marks):
            return None
        inp = token_count(get_field(block, self.input))
        out = token_count(get_field(block, self.output))
        if inp is None and out is None:
            return None
        cached = _count_at(block, self.cached)
        write = _count_at(block, self.cache_write)
        reasoning = _count_at(block, self.reasoning)
        return UsageRecord(
            input_tokens=(inp or 0) + (cached + write if self.cache_outside_input else 0),
            output_tokens=(out or 0) + (reasoning if self.reasoning_outside_output else 0),
            model=model,
            cached_input_tokens=cached,
            cache_creation_input_tokens=write,
            reasoning_tokens=reasoning,
        )


def _count_at(block: Any, path: str) -> int:
    """The token count at a dotted ``path`` of ``block``; 0 when missing or no path."""
    if not path:
        return 0
    for name in path.split("."):
        block = get_field(block, name)
    return token_count0(block)


def _first(readers: tuple[BlockReader, ...], block: Any, model: str | None) -> UsageRecord | None:
    for read in readers:
        rec = read(block, model)
        if rec is not None:
            return rec
    return None


def read_usage_block(usage: Any, model: str | None) -> UsageRecord | None:
    """One record from a ``usage`` block in any registered provider's field names, or None.

    ``input_tokens`` always counts every prompt token (cache reads and writes included) and
    ``output_tokens`` every generated token (reasoning included), whatever the provider's
    own convention; the cache and reasoning fields are subsets used for pricing.
    """
    return _first((_tables or _loaded()).blocks, usage, model)


def read_usage_metadata(meta: Any, model: str | None) -> UsageRecord | None:
    """One record from a ``usage_metadata`` block (LangChain, Google GenAI), or None."""
    return _first((_tables or _loaded()).metadata, meta, model)


def chunk_carries_output(chunk: Any) -> bool | None:
    """Whether a stream chunk carries generated output, by the first registered reader that
    knows the chunk's shape; None when none does."""
    for judge in (_tables or _loaded()).chunk_output:
        found = judge(chunk)
        if found is not None:
            return found
    return None


def extract_usage(obj: Any) -> list[UsageRecord] | None:
    """Usage found in a call's return value (or a stream chunk), or None when there is none.

    Duck-typed, so no client library is imported: the registered readers (see
    ``integrations/__init__.py``) cover OpenAI chat completions, Responses and stream chunks
    (usage only in the last one), Anthropic messages and stream events, AWS Bedrock, LangChain
    messages / ``LLMResult`` / ``ChatResult``, Google GenAI responses, and plain dicts with a
    top-level ``usage`` / ``usage_metadata`` / ``token_usage`` key. The model name comes from
    the object when it has one, else it is None.
    """
    if obj is None or isinstance(obj, _SCALARS):
        return None
    # Runs once per measured call (and per stream chunk): a few lookups, no imports.
    t = _tables or _loaded()
    if isinstance(obj, dict):
        return _from_dict(obj, t)
    meta = getattr(obj, "usage_metadata", None)
    if meta is not None:
        model = None
        for read_model in t.models:
            model = read_model(obj)
            if model is not None:
                break
        rec = _first(t.metadata, meta, model)
        if rec is not None:
            return [rec]
    kind = getattr(obj, "type", None)
    if isinstance(kind, str):
        read_event = t.events.get(kind)
        if read_event is not None:
            return read_event(obj) or None
    usage = getattr(obj, "usage", None)
    if usage is not None:
        rec = _first(t.blocks, usage, model_name(getattr(obj, "model", None)))
        if rec is not None:
            return [rec]
    for claims, whole in t.whole:
        if hasattr(obj, claims):
            return whole(obj) or None
    return None


def _from_dict(obj: dict[str, Any], t: _Tables) -> list[UsageRecord] | None:
    """A plain dict (a JSON body): the same keys as an object's attributes."""
    model = model_name(obj.get("model")) or model_name(obj.get("model_name"))
    meta = obj.get("usage_metadata")
    if meta is not None:
        rec = _first(t.metadata, meta, model)
        if rec is not None:
            return [rec]
    kind = obj.get("type")
    if isinstance(kind, str):
        read_event = t.events.get(kind)
        if read_event is not None:
            return read_event(obj) or None
    for key in ("usage", "token_usage"):
        block = obj.get(key)
        if block is not None:
            rec = _first(t.blocks, block, model)
            if rec is not None:
                return [rec]
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

    __slots__ = ("_by_model", "calls_with_usage", "llm_seconds", "timed_llm_calls", "tools")

    def __init__(self) -> None:
        self._by_model: dict[str, list[int]] = {}
        self.calls_with_usage = 0
        self.tools: dict[str, list[float]] = {}
        self.llm_seconds = 0.0
        """Seconds of the LLM requests an integration timed (``UsageRecord.seconds``)."""
        self.timed_llm_calls = 0

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
            if r.start is not None and r.end is not None:
                self.llm_seconds += r.end - r.start
                self.timed_llm_calls += 1
        if seen:
            self.calls_with_usage += 1

    def add_tools(self, tools: Iterable[ToolCall]) -> None:
        for name, seconds, ok, _ in tools:
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
        self.llm_seconds += other.llm_seconds
        self.timed_llm_calls += other.timed_llm_calls
        for name, trow in other.tools.items():
            tmine = self.tools.setdefault(name, [0.0, 0.0, 0.0])
            for i, tv in enumerate(trow):
                tmine[i] += tv

    def to_plain(self) -> dict[str, Any]:
        """These totals as plain data (dicts, lists, numbers), to send to another process."""
        return {
            "by_model": {k: list(v) for k, v in self._by_model.items()},
            "calls_with_usage": self.calls_with_usage,
            "tools": {k: list(v) for k, v in self.tools.items()},
            "llm_seconds": self.llm_seconds,
            "timed_llm_calls": self.timed_llm_calls,
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> UsageAccumulator:
        """The totals ``to_plain`` wrote."""
        acc = cls()
        acc._by_model = {str(k): [int(x) for x in v] for k, v in data["by_model"].items()}
        acc.calls_with_usage = int(data["calls_with_usage"])
        acc.tools = {str(k): [float(x) for x in v] for k, v in data["tools"].items()}
        acc.llm_seconds = float(data["llm_seconds"])
        acc.timed_llm_calls = int(data["timed_llm_calls"])
        return acc

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
