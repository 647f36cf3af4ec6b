"""LangChain under load, offline: a chain and a small tool-calling agent with fake chat models.

Nothing is wired: while a run is in progress every LangChain chat model call is counted
(tokens, model, cost) and every tool call is timed, through a callback the plugin injects into
LangChain's configure hook. The agent below returns a plain string, and its usage and tool
metrics still show up in ``result.usage`` and ``result.tools``.

Needs ``pip install 'pytest-agentperf[langchain]'``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

QUESTIONS = ["What's the weather in Paris?", "And in Oslo?", "Should I take an umbrella in Rome?"]
MODEL = {"model_name": "gpt-4o-mini"}  # what ChatOpenAI reports in response_metadata


def usage(inp: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}


class FakeModel(GenericFakeChatModel):
    """LangChain's fake chat model, answering after ``latency`` seconds as a hosted model
    would. The fake alone answers in microseconds: a closed loop of it would keep the test
    process's CPU busy with LangChain's own work (about 2 ms a call), and the plugin would
    rightly warn that the test process, not the model, was the bottleneck."""

    latency: float = 0.05

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(self.latency)
        return self._generate(messages, stop=stop, **kw)


def replies() -> Iterator[AIMessage]:
    """The fake model's answers, forever, each with the usage a real provider would report."""
    for i in itertools.count():
        yield AIMessage(f"Answer {i}.", usage_metadata=usage(42, 18), response_metadata=MODEL)


@pytest.mark.asyncio
# warmup=10: LangChain does first-use work (imports, caches) on its first calls at each level
# of concurrency; one warmup call per worker keeps that out of the measured calls. The model
# answers in 50 ms: the p95 budgets here show the mechanism and are loose enough for a shared
# CI runner, where a stall of a few hundred ms now and then is normal.
@pytest.mark.agent_perf(
    requests=100,
    concurrency=10,
    warmup=10,
    p95="500ms",
    tokens_per_call=60,
    cost_per_call="$0.00005",
)
async def test_chain(agentperf):
    """A prompt | model | parser chain is a Runnable: pass it as is, with its inputs."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a weather assistant."), ("user", "{question}")]
    )
    chain = prompt | FakeModel(messages=replies()) | StrOutputParser()
    result = await agentperf.arun(chain, [{"question": q} for q in QUESTIONS])
    # the chain returns a string; the tokens were counted by the injected callback
    assert result.usage.per_call.total_tokens == 60
    assert list(result.usage.by_model) == ["gpt-4o-mini"]
    assert result.cost.per_call == pytest.approx(42 * 0.15e-6 + 18 * 0.6e-6)


@tool
async def get_weather(city: str) -> str:
    """Current weather in a city."""
    await asyncio.sleep(0.002)  # a real tool would call an API
    return f"Rain in {city}, 14°C."


@tool
async def get_forecast(city: str) -> str:
    """Tomorrow's forecast in a city (this one is down)."""
    raise ConnectionError(f"forecast service unavailable for {city}")


TOOLS = {t.name: t for t in (get_weather, get_forecast)}


def script(city: str) -> Iterator[AIMessage]:
    """What the fake model answers in one conversation: ask for tools, then answer."""
    yield AIMessage(
        "",
        tool_calls=[
            {"name": "get_weather", "args": {"city": city}, "id": "call_1"},
            {"name": "get_forecast", "args": {"city": city}, "id": "call_2"},
        ],
        usage_metadata=usage(120, 25),
        response_metadata=MODEL,
    )
    yield AIMessage(
        f"It is raining in {city}: take an umbrella.",
        usage_metadata=usage(180, 15),
        response_metadata=MODEL,
    )


async def weather_agent(question: str) -> str:
    """A minimal tool-calling loop: call the model, run the tools it asks for, repeat."""
    city = question.split(" in ")[-1].rstrip("?")
    model = FakeModel(messages=script(city))
    messages: list[BaseMessage] = [SystemMessage("Use the tools."), HumanMessage(question)]
    for _ in range(4):
        reply = await model.ainvoke(messages)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            return str(reply.content)
        for call in reply.tool_calls:
            try:
                output = await TOOLS[call["name"]].ainvoke(call["args"])
            except ConnectionError as exc:
                output = f"tool failed: {exc}"
            messages.append(ToolMessage(str(output), tool_call_id=call["id"] or ""))
    raise RuntimeError("the agent did not finish")


@pytest.mark.asyncio
@pytest.mark.agent_perf(
    requests=60, concurrency=12, warmup=12, p95="1s", tokens_per_call=400, error_rate=0
)
async def test_tool_calling_agent(agentperf):
    """Two model calls and two tool calls per question, all attributed to the right call."""
    result = await agentperf.arun(weather_agent, QUESTIONS)
    assert result.usage.per_call.input_tokens == 120 + 180
    assert result.usage.per_call.output_tokens == 25 + 15
    assert result.usage.by_model["gpt-4o-mini"].calls == 2 * result.requests
    weather, forecast = result.tools["get_weather"], result.tools["get_forecast"]
    assert weather.calls == forecast.calls == result.requests
    assert weather.errors == 0 and forecast.errors == result.requests
    assert weather.total_time >= 0.002 * result.requests
