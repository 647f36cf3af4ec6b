from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pytest_agentperf.engine import run_load
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.sim import SimulatedAgent, SimulatedError


def test_latency_is_lognormal_around_the_median() -> None:
    agent = SimulatedAgent(median="20ms", spread=0.5, seed=3)
    draws = np.array([agent._draw("x")[1] for _ in range(20_000)])
    assert np.median(draws) == pytest.approx(0.020, rel=0.05)
    assert np.std(np.log(draws)) == pytest.approx(0.5, rel=0.05)


def test_error_and_timeout_injection_rates() -> None:
    agent = SimulatedAgent(error_rate="10%", timeout_rate="5%", seed=1)
    kinds = [agent._draw(None)[0] for _ in range(20_000)]
    assert kinds.count("error") / 20_000 == pytest.approx(0.10, abs=0.01)
    assert kinds.count("hang") / 20_000 == pytest.approx(0.05, abs=0.01)


def test_replies_carry_usage_and_model() -> None:
    agent = SimulatedAgent(median="1ms", output_tokens=50, model="gpt-4o-mini", seed=0)
    reply = asyncio.run(agent("hello world"))
    assert reply["model"] == "gpt-4o-mini"
    assert 25 <= reply["usage"]["completion_tokens"] <= 75
    assert reply["usage"]["prompt_tokens"] >= 12


def test_errors_and_hangs_through_the_engine() -> None:
    agent = SimulatedAgent(median="2ms", error_rate="30%", timeout_rate="10%", hang="30s", seed=2)
    raw = run_load(
        agent,
        None,
        parse_settings({"requests": 60, "concurrency": 10, "timeout": "0.3s", "warmup": 0}),
    )
    assert raw.error_types.get("SimulatedError", 0) > 5
    assert raw.error_types.get("Timeout", 0) > 0
    with pytest.raises(SimulatedError):
        SimulatedAgent(error_rate=1.0, median="1ms").call_sync()


def test_streams_have_a_first_token_delay_and_token_rate() -> None:
    agent = SimulatedAgent(ttft="30ms", tokens_per_second=500, output_tokens=10, seed=0)
    raw = run_load(agent.stream_sync, None, parse_settings({"requests": 3, "warmup": 0}))
    assert np.all(raw.log.ttft >= 0.029)
    assert np.median(raw.log.itl) < 0.02
    assert raw.usage.usage(3).output_tokens is not None
