"""Stand-ins for a real model, for tests, the examples and the demo: the simulated agent
(``sim``, no network) and an OpenAI-compatible server on 127.0.0.1 (``server``, extra
"server"). This ``__init__`` only re-exports them."""

from __future__ import annotations

from .server import OpenAIServer, count_prompt_tokens
from .sim import SimulatedAgent, SimulatedError

__all__ = ["OpenAIServer", "SimulatedAgent", "SimulatedError", "count_prompt_tokens"]
