"""A simulated LLM agent: realistic latency, tokens, errors, timeouts and streaming, no network.

It is what the demo and the examples run out of the box. Latency is lognormal (the usual shape
of LLM response times: a floor, a body, and a long right tail), token counts vary per call, and
errors and hangs are injected at the rates you ask for.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..units import Unit, parse


class SimulatedError(Exception):
    """An injected failure, like a provider's 429 or 500."""


class SimulatedAgent:
    """A fake LLM agent; ``await agent(prompt)`` or ``agent.call_sync(prompt)``.

    Replies are OpenAI-shaped dicts with ``usage`` and ``model``, so token use and cost are read
    from them like from a real client. ``stream(prompt)`` / ``stream_sync(prompt)`` yield chunks;
    the last chunk carries usage.
    """

    def __init__(
        self,
        *,
        median: float | str = "200ms",
        spread: float = 0.4,
        error_rate: float | str = 0.0,
        timeout_rate: float | str = 0.0,
        hang: float | str = "1h",
        output_tokens: int = 120,
        ttft: float | str = "150ms",
        tokens_per_second: float = 80.0,
        model: str = "gpt-4o-mini",
        seed: int = 0,
    ) -> None:
        self.median = parse(median, Unit.SECONDS, key="median")
        if spread < 0:
            raise ValueError("spread must be >= 0 (the sigma of the lognormal)")
        self.spread = spread
        self.error_rate = parse(error_rate, Unit.FRACTION, key="error_rate")
        self.timeout_rate = parse(timeout_rate, Unit.FRACTION, key="timeout_rate")
        self.hang = parse(hang, Unit.SECONDS, key="hang")
        self.output_tokens = output_tokens
        self.ttft = parse(ttft, Unit.SECONDS, key="ttft")
        self.tokens_per_second = tokens_per_second
        self.model = model
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0

    def _draw(self, prompt: Any) -> tuple[str, float, int, int]:
        """Decide the outcome of one call: ("ok" | "error" | "hang", seconds, tokens in, out)."""
        with self._lock:
            self.calls += 1
            u = self._rng.random()
            seconds = self.median * math.exp(self.spread * self._rng.gauss(0.0, 1.0))
            out = max(1, round(self.output_tokens * self._rng.uniform(0.5, 1.5)))
        inp = 12 + len(str(prompt if prompt is not None else "")) // 4
        if u < self.timeout_rate:
            return "hang", self.hang, inp, out
        if u < self.timeout_rate + self.error_rate:
            return "error", seconds / 4, inp, out
        return "ok", seconds, inp, out

    def _reply(self, inp: int, out: int) -> dict[str, Any]:
        return {
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok " * out}}],
            "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out},
        }

    async def __call__(self, prompt: Any = None) -> dict[str, Any]:
        kind, seconds, inp, out = self._draw(prompt)
        await asyncio.sleep(seconds)
        if kind == "error":
            raise SimulatedError("simulated 429: rate limited")
        return self._reply(inp, out)

    def call_sync(self, prompt: Any = None) -> dict[str, Any]:
        """The blocking variant of ``__call__``."""
        kind, seconds, inp, out = self._draw(prompt)
        time.sleep(seconds)
        if kind == "error":
            raise SimulatedError("simulated 429: rate limited")
        return self._reply(inp, out)

    def _chunks(self, inp: int, out: int) -> Iterator[tuple[float, dict[str, Any]]]:
        gap = 1.0 / self.tokens_per_second
        for i in range(out):
            delay = self.ttft if i == 0 else gap
            yield delay, {"choices": [{"index": 0, "delta": {"content": "ok "}}], "usage": None}
        usage = {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}
        yield 0.0, {"model": self.model, "choices": [], "usage": usage}

    async def stream(self, prompt: Any = None) -> AsyncIterator[dict[str, Any]]:
        """Stream a reply token by token; the final chunk carries usage."""
        kind, seconds, inp, out = self._draw(prompt)
        if kind != "ok":
            await asyncio.sleep(seconds)
            raise SimulatedError("simulated 500: stream failed")
        for delay, chunk in self._chunks(inp, out):
            if delay:
                await asyncio.sleep(delay)
            yield chunk

    def stream_sync(self, prompt: Any = None) -> Iterator[dict[str, Any]]:
        """The blocking variant of ``stream``."""
        kind, seconds, inp, out = self._draw(prompt)
        if kind != "ok":
            time.sleep(seconds)
            raise SimulatedError("simulated 500: stream failed")
        for delay, chunk in self._chunks(inp, out):
            if delay:
                time.sleep(delay)
            yield chunk
