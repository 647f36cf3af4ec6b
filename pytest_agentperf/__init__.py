"""pytest-agentperf: performance, reliability and cost tests for LLM agents.

The public names are these; everything else is private to the package. The pytest side
(the ``agent_perf`` marker and the ``agentperf`` fixture) comes from the plugin, registered
through the ``pytest11`` entry point ``agentperf``.
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

from . import moved
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

if TYPE_CHECKING:
    from .ab import CompareResult
    from .integrations.openai import instrument as instrument_openai
    from .record import Finding, RunRecord, RunStatus
    from .results import PerfResult, Ratio
    from .usage import record_usage

moved.install(__name__)

_LAZY = {
    "CompareResult": ("ab", "CompareResult"),
    "Ratio": ("results", "Ratio"),
    "instrument_openai": ("integrations.openai", "instrument"),
    "Finding": ("record", "Finding"),
    "PerfResult": ("results", "PerfResult"),
    "RunRecord": ("record", "RunRecord"),
    "RunStatus": ("record", "RunStatus"),
    "record_usage": ("usage", "record_usage"),
}
"""Public names whose modules load numpy: imported on first use, so that importing the
package (which pytest does for every session through the plugin) stays cheap."""


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    # Not cached in this namespace: the package outlives its submodules when a host drops
    # them from sys.modules (pytester's in-process runs do after each session), and a cached
    # record_usage would then write to the dropped module's context variable, unseen.
    return getattr(importlib.import_module(f".{module}", __name__), attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AgentPerfError",
    "AgentPerfWarning",
    "BaselineError",
    "BudgetExceeded",
    "CompareResult",
    "Finding",
    "PerfResult",
    "PricingError",
    "Ratio",
    "RegressionDetected",
    "RunRecord",
    "RunStatus",
    "SettingsError",
    "UsageError",
    "__version__",
    "instrument_openai",
    "record_usage",
]
