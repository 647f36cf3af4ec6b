"""A call whose result the plugin could not handle: recorded as that call's failure."""

from __future__ import annotations

from ..errors import ResultHandlingError, describe
from ..usage import CallScope
from .log import ERROR, CallLog
from .plan import RunState


def record_failure(
    log: CallLog,
    state: RunState,
    exc: Exception,
    t_int: float,
    end: float,
    scope: CallScope | None,
    model: str | None,
    actual: float | None = None,
) -> None:
    """Record a call as failed because handling its result raised ``exc``.

    The type name says the failure is the plugin's handling, not the agent's own error:
    ``UsageExtractionError`` (reading usage from the result raised) or ``ResultHandlingError``
    (anything else). Either way the call is counted and its worker carries on.
    """
    name = type(exc).__name__ if isinstance(exc, ResultHandlingError) else "ResultHandlingError"
    state.note_error(f"{name}: {describe(exc)}" if name != type(exc).__name__ else describe(exc))
    log.record(t_int, end, ERROR, name, None, scope, None, model, actual)
