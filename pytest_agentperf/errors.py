"""Exception types: each says what the user should change."""

from __future__ import annotations


class AgentPerfError(Exception):
    """Base class of every error raised by pytest-agentperf itself."""


class SettingsError(AgentPerfError, ValueError):
    """A marker or fixture setting is unknown, of the wrong type, or out of range."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class UsageError(AgentPerfError, RuntimeError):
    """The plugin was used in a way that cannot work (e.g. ``run`` inside an event loop)."""


class BaselineError(AgentPerfError):
    """The baseline file cannot be read or written; the message names the file and the problem."""

    def __init__(
        self, message: str, *, path: str | None = None, problem: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem


class BudgetExceeded(AssertionError):
    """One or more budgets of a run were broken; the message lists every one."""

    def __init__(self, message: str, failures: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures


class RegressionDetected(AssertionError):
    """A run is slower, more error-prone or more expensive than its baseline."""

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class AgentPerfWarning(UserWarning):
    """A result that can be trusted less than it looks (e.g. a p99 from 40 samples)."""


class PricingError(AgentPerfError, ValueError):
    """A price file (the ini option ``agentperf_prices``) cannot be read or is malformed."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class OutputPathError(AgentPerfError):
    """A file the plugin would write is not a regular file of its own (a device, a directory,
    a foreign file, a dangling link out of the project); it is left untouched."""

    def __init__(self, message: str, *, path: str, problem: str) -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem
