"""LangChain with no wiring: the configure-hook callback records usage and tool calls."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    LLMResult,
)
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from pytest_agentperf.integrations.langchain import activate, available, install
from pytest_agentperf.usage import CURRENT_SCOPE, CallScope, UsageRecord, extract_usage


def reply(n: int = 0, model: str = "gpt-4o-mini") -> AIMessage:
    return AIMessage(
        content=f"answer {n}",
        usage_metadata={"input_tokens": 10 + n, "output_tokens": 5, "total_tokens": 15 + n},
        response_metadata={"model_name": model},
    )


def fake_model(n: int = 1000) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([reply(i) for i in range(n)]))


class StreamingUsageModel(BaseChatModel):
    """A chat model that streams its reply and reports usage in the last chunk (stream_usage)."""

    words: tuple[str, ...] = ("one", "two", "three")
    model: str = "claude-haiku-4-5"

    @property
    def _llm_type(self) -> str:
        return "streaming-usage-fake"

    def _chunks(self) -> Iterator[ChatGenerationChunk]:
        for w in self.words:
            yield ChatGenerationChunk(message=AIMessageChunk(content=w + " "))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
                response_metadata={"model": self.model},
            )
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        msg = AIMessage(
            content=" ".join(self.words),
            usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
            response_metadata={"model": self.model},
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from self._chunks()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in self._chunks():
            await asyncio.sleep(0)
            yield chunk


class TokenUsageLLM(BaseLLM):
    """A completion LLM that reports usage only in ``llm_output['token_usage']``."""

    @property
    def _llm_type(self) -> str:
        return "token-usage-fake"

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        return LLMResult(
            generations=[[Generation(text="done")] for _ in prompts],
            llm_output={
                "token_usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
                "model_name": "gpt-3.5-turbo-instruct",
            },
        )


def in_scope(fn: Any, *args: Any) -> tuple[CallScope, Any]:
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        return scope, fn(*args)
    finally:
        CURRENT_SCOPE.reset(token)


async def in_scope_async(coro_fn: Any, *args: Any) -> tuple[CallScope, Any]:
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        return scope, await coro_fn(*args)
    finally:
        CURRENT_SCOPE.reset(token)


def engine_usage(scope: CallScope, result: Any) -> list[UsageRecord]:
    """The engine's rule: recorded usage wins, else read the return value."""
    return scope.records or extract_usage(result) or []


def test_available_and_install_are_idempotent() -> None:
    assert available()
    assert install() and install()


def test_chat_model_invoke_is_recorded() -> None:
    model = fake_model()
    with activate() as on:
        assert on
        scope, result = in_scope(model.invoke, "hi")
    assert scope.records == [UsageRecord(10, 5, "gpt-4o-mini")]
    (record,) = scope.records  # timed from the model's start to its end, not streamed
    assert record.start is not None and record.end is not None and record.start <= record.end
    assert record.ttft is None
    # the call also returns the message: counted once, not twice
    assert engine_usage(scope, result) == [UsageRecord(10, 5, "gpt-4o-mini")]


def test_nothing_recorded_outside_activate_or_outside_a_call() -> None:
    model = fake_model()
    scope, _ = in_scope(model.invoke, "hi")
    assert scope.records == []
    with activate():
        model.invoke("hi")  # no CallScope: nothing to record into, and no error
        scope, _ = in_scope(model.invoke, "hi")
    assert len(scope.records) == 1


def test_chain_returning_a_string_still_reports_every_model_call() -> None:
    prompt = ChatPromptTemplate.from_messages([("user", "{q}")])
    model = fake_model()
    chain = prompt | model | StrOutputParser()
    two_step = chain | (lambda text: {"q": text}) | chain
    with activate():
        scope, result = in_scope(two_step.invoke, {"q": "hello"})
    assert isinstance(result, str)
    assert extract_usage(result) is None
    assert [r.input_tokens for r in scope.records] == [10, 11]


def test_streaming_usage_is_recorded_once() -> None:
    model = StreamingUsageModel()
    with activate():
        scope, chunks = in_scope(lambda: list(model.stream("hi")))
    assert "".join(str(c.content) for c in chunks).split() == ["one", "two", "three"]
    assert scope.records == [UsageRecord(7, 3, "claude-haiku-4-5")]
    (record,) = scope.records  # a stream: its first token's delay too
    assert record.start is not None and record.end is not None and record.ttft is not None
    assert 0 <= record.ttft <= record.end - record.start


