"""Writing one report at the end of a session, and the line that says how it went."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import AgentPerfError


def write_report(
    label: str, target: str, write: Callable[[], str | None]
) -> tuple[str | None, bool]:
    """Call ``write`` (which writes the ``label`` report to ``target``); return the line to show
    (None when there is nothing to say) and whether it failed. A report asked for and not
    written must fail the session, as a baseline that cannot be saved does: a CI job must not
    go green without its report."""
    try:
        line = write()
    except AgentPerfError as exc:  # refused: the message names the path and why
        return f"ERROR: {label} not written: {exc}", True
    except OSError as exc:
        return f"ERROR: could not write the {label} {target}: {exc.strerror or exc}", True
    except ValueError as exc:  # a value that cannot be encoded
        return f"ERROR: could not write the {label} {target}: {exc}", True
    return line, False
