"""pytest-agentperf: performance, reliability and cost tests for LLM agents.

The public names are these; everything else is private to the package. The pytest side
(the ``agent_perf`` marker and the ``agentperf`` fixture) comes from the plugin, registered
through the ``pytest11`` entry point ``agentperf``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    AgentPerfError,
    AgentPerfWarning,
    BaselineError,
    BudgetExceeded,
    PricingError,
    RegressionDetected,
    SettingsError,
    UsageError,
)
from .integrations.openai import instrument as instrument_openai
from .results import PerfResult
from .usage import record_usage

__all__ = [
    "AgentPerfError",
    "AgentPerfWarning",
    "BaselineError",
    "BudgetExceeded",
    "PerfResult",
    "PricingError",
    "RegressionDetected",
    "SettingsError",
    "UsageError",
    "__version__",
    "instrument_openai",
    "record_usage",
]
