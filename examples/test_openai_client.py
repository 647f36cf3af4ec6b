"""The official ``openai`` client under load, offline, against the plugin's local server.

``OpenAIServer`` is a small OpenAI-compatible server on 127.0.0.1 (chat completions, plain and
streaming, with realistic token counts), so these tests exercise the real client: its HTTP
connection pool, JSON parsing and SSE streaming. Point ``base_url`` at a real endpoint and the
same tests measure it.

Needs ``pip install 'pytest-agentperf[openai,server]'``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("aiohttp")

from pytest_agentperf import instrument_openai  # noqa: E402
from pytest_agentperf.testing import OpenAIServer  # noqa: E402

QUESTIONS = ["What is the capital of France?", "Summarise: the build is red.", "Say hi."]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    """A model that starts answering after 20 ms and writes 400 tokens a second, served from
    a process of its own (``process=True``) as a real model server is: its work is not the
    test process's, so it neither slows the load generator nor counts as its load."""
    with OpenAIServer(
        model="gpt-4o-mini", output_tokens=24, ttft=0.02, token_rate=400, process=True
    ) as srv:
        yield srv


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]


@pytest.mark.asyncio
@pytest.mark.agent_perf(
    requests=100, concurrency=4, warmup=4, p95="1s", tokens_per_call=60, cost_per_call="$0.0001"
)
async def test_async_client(agentperf, server):
    """Return the client's response: its usage (tokens, model) is read from it."""
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0
    ) as client:

        async def ask(question: str):
            return await client.chat.completions.create(
                model="gpt-4o-mini", messages=messages(question)
            )

        result = await agentperf.arun(ask, QUESTIONS)
    assert result.usage.per_call.output_tokens == 24
    assert result.cost.per_call is not None


@pytest.mark.asyncio
# concurrency=2: the official client parses each streamed chunk into an object, about half a
# millisecond of CPU a chunk here, and this server writes 400 chunks a second per stream; at
# 10 streams in flight the test process would be the bottleneck (the plugin warns when it is).
# warmup: one call per worker, so the client's first-use work is not measured
@pytest.mark.agent_perf(requests=60, concurrency=2, warmup=2, ttft_p95="500ms", itl_p95="200ms")
async def test_async_streaming(agentperf, server):
    """Return the stream: each chunk is timed (time to first token, gaps between tokens), and
    the usage comes from the last chunk, sent because of ``include_usage``."""
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="test", max_retries=0
    ) as client:

        async def ask(question: str):
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages(question),
                stream=True,
                stream_options={"include_usage": True},
            )

        result = await agentperf.arun(ask, QUESTIONS)
    assert result.ttft.p50 < result.latency.p50
    assert result.usage.per_call.output_tokens == 24


@pytest.mark.agent_perf(requests=60, concurrency=8, p95="1s", error_rate=0)
def test_sync_client_on_threads(agentperf, server):
    """A blocking client runs on the plugin's threads, one per call in flight."""
    with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as client:

        def ask(question: str):
            return client.chat.completions.create(model="gpt-4o-mini", messages=messages(question))

        result = agentperf.run(ask, QUESTIONS)
    assert result.usage.known


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=30, concurrency=2, warmup=2, tokens_per_call=150)
async def test_agent_that_hides_its_llm_calls(agentperf, server):
    """An agent that calls the model twice and returns only text: ``instrument_openai(client)``
    records every call the client makes, wherever it is made."""
    client = instrument_openai(
        openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    )

    async def plan_then_answer(question: str) -> str:
        plan = await client.chat.completions.create(
            model="gpt-4o-mini", messages=messages(f"Plan: {question}")
        )
        answer = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                *messages(question),
                {"role": "assistant", "content": plan.choices[0].message.content or ""},
            ],
        )
        return answer.choices[0].message.content or ""

    result = await agentperf.arun(plan_then_answer, QUESTIONS)
    await client.close()
    assert result.usage.by_model["gpt-4o-mini"].calls == 2 * result.requests
    assert result.usage.per_call.output_tokens == 2 * 24


@pytest.mark.agent_perf(requests=30, concurrency=5, error_rate=0)
def test_with_the_fixture(agentperf, agentperf_openai_server):
    """``agentperf_openai_server`` is a started server with default settings."""
    with openai.OpenAI(base_url=agentperf_openai_server.base_url, api_key="t", max_retries=0) as c:
        result = agentperf.run(
            lambda q: c.chat.completions.create(model="gpt-4.1-nano", messages=messages(q)),
            QUESTIONS,
        )
    assert list(result.usage.by_model) == ["gpt-4.1-nano"]
