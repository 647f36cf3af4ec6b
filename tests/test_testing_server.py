"""The OpenAI-compatible test server, driven by the official openai client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import openai
import pytest

from pytest_agentperf.errors import UsageError
from pytest_agentperf.testing import OpenAIServer, count_prompt_tokens
from pytest_agentperf.usage import combine_records, extract_usage

pytest_plugins = ["pytester"]

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(model="gpt-4o-mini", output_tokens=12) as srv:
        yield srv


def client(srv: OpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0)


def test_base_url_and_port(server: OpenAIServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    assert server.port > 0


def test_sync_plain_completion_with_usage(server: OpenAIServer) -> None:
    with client(server) as c:
        resp = c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert resp.choices[0].message.content
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-4o-mini"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == count_prompt_tokens(MESSAGES)
    assert resp.usage.completion_tokens == 12
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 12
    assert extract_usage(resp) is not None


def test_prompt_tokens_grow_with_the_prompt(server: OpenAIServer) -> None:
    with client(server) as c:
        short = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        long = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hello " * 400}]
        )
    assert short.usage is not None and long.usage is not None
    assert long.usage.prompt_tokens - short.usage.prompt_tokens >= 550


def test_max_tokens_caps_the_reply(server: OpenAIServer) -> None:
    with client(server) as c:
        resp = c.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3)  # type: ignore[arg-type]
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    assert len((resp.choices[0].message.content or "").split()) == 3


def test_sync_streaming_with_include_usage(server: OpenAIServer) -> None:
    with client(server) as c:
        stream = c.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert len(text.split()) == 12
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(ch.usage is None for ch in chunks[:-1])
    records = combine_records(r for ch in chunks for r in (extract_usage(ch) or []))
    assert [(r.output_tokens, r.model) for r in records] == [(12, "gpt-4o-mini")]


def test_streaming_without_include_usage_has_no_usage(server: OpenAIServer) -> None:
    with client(server) as c:
        chunks = list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert chunks and all(ch.usage is None for ch in chunks)
    assert all(extract_usage(ch) is None for ch in chunks)


def test_models_endpoint(server: OpenAIServer) -> None:
    with client(server) as c:
        ids = [m.id for m in c.models.list()]
    assert ids == ["gpt-4o-mini"]


@pytest.mark.asyncio
async def test_async_client_plain_and_streaming_concurrently(server: OpenAIServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="t", max_retries=0) as ac:

        async def plain() -> int:
            r = await ac.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
            assert r.usage is not None
            return r.usage.completion_tokens

        async def streamed() -> int:
            s = await ac.chat.completions.create(
                model="m",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = [ch.usage async for ch in s if ch.usage is not None]
            return usage[0].completion_tokens

        results = await asyncio.gather(
            *[plain() for _ in range(10)], *[streamed() for _ in range(10)]
        )
    assert results == [12] * 20


def test_ttft_and_token_rate_shape_the_stream() -> None:
    with (
        OpenAIServer(ttft=0.2, token_rate=50, output_tokens=11) as srv,
        client(srv) as c,
    ):
        t0 = time.perf_counter()
        stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        arrivals = [
            time.perf_counter() - t0 for ch in stream if ch.choices and ch.choices[0].delta.content
        ]
    assert len(arrivals) == 11
    assert arrivals[0] >= 0.2  # no token before the configured ttft
    assert arrivals[-1] - arrivals[0] >= 10 / 50 * 0.9  # ten gaps of 20 ms


def test_latency_of_plain_responses() -> None:
    with OpenAIServer(latency=0.25) as srv, client(srv) as c:
        t0 = time.perf_counter()
        c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert time.perf_counter() - t0 >= 0.25


def test_error_injection_is_seeded_and_uses_the_real_error_types() -> None:
    def outcomes(seed: int) -> list[str]:
        out = []
        with (
            OpenAIServer(error_rate=0.5, error_statuses=(429, 500), seed=seed) as srv,
            client(srv) as c,
        ):
            for _ in range(40):
                try:
                    c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
                    out.append("ok")
                except openai.RateLimitError:
                    out.append("429")
                except openai.InternalServerError:
                    out.append("500")
            assert srv.requests == 40
            assert srv.errors == out.count("429") + out.count("500")
        return out

    first, again, other = outcomes(7), outcomes(7), outcomes(8)
    assert first == again
    assert first != other
    assert {"ok", "429", "500"} <= set(first)


def test_every_request_fails_at_rate_one() -> None:
    with (
        OpenAIServer(error_rate=1.0, error_statuses=(429,)) as srv,
        client(srv) as c,
        pytest.raises(openai.RateLimitError, match="Rate limit"),
    ):
        c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]


def test_bad_request_is_a_400(server: OpenAIServer) -> None:
    with client(server) as c, pytest.raises(openai.BadRequestError):
        c.post("/chat/completions", body={"model": "m"}, cast_to=object)


def test_nothing_left_running_after_stop() -> None:
    before = set(threading.enumerate())
    srv = OpenAIServer()
    with srv:
        with client(srv) as c:
            c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        url = srv.base_url
    assert set(threading.enumerate()) <= before
    _assert_stopped(srv, url)


def _assert_stopped(srv: OpenAIServer, url: str) -> None:
    """``srv`` no longer serves at ``url``, knows it is not started, and stops again quietly."""
    with pytest.raises(UsageError, match="not started"):
        _ = srv.base_url
    with (
        openai.OpenAI(base_url=url, api_key="t", max_retries=0, timeout=2) as c,
        pytest.raises(openai.APIConnectionError),
    ):
        c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    srv.stop()  # idempotent


def test_stop_while_a_stream_is_in_flight_does_not_hang() -> None:
    srv = OpenAIServer(token_rate=5, output_tokens=100).start()
    c = client(srv)
    stream = c.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    next(iter(stream))
    t0 = time.perf_counter()
    srv.stop()
    assert time.perf_counter() - t0 < 5
    with pytest.raises(Exception):  # noqa: B017 - the connection is cut, how depends on httpx
        list(stream)
    c.close()


def test_a_server_in_its_own_process_answers_counts_and_stops() -> None:
    """``process=True``: the same server, served by a child process (no thread of ours), with
    the seeded errors of the in-thread one and its counters read from the child."""

    def outcomes(process: bool) -> tuple[list[str], int, int]:
        out = []
        before = set(threading.enumerate())
        with (
            OpenAIServer(output_tokens=5, error_rate=0.3, seed=3, process=process) as srv,
            client(srv) as c,
        ):
            started = set(threading.enumerate()) - before
            assert any(t.name == "agentperf-openai-server" for t in started) is not process
            for _ in range(20):
                try:
                    resp = c.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
                    assert resp.usage is not None and resp.usage.completion_tokens == 5
                    out.append("ok")
                except openai.APIStatusError as exc:
                    out.append(str(exc.status_code))
            try:
                stream = c.chat.completions.create(
                    model="m",
                    messages=MESSAGES,  # type: ignore[arg-type]
                    stream=True,
                    stream_options={"include_usage": True},
                )
                out.append(f"stream {len(list(stream))}")
            except openai.APIStatusError as exc:
                out.append(str(exc.status_code))
            requests, errors = srv.requests, srv.errors
            url = srv.base_url
        _assert_stopped(srv, url)
        return out, requests, errors

    in_thread, in_process = outcomes(False), outcomes(True)
    assert in_process == in_thread
    out, requests, errors = in_process
    assert requests == 21 and errors == sum(1 for o in out if o.isdigit()) > 0


def test_a_server_process_that_does_not_start_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.executable", "false")  # exits at once, printing no port
    with pytest.raises(UsageError, match="the server process did not start"):
        OpenAIServer(process=True).start()


@pytest.mark.parametrize(
    "kwargs",
    [{"error_rate": 2.0}, {"error_statuses": (404,)}, {"output_tokens": 0}, {"token_rate": 0}],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OpenAIServer(**kwargs)  # type: ignore[arg-type]


def test_responses_api_plain_and_streaming(server: OpenAIServer) -> None:
    with client(server) as c:
        resp = c.responses.create(model="gpt-5-mini", input="Say hi.", instructions="Be brief.")
        assert len(resp.output_text.split()) == 12
        assert resp.usage is not None and resp.usage.output_tokens == 12
        events = list(c.responses.create(model="gpt-5-mini", input="Say hi.", stream=True))
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert "".join(deltas) == resp.output_text
        with c.responses.stream(model="gpt-5-mini", input="Say hi.", max_output_tokens=4) as st:
            final = st.get_final_response()
        assert len(final.output_text.split()) == 4
    assert extract_usage(events[-1]) is not None


SERVER_TESTS = """
import json
import time
import urllib.error
import urllib.request

