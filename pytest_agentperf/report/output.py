"""Writing one report file at the end of a session, and the line that says how it went."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import AgentPerfError


def write_report(
    label: str, path: str | os.PathLike[str], write: Callable[[], Path]
) -> tuple[str, bool]:
    """Call ``write`` (which writes the ``label`` report to ``path``); return the line to show
    and whether it failed. A report asked for and not written must fail the session, as a
    baseline that cannot be saved does: a CI job must not go green without its report."""
    try:
        written = write()
    except AgentPerfError as exc:  # refused: the message names the path and why
        return f"ERROR: {label} not written: {exc}", True
    except OSError as exc:
        return f"ERROR: could not write the {label} {path}: {exc.strerror or exc}", True
    except ValueError as exc:  # a value that cannot be encoded
        return f"ERROR: could not write the {label} {path}: {exc}", True
    return f"{label} written to {written}", False