@pytest.mark.asyncio
async def test_async_invoke_and_astream() -> None:
    model = StreamingUsageModel()

    async def astream() -> list[Any]:
        return [c async for c in model.astream("hi")]

    with activate():
        s1, _ = await in_scope_async(model.ainvoke, "hi")
        s2, _ = await in_scope_async(astream)
    assert s1.records == [UsageRecord(7, 3, "claude-haiku-4-5")]
    assert s2.records == [UsageRecord(7, 3, "claude-haiku-4-5")]


def test_completion_llm_usage_from_llm_output() -> None:
    llm = TokenUsageLLM()
    with activate():
        scope, _ = in_scope(llm.invoke, "hi")
    assert scope.records == [UsageRecord(4, 2, "gpt-3.5-turbo-instruct")]


def test_model_without_usage_records_nothing() -> None:
    model = FakeListChatModel(responses=["a"])
    with activate():
        scope, result = in_scope(model.invoke, "hi")
    assert scope.records == [] and engine_usage(scope, result) == []


@tool
def get_weather(city: str) -> str:
    """Weather of a city."""
    return f"sunny in {city}"


@tool
def flaky_lookup(key: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no such key {key}")


def agent_loop(model: GenericFakeChatModel) -> str:
    """A small tool-calling loop: the model asks for tools until it answers."""
    tools = {t.name: t for t in (get_weather, flaky_lookup)}
    messages: list[BaseMessage] = [HumanMessage("weather in Paris and key x?")]
    for _ in range(5):
        ai = model.invoke(messages)
        messages.append(ai)
        if not isinstance(ai, AIMessage) or not ai.tool_calls:
            return str(ai.content)
        for call in ai.tool_calls:
            try:
                out = tools[call["name"]].invoke(call["args"])
            except ValueError as exc:
                out = f"error: {exc}"
            messages.append(ToolMessage(content=str(out), tool_call_id=call["id"] or ""))
    raise AssertionError("agent did not finish")


def tool_script() -> Iterator[AIMessage]:
    usage = {"input_tokens": 20, "output_tokens": 8, "total_tokens": 28}
    meta = {"model_name": "gpt-4.1-mini"}
    for _ in itertools.count():
        yield AIMessage(
            content="",
            tool_calls=[
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"},
                {"name": "flaky_lookup", "args": {"key": "x"}, "id": "c2"},
            ],
            usage_metadata=usage,  # type: ignore[arg-type]
            response_metadata=meta,
        )
        yield AIMessage(content="Sunny.", usage_metadata=usage, response_metadata=meta)  # type: ignore[arg-type]


def test_tool_calls_are_recorded_with_time_and_errors() -> None:
    model = GenericFakeChatModel(messages=tool_script())
    with activate():
        scope, answer = in_scope(agent_loop, model)
    assert answer == "Sunny."
    assert len(scope.records) == 2
    names = [(name, ok) for name, _, ok, _ in scope.tools]
    assert names == [("get_weather", True), ("flaky_lookup", False)]
    assert all(seconds >= 0 for _, seconds, _, _ in scope.tools)


@pytest.mark.asyncio
async def test_attribution_under_concurrency_with_async_models() -> None:
    model = StreamingUsageModel()
    scopes = [CallScope() for _ in range(100)]

    async def call(i: int) -> None:
        token = CURRENT_SCOPE.set(scopes[i])
        try:
            await model.ainvoke(f"q{i}")
            await asyncio.gather(model.ainvoke("a"), asyncio.to_thread(model.invoke, "b"))
        finally:
            CURRENT_SCOPE.reset(token)

    with activate():
        await asyncio.gather(*(call(i) for i in range(100)))
    assert all(len(s.records) == 3 for s in scopes)


def test_attribution_in_worker_threads() -> None:
    model = fake_model(10_000)

    def call(ctx: contextvars.Context) -> CallScope:
        scope = CallScope()
        ctx.run(CURRENT_SCOPE.set, scope)
        ctx.run(model.invoke, "hi")
        ctx.run(model.batch, ["a", "b"])
        return scope

    with activate():
        contexts = [contextvars.copy_context() for _ in range(40)]
    with ThreadPoolExecutor(8) as pool:
        scopes = list(pool.map(call, contexts))
    assert [len(s.records) for s in scopes] == [3] * 40