import pytest


def ask(base_url):
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    req = urllib.request.Request(
        base_url + "/chat/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


pytestmark = pytest.mark.agentperf_openai_server(output_tokens=3)


@pytest.mark.agentperf_openai_server(error_rate=1.0, error_statuses=(503,))
def test_marker_options(agentperf_openai_server):
    with pytest.raises(urllib.error.HTTPError) as info:
        ask(agentperf_openai_server.base_url)
    assert info.value.code == 503


def test_module_marker(agentperf_openai_server):
    assert ask(agentperf_openai_server.base_url)["usage"]["completion_tokens"] == 3


def test_factory(agentperf_openai_server_factory):
    slow = agentperf_openai_server_factory(latency=0.3)
    fast = agentperf_openai_server_factory()
    t0 = time.perf_counter()
    ask(slow.base_url)
    assert time.perf_counter() - t0 >= 0.3
    ask(fast.base_url)
    assert slow.requests == 1 and fast.requests == 1
    pytest.servers = [slow, fast]


def test_factory_servers_were_stopped():
    from pytest_agentperf.errors import UsageError

    for server in pytest.servers:
        with pytest.raises(UsageError, match="not started"):
            server.base_url
"""


def test_the_fixture_takes_its_options_from_a_marker_and_a_factory_makes_more(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("aiohttp")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_server=SERVER_TESTS)
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=4)
