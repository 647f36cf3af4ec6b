"""The simulated LLM agent the demo and the examples run (no key, no network).

It lives in ``pytest_agentperf.testing.sim`` with the other stand-ins for a real model; this
public path is kept for it, as the quick start uses it.
"""

from __future__ import annotations

from .testing.sim import SimulatedAgent, SimulatedError

__all__ = ["SimulatedAgent", "SimulatedError"]
