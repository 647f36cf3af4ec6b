"""instrument(client): usage of every call an OpenAI client makes, deep inside an agent."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import openai
import pytest

from pytest_agentperf.integrations.openai import instrument
from pytest_agentperf.testing import OpenAIServer
from pytest_agentperf.usage import CURRENT_SCOPE, CallScope, UsageRecord

MESSAGES = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="gpt-4o-mini", output_tokens=6) as srv:
        yield srv


def sync_client(srv: OpenAIServer) -> openai.OpenAI:
    return instrument(openai.OpenAI(base_url=srv.base_url, api_key="t", max_retries=0))


def async_client(srv: OpenAIServer) -> openai.AsyncOpenAI:
    return instrument(openai.AsyncOpenAI(base_url=srv.base_url, api_key="t", max_retries=0))


def scoped(fn):  # type: ignore[no-untyped-def]
    scope = CallScope()
    token = CURRENT_SCOPE.set(scope)
    try:
        fn()
    finally:
        CURRENT_SCOPE.reset(token)
    return scope


def test_sync_plain_calls_are_recorded(server: OpenAIServer) -> None:
    with sync_client(server) as c:

        def agent() -> None:
            for _ in range(3):
                c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
            c.responses.create(model="gpt-5-mini", input="hi")

        scope = scoped(agent)
    assert [(r.model, r.output_tokens) for r in scope.records] == [
        ("gpt-4o-mini", 6),
        ("gpt-4o-mini", 6),
        ("gpt-4o-mini", 6),
        ("gpt-5-mini", 6),
    ]
    assert all(r.input_tokens > 0 for r in scope.records)
    # each request is timed, one after the other, and says who served it
    assert all(r.provider == "openai" and r.ttft is None for r in scope.records)
    times = [(r.start, r.end) for r in scope.records]
    assert all(s is not None and e is not None and s <= e for s, e in times)
    assert all(e0 <= s1 for (_, e0), (s1, _) in itertools.pairwise(times))  # type: ignore[operator]


def test_sync_stream_recorded_once_when_it_ends(server: OpenAIServer) -> None:
    with sync_client(server) as c:
        seen: list[str] = []

        def agent() -> None:
            stream = c.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    seen.append(chunk.choices[0].delta.content)
            with c.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            ) as s2:
                for _ in s2:
                    pass
            for _ in c.responses.create(model="gpt-5-mini", input="hi", stream=True):
                pass

        scope = scoped(agent)
    assert len(seen) == 6
    assert [(r.model, r.output_tokens) for r in scope.records] == [
        ("gpt-4o-mini", 6),
        ("gpt-4o-mini", 6),
        ("gpt-5-mini", 6),
    ]
    # a stream is timed from the request to its last chunk, with its first chunk's delay
    for r in scope.records:
        assert r.start is not None and r.end is not None and r.ttft is not None
        assert 0 <= r.ttft <= r.end - r.start


def test_stream_without_include_usage_records_nothing(server: OpenAIServer) -> None:
    with sync_client(server) as c:
        scope = scoped(
            lambda: list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
        )
    assert scope.records == []


def test_outside_a_call_nothing_is_recorded_and_results_are_untouched(
    server: OpenAIServer,
) -> None:
    with sync_client(server) as c:
        resp = c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert isinstance(stream, openai.Stream)  # no proxy outside a measured call
        list(stream)
    assert isinstance(resp, openai.types.chat.ChatCompletion)


def test_instrument_is_idempotent_and_rejects_other_objects(server: OpenAIServer) -> None:
    c = sync_client(server)
    assert instrument(c) is c
    scope = scoped(lambda: c.chat.completions.create(model="m", messages=MESSAGES))  # type: ignore[arg-type]
    assert len(scope.records) == 1  # wrapped once, recorded once
    c.close()
    with pytest.raises(TypeError, match=r"openai\.OpenAI or openai\.AsyncOpenAI"):
        instrument(object())


@pytest.mark.asyncio
async def test_async_client_plain_and_streaming_at_concurrency(server: OpenAIServer) -> None:
    c = async_client(server)
    scopes = [CallScope() for _ in range(50)]

    async def agent(i: int) -> None:
        token = CURRENT_SCOPE.set(scopes[i])
        try:
            await c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
            stream = await c.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in stream:
                pass
            async with await c.responses.create(model="gpt-5", input="x", stream=True) as events:
                async for _ in events:
                    pass
            await asyncio.gather(
                c.responses.create(model="gpt-5-nano", input="y"),
                asyncio.create_task(c.chat.completions.create(model="o3", messages=MESSAGES)),  # type: ignore[arg-type]
            )
        finally:
            CURRENT_SCOPE.reset(token)

    await asyncio.gather(*(agent(i) for i in range(50)))
    await c.close()
    for scope in scopes:
        assert sorted(r.model or "" for r in scope.records) == sorted(
            ["gpt-4o-mini", "gpt-4o", "gpt-5", "gpt-5-nano", "o3"]
        )
        assert all(r == UsageRecord(r.input_tokens, 6, r.model) for r in scope.records)
