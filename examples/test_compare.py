"""A/B comparisons in one run: two models, a chain with and without a cache, two prompts.

``agentperf.compare`` runs every arm under the same load, their calls interleaved in
randomized blocks, so a slow minute of the machine slows every arm alike instead of faking a
difference. Each arm gets a full result (latency, tokens, cost, tools) and a row in the table
with its ratio and verdict against the first arm, the reference.

Run with ``make demo``, or ``pytest examples/test_compare.py``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_agentperf.sim import SimulatedAgent

QUESTIONS = [
    "What is the capital of France?",
    "Summarise this ticket in one line.",
    "Write a haiku about latency.",
]


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=150, concurrency=10)
async def test_a_cheaper_model_is_as_fast(agentperf):
    """Is the cheaper model as fast, and how much cheaper? (gpt-4o-mini answers a little
    faster here and costs about 16 times less per token.)"""
    big = SimulatedAgent(median="30ms", spread=0.3, model="gpt-4o", seed=1)
    mini = SimulatedAgent(median="25ms", spread=0.3, model="gpt-4o-mini", seed=2)
    result = await agentperf.acompare(
        {"gpt-4o": big, "gpt-4o-mini": mini},
        QUESTIONS,
        name="models",
        max_slowdown="10%",  # fail if the cheaper model is more than 10 % slower, beyond doubt
    )
    cost = result.ratio("cost_per_call", "gpt-4o-mini")
    assert cost.verdict == "better" and cost.estimate < 0.1
    assert result.ratio("p50", "gpt-4o-mini").verdict != "worse"


pytest.importorskip("langchain_core")

from langchain_core.caches import InMemoryCache  # noqa: E402
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.prompts import ChatPromptTemplate  # noqa: E402

MODEL = {"model_name": "gpt-4o-mini"}


def replies() -> Iterator[AIMessage]:
    usage = {"input_tokens": 42, "output_tokens": 18, "total_tokens": 60}
    for i in itertools.count():
        yield AIMessage(f"Answer {i}.", usage_metadata=usage, response_metadata=MODEL)


class SlowFakeChatModel(GenericFakeChatModel):
    """A fake chat model that takes 20 ms to answer, like a (very fast) provider."""

    delay: float = 0.02

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any):
        await asyncio.sleep(self.delay)
        return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kw)


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=60, concurrency=4, warmup=4)
async def test_a_chain_with_and_without_a_cache(agentperf):
    """The same chain with an in-memory LLM cache: repeated questions skip the model."""
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    plain = prompt | SlowFakeChatModel(messages=replies()) | StrOutputParser()
    cached = prompt | SlowFakeChatModel(messages=replies(), cache=InMemoryCache())
    cached = cached | StrOutputParser()
    result = await agentperf.acompare(
        {"no cache": plain, "cache": cached},
        [{"question": q} for q in QUESTIONS],
        name="cache",
    )
    assert result.ratio("p50", "cache").verdict == "better"
    # LangChain reports a cached answer with the usage of the call that filled the cache
    assert result.arms["no cache"].usage.per_call.total_tokens == 60


LONG_SYSTEM = "You are a careful assistant. " * 40  # a long system prompt, sent every call


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=60, concurrency=6)
async def test_two_prompts_by_tokens_and_cost(agentperf):
    """A long and a short system prompt on the same model: the tokens and the bill differ,
    the latency does not (this simulated model does not slow down with the prompt)."""
    model = SimulatedAgent(median="20ms", spread=0.3, model="gpt-4o-mini", seed=3)

    async def long_prompt(question: str) -> Any:
        return await model(LONG_SYSTEM + question)

    async def short_prompt(question: str) -> Any:
        return await model("Be brief. " + question)

    result = await agentperf.acompare(
        {"long prompt": long_prompt, "short prompt": short_prompt},
        QUESTIONS,
        name="prompts",
        max_cost_increase="0%",  # the short prompt must not cost more, beyond doubt
    )
    tokens = result.ratio("tokens_per_call", "short prompt")
    assert tokens.verdict == "better"
    assert result.ratio("cost_per_call", "short prompt").verdict == "better"
