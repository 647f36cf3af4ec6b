"""The agents of benchmarks/workers.py, in a module of their own: a worker process imports
them by name (a script's ``__main__`` cannot be imported on a worker)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

BUSY_SECONDS = 0.005


def busy_agent() -> int:
    """About 5 ms of pure-Python work (holds the GIL throughout), like a framework's own code."""
    total, end = 0, time.perf_counter() + BUSY_SECONDS
    while time.perf_counter() < end:
        for i in range(200):
            total += i * i
    return total


_CLIENTS: dict[int, Any] = {}


async def openai_agent(x: str, base_url: str) -> Any:
    """One chat completion through the official async client; a client per event loop (and so
    per process and run), made on first use, as a test would keep one at module level."""
    import openai

    loop = id(asyncio.get_running_loop())
    client = _CLIENTS.get(loop)
    if client is None:
        client = _CLIENTS[loop] = openai.AsyncOpenAI(
            base_url=base_url, api_key="not-needed", max_retries=0
        )
    return await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": x}]
    )
