"""LangChain with no wiring: a callback handler injected through langchain_core's configure hook.

``install()`` registers, once per process, a context variable with
``langchain_core.tracers.context.register_configure_hook``; while ``activate()`` has it set,
every LangChain callback manager (every chat model, LLM and tool run, sync or async, streaming
included) gets the handler, which records

- the token usage of each chat model / LLM call (``on_llm_end``: the generations'
  ``message.usage_metadata``, else ``llm_output["token_usage"]``) with ``record_usage``,
  timed from ``on_chat_model_start`` / ``on_llm_start`` (first streamed token:
  ``on_llm_new_token``), with the provider LangChain names in ``ls_provider``, and
- each tool call's name, duration and outcome (``on_tool_start`` / ``on_tool_end`` /
  ``on_tool_error``) with ``record_tool``,

into the ``CallScope`` of the measured call in progress. Outside a measured call (warmup, or
no run) it records nothing. The runner activates it once around a whole run
(``with activate(): run_load(...)``); the run's tasks and worker threads run in copies of
the context of that block, so they all see it.

The module also holds LangChain's usage readers (``READER``): ``usage_metadata`` of a message,
``LLMResult`` / ``ChatResult``, and which stream chunks carry output; they read by shape and
import nothing.

Usage the callback recorded wins over usage read from the call's return value (the engine
uses ``CallScope.records`` when it is non-empty), so a chain that returns an ``AIMessage``
is not counted twice.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..usage import (
    CallScope,
    UsageFields,
    UsageReader,
    UsageRecord,
    current_scope,
    extract_usage,
    get_field,
    model_name,
    read_usage_block,
    read_usage_metadata,
)

_handler_var: ContextVar[Any] = ContextVar("agentperf_langchain_handler", default=None)
_install_lock = threading.Lock()
_state: dict[str, Any] = {"installed": False, "handler": None}


def available() -> bool:
    """True when ``langchain_core`` can be imported."""
    try:
        import langchain_core  # noqa: F401
    except ImportError:
        return False
    return True


def _make_handler() -> Any:
    """Build the handler instance; its class is defined only here, so langchain_core is
    imported only when the integration is used."""
    from langchain_core.callbacks import BaseCallbackHandler

    class AgentPerfCallbackHandler(BaseCallbackHandler):
        """Records LLM usage and tool calls into the current measured call."""

        run_inline = True  # run in the caller's context, never in an executor
        raise_error = False

        def __init__(self) -> None:
            super().__init__()
            self._tools: dict[Any, tuple[str, float, CallScope]] = {}
            # run_id -> [start, first token or None, provider]; popped at the end of the run
            self._llms: dict[Any, list[Any]] = {}

        def _llm_start(self, run_id: Any, metadata: Any) -> None:
            if current_scope() is None:
                return
            provider = metadata.get("ls_provider") if isinstance(metadata, dict) else None
            self._llms[run_id] = [time.perf_counter(), None, provider]

        def on_chat_model_start(
            self, serialized: Any, messages: Any, *, run_id: Any = None, **kwargs: Any
        ) -> None:
            self._llm_start(run_id, kwargs.get("metadata"))

        def on_llm_start(
            self, serialized: Any, prompts: Any, *, run_id: Any = None, **kwargs: Any
        ) -> None:
            self._llm_start(run_id, kwargs.get("metadata"))

        def on_llm_new_token(self, token: Any, *, run_id: Any = None, **kwargs: Any) -> None:
            timing = self._llms.get(run_id)
            if timing is not None and timing[1] is None:
                timing[1] = time.perf_counter()

        def on_llm_error(self, error: BaseException, *, run_id: Any = None, **kwargs: Any) -> None:
            self._llms.pop(run_id, None)

        def on_llm_end(self, response: Any, *, run_id: Any = None, **kwargs: Any) -> None:
            timing = self._llms.pop(run_id, None)
            scope = current_scope()
            if scope is None:
                return
            records = extract_usage(response)
            if records:
                if timing is not None:
                    end = time.perf_counter()
                    start, first, provider = timing
                    for r in records:
                        r.start, r.end = start, end
                        r.ttft = None if first is None else first - start
                        r.provider = provider if isinstance(provider, str) else None
                scope.records.extend(records)

        def on_tool_start(
            self, serialized: Any, input_str: Any, *, run_id: Any = None, **kwargs: Any
        ) -> None:
            scope = current_scope()
            if scope is None:
                return
            name = kwargs.get("name")
            if not isinstance(name, str) and isinstance(serialized, dict):
                name = serialized.get("name")
            self._tools[run_id] = (str(name or "tool"), time.perf_counter(), scope)

        def on_tool_end(self, output: Any, *, run_id: Any = None, **kwargs: Any) -> None:
            self._finish(run_id, ok=True)

        def on_tool_error(self, error: BaseException, *, run_id: Any = None, **kwargs: Any) -> None:
            self._finish(run_id, ok=False)

        def _finish(self, run_id: Any, *, ok: bool) -> None:
            started = self._tools.pop(run_id, None)
            if started is not None:
                name, t0, scope = started
                now = time.perf_counter()
                scope.tools.append((name, now - t0, ok, now))

    return AgentPerfCallbackHandler()


def install() -> bool:
    """Register the configure hook (once per process, and again if langchain_core's module was
    reloaded); False when langchain_core is missing."""
    try:
        # by module name, as langchain_core's own _configure does (not the package attribute)
        context = importlib.import_module("langchain_core.tracers.context")
    except ImportError:
        return False
    hooks = getattr(context, "_configure_hooks", None)
    if _state["installed"] and (
        not isinstance(hooks, list) or any(entry[0] is _handler_var for entry in hooks)
    ):
        return True
    with _install_lock:
        hooks = getattr(context, "_configure_hooks", None)
        if isinstance(hooks, list) and any(entry[0] is _handler_var for entry in hooks):
            _state["installed"] = True
            return True
        if _state["handler"] is None:
            _state["handler"] = _make_handler()
        context.register_configure_hook(_handler_var, True)
        _state["installed"] = True
    return True


@contextmanager
def activate() -> Iterator[bool]:
    """Inject the handler into every LangChain run started inside this block.

    Yields whether the handler is active: it is when ``langchain_core`` has been imported
    (by the agent's module; a process that merely has LangChain installed pays nothing).
    Cheap enough to wrap each call, but meant to wrap a whole run.
    """
    if "langchain_core" not in sys.modules or not install():
        yield False
        return
    token = _handler_var.set(_state["handler"])
    try:
        yield True
    finally:
        _handler_var.reset(token)


def _message_model(msg: Any) -> str | None:
    meta = getattr(msg, "response_metadata", None)
    if isinstance(meta, dict):
        return model_name(meta.get("model_name")) or model_name(meta.get("model"))
    return None


def _from_generations(obj: Any) -> list[UsageRecord] | None:
    """``LLMResult`` / ``ChatResult``: message usage, else ``llm_output``."""
    gens = get_field(obj, "generations")
    llm_output = get_field(obj, "llm_output")
    llm_model = None
    if isinstance(llm_output, dict):
        llm_model = model_name(llm_output.get("model_name")) or model_name(llm_output.get("model"))
    out: list[UsageRecord] = []
    if isinstance(gens, (list, tuple)):
        for item in gens:
            batch = item if isinstance(item, (list, tuple)) else (item,)
            for gen in batch:
                msg = getattr(gen, "message", None)
                meta = getattr(msg, "usage_metadata", None) if msg is not None else None
                if meta is not None:
                    rec = read_usage_metadata(meta, _message_model(msg) or llm_model)
                    if rec is not None:
                        out.append(rec)
    if out:
        return out
    if isinstance(llm_output, dict):
        for key in ("token_usage", "usage"):
            block = llm_output.get(key)
            if block is not None:
                rec = read_usage_block(block, llm_model)
                if rec is not None:
                    return [rec]
    return None


def _chunk_output(chunk: Any) -> bool | None:
    """A message chunk carries output when it has content or tool call chunks."""
    if hasattr(chunk, "tool_call_chunks") and hasattr(chunk, "content"):
        return bool(chunk.content) or bool(chunk.tool_call_chunks)
    return None


READER = UsageReader(
    metadata=UsageFields(
        input="input_tokens",
        output="output_tokens",
        cached="input_token_details.cache_read",
        cache_write="input_token_details.cache_creation",
        reasoning="output_token_details.reasoning",
    ),
    model=_message_model,
    claims="generations",
    whole=_from_generations,
    chunk_output=_chunk_output,
)
"""Messages' ``usage_metadata``, ``LLMResult`` / ``ChatResult``, and message chunks."""
