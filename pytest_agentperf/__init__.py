"""pytest-agentperf: performance, reliability and cost tests for LLM agents."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    AgentPerfError,
    AgentPerfWarning,
    BudgetExceeded,
    RegressionDetected,
    SettingsError,
    UsageError,
)
from .results import PerfResult
from .usage import record_usage

__all__ = [
    "AgentPerfError",
    "AgentPerfWarning",
    "BudgetExceeded",
    "PerfResult",
    "RegressionDetected",
    "SettingsError",
    "UsageError",
    "__version__",
    "record_usage",
]
