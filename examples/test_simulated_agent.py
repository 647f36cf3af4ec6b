"""Performance tests of a simulated LLM agent: no API key, no network.

``SimulatedAgent`` answers after a lognormal delay (like a real model: a floor, a body and a
long tail), returns OpenAI-shaped replies with token usage, and can inject errors, hangs and
streaming. Swap it for your own agent: any sync or async callable, a LangChain Runnable, or a
call that returns a stream.

Run with ``make demo``, or ``pytest examples``.
"""

from __future__ import annotations

import pytest

from pytest_agentperf import PerfResult
from pytest_agentperf.sim import SimulatedAgent

PROMPTS = [
    "What is the capital of France?",
    "Summarise this ticket in one line.",
    "Write a haiku about latency.",
]


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=300, concurrency=20, p50="60ms", p95="150ms", p99="300ms")
async def test_async_closed_loop(agentperf):
    """Closed loop: 20 calls in flight, each worker starts its next call when one returns."""
    agent = SimulatedAgent(median="20ms", spread=0.4, seed=1)
    result = await agentperf.arun(agent, PROMPTS)
    assert result.requests == 300
    assert result.errors == 0


@pytest.mark.agent_perf(requests=80, concurrency=8, warmup=2, p95="150ms", min_throughput="50/s")
def test_sync_agent_with_threads(agentperf):
    """A blocking agent runs on the plugin's own threads, one per concurrent call."""
    agent = SimulatedAgent(median="20ms", seed=2)
    result = agentperf.run(agent.call_sync, PROMPTS)
    assert result.throughput > 50
    assert agent.calls == 82  # warmup calls are made but not measured


@pytest.mark.asyncio
@pytest.mark.agent_perf(rate="100/s", requests=150, concurrency=50, p95="200ms", error_rate=0)
async def test_open_loop_at_a_fixed_rate(agentperf):
    """Open loop: calls arrive at 100/s (Poisson) whether or not earlier ones have returned.

    Latency counts from each call's intended start, so a stalled agent cannot hide its stall.
    """
    agent = SimulatedAgent(median="20ms", seed=3)
    result = await agentperf.arun(agent, PROMPTS)
    assert result.shape.rate == 100


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=60, concurrency=10, ttft_p95="150ms", itl_p95="50ms", p95="1s")
async def test_streaming_time_to_first_token(agentperf):
    """A call that returns an (async) iterator streams: each item is a chunk."""
    agent = SimulatedAgent(ttft="30ms", output_tokens=20, tokens_per_second=400, seed=4)
    result = await agentperf.arun(agent.stream, PROMPTS)
    assert result.ttft.n == 60
    assert result.ttft.p50 < result.latency.p50  # first chunk arrives before the last


@pytest.mark.asyncio
async def test_concurrency_sweep(agentperf):
    """Several named runs in one test; each gets its own row in the summary table."""
    agent = SimulatedAgent(median="20ms", seed=5)
    results: dict[int, PerfResult] = {}
    for c in (1, 4, 16):
        results[c] = await agentperf.arun(
            agent, PROMPTS, name=f"c={c}", requests=64, concurrency=c, p95="150ms"
        )
    # more calls in flight, more calls per second (the simulated agent never saturates)
    assert results[16].throughput > 2 * results[1].throughput


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=200, concurrency=20, error_rate="15%", timeout_rate="5%")
async def test_error_and_timeout_budgets(agentperf):
    """Injected failures: 5% of calls raise, 1% hang and are cancelled at the timeout."""
    agent = SimulatedAgent(median="10ms", error_rate="5%", timeout_rate="1%", seed=6)
    result = await agentperf.arun(agent, PROMPTS, timeout="250ms")
    assert result.errors > 0
    assert result.error_types["SimulatedError"] == result.errors - result.timeouts
    assert result.latency.n == result.requests - result.errors  # latency: successful calls only
