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


class InvalidUsage(AgentPerfError, TypeError, ValueError):
    """``record_usage()`` got a value it cannot count (a non-str model, a NaN token count...).

    Raised at the call, inside the agent, so that call fails with this error.
    """


class ResultHandlingError(AgentPerfError):
    """The plugin could not handle what a measured call returned; that call counts as failed.

    Its type name is what ``PerfResult.error_types`` shows, so such a failure is never
    mistaken for the agent's own error, and never costs a worker.
    """


class UsageExtractionError(ResultHandlingError):
    """Reading token usage from a call's return value or a stream chunk raised."""


class EmptyStream(AgentPerfError):
    """A streamed call ended without a single output chunk (see the ``allow_empty`` setting)."""


def describe(exc: BaseException) -> str:
    """``"Type: message"`` for ``exc``, even when its ``__str__`` raises or returns a non-str."""
    try:
        text = str(exc)
    except Exception as problem:  # a broken __str__ must not cost the call its outcome
        text = f"<str() raised {type(problem).__name__}>"
    return f"{type(exc).__name__}: {text}"


class OutputPathError(AgentPerfError):
    """A file the plugin would write is not a regular file of its own (a device, a directory,
    a foreign file, a dangling link out of the project); it is left untouched."""

    def __init__(self, message: str, *, path: str, problem: str) -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem


class WorkerError(AgentPerfError):
    """A worker of a run split over workers (``workers=N``) failed, died or stopped answering;
    the run is not reported, and the message names the worker and the reason."""

    def __init__(self, message: str, *, worker: str | None = None) -> None:
        super().__init__(message)
        self.worker = worker
