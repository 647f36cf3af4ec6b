"""A small OpenAI-compatible server on 127.0.0.1 for tests and examples (optional extra "server").

``OpenAIServer`` serves ``POST /v1/chat/completions`` (plain and SSE streaming, with
``stream_options.include_usage``), ``POST /v1/responses`` (plain and streaming, text only) and
``GET /v1/models`` from a background thread with its own
event loop, so the official ``openai`` client, sync or async, works against it unchanged::

    with OpenAIServer(ttft=0.05, token_rate=200) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)

With ``process=True`` it serves from a child process instead, as a real model server would:
its CPU time and its share of the GIL are then not the test process's, so they neither slow the
load generator nor count as its load.

Token counts are realistic (about four characters a token for the prompt; one word a token
for the reply), latency is configurable, and errors (HTTP 429 / 500) can be injected at a
seeded rate. Nothing is left running after ``stop()`` or the ``with`` block.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from ..errors import UsageError

_TEXT = (
    "The quick brown fox jumps over the lazy dog while the agent plans its next step and "
    "checks the weather before it answers the question with care"
)
_WORDS = tuple(_TEXT.split())

_ERROR_BODIES = {
    429: ("Rate limit reached for requests (simulated).", "rate_limit_exceeded", "requests"),
    500: (
        "The server had an error while processing your request (simulated).",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded (simulated).", "server_error", None),
}


def count_prompt_tokens(messages: Any) -> int:
    """Approximate prompt tokens the way OpenAI bills chat messages: ~4 characters a token
    plus a few tokens of framing per message."""
    total = 3
    if not isinstance(messages, list):
        return total
    for msg in messages:
        total += 4
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            total += math.ceil(len(content) / 4)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += math.ceil(len(part["text"]) / 4)
        name = msg.get("name")
        if isinstance(name, str):
            total += 1
    return total


class OpenAIServer:
    """An OpenAI-compatible chat completions server on 127.0.0.1 with a free port.

    Args:
        model: model name reported in responses (the request's model is echoed when given).
        output_tokens: reply length in tokens (capped by the request's ``max_tokens`` /
            ``max_completion_tokens``).
        ttft: seconds before the first token (streaming) or before generation starts.
        token_rate: output tokens per second after the first; None generates them at once.
        latency: total seconds of a non-streaming response; None means ``ttft`` plus the
            generation time implied by ``token_rate``.
        error_rate: fraction of requests answered with an HTTP error instead (0 to 1).
        error_statuses: statuses to pick from for injected errors (429, 500 or 503).
        seed: seed of the error injection, so a run is reproducible.
        models: ids listed by ``GET /v1/models`` (default: ``[model]``).
        process: serve from a child process rather than a thread of this one.

    ``requests`` and ``errors`` count what the server has handled (with ``process=True``,
    read from the child when asked). The official client retries
    429 / 5xx by default; pass ``max_retries=0`` to see the injected errors.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini",
        output_tokens: int = 16,
        ttft: float = 0.0,
        token_rate: float | None = None,
        latency: float | None = None,
        error_rate: float = 0.0,
        error_statuses: Sequence[int] = (429, 500),
        seed: int = 0,
        models: Sequence[str] | None = None,
        process: bool = False,
    ) -> None:
        if not 0.0 <= error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, got {error_rate!r}")
        bad = [s for s in error_statuses if s not in _ERROR_BODIES]
        if bad or not error_statuses:
            raise ValueError(
                f"error_statuses must be a non-empty subset of (429, 500, 503), got {bad}"
            )
        if output_tokens < 1:
            raise ValueError(f"output_tokens must be at least 1, got {output_tokens!r}")
        if token_rate is not None and token_rate <= 0:
            raise ValueError(f"token_rate must be positive or None, got {token_rate!r}")
        self.model = model
        self.output_tokens = output_tokens
        self.ttft = ttft
        self.token_rate = token_rate
        self.latency = latency
        self.error_rate = error_rate
        self.error_statuses = tuple(error_statuses)
        self.models = list(models) if models is not None else [model]
        self.process = process
        self._seed = seed
        self._requests = 0
        self._errors = 0
        self._child: subprocess.Popen[str] | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Requests handled so far."""
        return self._requests if self._child is None else self._stats()["requests"]

    @property
    def errors(self) -> int:
        """Requests answered with an injected error so far."""
        return self._errors if self._child is None else self._stats()["errors"]

    def _stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{_STATS_PATH}", timeout=10) as r:
            data: dict[str, int] = json.load(r)
        return data

    def _config(self) -> dict[str, Any]:
        """The arguments that rebuild this server in a child process."""
        return {
            "model": self.model,
            "output_tokens": self.output_tokens,
            "ttft": self.ttft,
            "token_rate": self.token_rate,
            "latency": self.latency,
            "error_rate": self.error_rate,
            "error_statuses": list(self.error_statuses),
            "seed": self._seed,
            "models": self.models,
        }

    def _start_child(self) -> OpenAIServer:
        """Serve from a child process; it stops when told to or when its stdin closes (this
        process ended), so none is left behind."""
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(self._config())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        line = child.stdout.readline().strip()  # the port, once bound; nothing if it failed
        if not line.isdigit():
            child.kill()
            child.wait()
            raise UsageError(
                "OpenAIServer(process=True): the server process did not start "
                f"(exit status {child.returncode}); its error is above"
            )
        self._child = child
        self._port = int(line)
        return self

    @property
    def port(self) -> int:
        if self._port is None:
            raise UsageError(
                "OpenAIServer is not started; use it as a context manager or call start()"
            )
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it as the client's ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        """Start serving in a background thread (or child process); returns once the port is
        bound."""
        if self._thread is not None or self._child is not None:
            return self
        try:
            from aiohttp import web
        except ImportError:  # pragma: no cover - depends on the environment
            raise UsageError(
                "OpenAIServer needs aiohttp: pip install 'pytest-agentperf[server]'"
            ) from None
        if self.process:
            return self._start_child()
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        async def boot() -> None:
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/responses", self._responses)
            app.router.add_get("/v1/models", self._list_models)
            app.router.add_get(_STATS_PATH, self._stats_handler)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runner = runner
            self._port = int(runner.addresses[0][1])

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=main, name="agentperf-openai-server", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop = loop
        self._thread = thread
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (or end its process); idempotent."""
        child = self._child
        if child is not None:
            assert child.stdin is not None
            child.stdin.close()  # the child's signal to stop
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
            self._child = None
            self._port = None
            return
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = None
        self._thread = None
        self._runner = None
        self._port = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- handlers ----------------------------------------------------------------------------

    def _injected_error(self, web: Any) -> Any:
        """The error response to send instead of an answer (``error_rate``), or None."""
        status = self._inject_error()
        if status is None:
            return None
        message, kind, param = _ERROR_BODIES[status]
        return _error(web, status, message, kind, param)

    def _model(self, body: dict[str, Any]) -> str:
        """The model the request named, else the server's own."""
        asked = body.get("model")
        return asked if isinstance(asked, str) and asked else self.model

    def _inject_error(self) -> int | None:
        with self._lock:
            self._requests += 1
            if self.error_rate > 0 and self._rng.random() < self.error_rate:
                self._errors += 1
                return self._rng.choice(self.error_statuses)
        return None

    async def _stats_handler(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response({"requests": self._requests, "errors": self._errors})

    async def _list_models(self, request: Any) -> Any:
        from aiohttp import web

        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "agentperf"} for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: Any) -> Any:
        from aiohttp import web

        body = await _json_body(request)
        if body is _NOT_JSON:
            return _error(
                web, 400, "Request body is not valid JSON.", "invalid_request_error", None
            )
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(
                web, 400, "'messages' is a required list.", "invalid_request_error", "messages"
            )
        injected = self._injected_error(web)
        if injected is not None:
            return injected
        model = self._model(body)
        tokens = self._reply(body, ("max_completion_tokens", "max_tokens"))
        n_out = len(tokens)
        usage = _usage(count_prompt_tokens(body["messages"]), n_out)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        if body.get("stream"):
            opts = body.get("stream_options")
            include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
            return await self._stream(request, cid, created, model, tokens, usage, include_usage)
        await asyncio.sleep(self._total_latency(n_out))
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_agentperf",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(tokens),
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )

    def _reply(self, body: dict[str, Any], cap_keys: tuple[str, ...]) -> list[str]:
        n_out = self.output_tokens
        for key in cap_keys:
            cap = body.get(key)
            if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
                n_out = min(n_out, cap)
        tokens = [(_WORDS[i % len(_WORDS)] + " ") for i in range(n_out)]
        tokens[-1] = tokens[-1].rstrip() + "."
        return tokens

    async def _responses(self, request: Any) -> Any:
        from aiohttp import web

        body = await _json_body(request)
        if body is _NOT_JSON:
            return _error(
                web, 400, "Request body is not valid JSON.", "invalid_request_error", None
            )
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, (str, list)):
            return _error(web, 400, "'input' is required.", "invalid_request_error", "input")
        injected = self._injected_error(web)
        if injected is not None:
            return injected
        model = self._model(body)
        tokens = self._reply(body, ("max_output_tokens",))
        n_in = (
            count_prompt_tokens([{"role": "user", "content": items}])
            if isinstance(items, str)
            else count_prompt_tokens(items)
        )
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            n_in += math.ceil(len(instructions) / 4)
        rid = "resp_" + uuid.uuid4().hex[:24]
        mid = "msg_" + uuid.uuid4().hex[:24]
        created = int(time.time())
        text = "".join(tokens)

        def response(done: bool) -> dict[str, Any]:
            output = [
                {
                    "type": "message",
                    "id": mid,
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ]
            return {
                "id": rid,
                "object": "response",
                "created_at": created,
                "status": "completed" if done else "in_progress",
                "model": model,
                "output": output if done else [],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": (
                    {
                        "input_tokens": n_in,
                        "output_tokens": len(tokens),
                        "total_tokens": n_in + len(tokens),
                        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                        "output_tokens_details": {"reasoning_tokens": 0},
                    }
                    if done
                    else None
                ),
            }

        if not body.get("stream"):
            await asyncio.sleep(self._total_latency(len(tokens)))
            return web.json_response(response(True))
        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        seq = itertools.count()

        def event(kind: str, **fields: Any) -> bytes:
            data = {"type": kind, "sequence_number": next(seq), **fields}
            return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()

        part = {"type": "output_text", "text": "", "annotations": []}
        item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant"}
        where = {"item_id": mid, "output_index": 0, "content_index": 0}
        await resp.write(event("response.created", response=response(False)))
        await resp.write(
            event("response.output_item.added", output_index=0, item={**item, "content": []})
        )
        await resp.write(event("response.content_part.added", part=part, **where))
        await asyncio.sleep(self.ttft)
        gap = 0.0 if self.token_rate is None else 1.0 / self.token_rate
        for i, tok in enumerate(tokens):
            if gap and i:
                await asyncio.sleep(gap)
            await resp.write(
                event(
                    "response.output_text.delta",
                    item_id=mid,
                    output_index=0,
                    content_index=0,
                    delta=tok,
                    logprobs=[],
                )
            )
        done_part = {**part, "text": text}
        await resp.write(event("response.output_text.done", text=text, logprobs=[], **where))
        await resp.write(event("response.content_part.done", part=done_part, **where))
        done_item = {**item, "status": "completed", "content": [done_part]}
        await resp.write(event("response.output_item.done", output_index=0, item=done_item))
        await resp.write(event("response.completed", response=response(True)))
        await resp.write_eof()
        return resp

    def _total_latency(self, n_out: int) -> float:
        if self.latency is not None:
            return self.latency
        gen = 0.0 if self.token_rate is None else max(n_out - 1, 0) / self.token_rate
        return self.ttft + gen

    async def _stream(
        self,
        request: Any,
        cid: str,
        created: int,
        model: str,
        tokens: list[str],
        usage: dict[str, Any],
        include_usage: bool,
    ) -> Any:
        from aiohttp import web

        resp = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None, with_usage: bool = False) -> bytes:
            payload: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_agentperf",
                "choices": (
                    []
                    if with_usage
                    else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                ),
            }
            if include_usage:
                payload["usage"] = usage if with_usage else None
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        await asyncio.sleep(self.ttft)
        gap = 0.0 if self.token_rate is None else 1.0 / self.token_rate
        await resp.write(chunk({"role": "assistant", "content": tokens[0]}, None))
        for tok in tokens[1:]:
            if gap:
                await asyncio.sleep(gap)
            await resp.write(chunk({"content": tok}, None))
        await resp.write(chunk({}, "stop"))
        if include_usage:
            await resp.write(chunk({}, None, with_usage=True))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _error(web: Any, status: int, message: str, kind: str, param: str | None) -> Any:
    body = {"error": {"message": message, "type": kind, "param": param, "code": kind}}
    return web.json_response(body, status=status)


_NOT_JSON: Any = object()


async def _json_body(request: Any) -> Any:
    """The request's JSON body, or ``_NOT_JSON`` when it does not parse."""
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


_STATS_PATH = "/_agentperf/stats"
"""Where the server reports its ``requests`` and ``errors`` (read by ``process=True``)."""


def _serve_until_stdin_closes(config: dict[str, Any]) -> None:
    """The child of ``OpenAIServer(process=True)``: serve, print the port, stop at EOF."""
    with OpenAIServer(**config) as server:
        print(server.port, flush=True)
        sys.stdin.read()


_CHILD = (
    "import json, sys\n"
    "from pytest_agentperf.testing.server import _serve_until_stdin_closes\n"
    "_serve_until_stdin_closes(json.loads(sys.argv[1]))\n"
)
"""The child's program: the module's own entry point, run with ``-c`` (``-m`` would import
this module twice, once as ``__main__``, and warn)."""
