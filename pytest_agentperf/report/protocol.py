"""What a report writer is: one output of a session's run records, behind one Protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..record import RunRecord


@dataclass(frozen=True)
class ReportContext:
    """What a writer may need beside the records, gathered once at the end of a session."""

    plugin_version: str
    root: Path | None = None
    """The project folder (pytest's rootdir): files are written only inside it or where named."""
    summary: Sequence[str] = ()
    """The baseline gate's lines (problems, what changed, the counts), for under the table."""
    notes: Sequence[str] = ()
    """The plugin's own notes (e.g. where the baseline was saved)."""
    echo: Callable[[str], None] = field(default=lambda line: None)
    """Writes one line to the terminal summary (a no-op without a terminal)."""
    width: int | None = None
    """Columns the terminal table may use (pytest's terminal width; 120 without a tty); None:
    unknown (no terminal)."""
    columns: tuple[str, ...] | None = None
    """The table's columns ``--agentperf-columns`` chose (``report.columns.TABLE_COLUMNS``
    names); None: as many as fit ``width``."""
    findings: bool = True
    """List the runs' findings in the terminal and Markdown summaries (``--agentperf-findings``;
    the JSON report always carries them)."""

    def has_news(self, records: Sequence[RunRecord]) -> bool:
        """Whether there is anything to report: a run, a line of the gate, or a note."""
        return bool(records or self.summary or self.notes)


class ReportWriter(Protocol):
    """One output of the run records of a session (a file, the terminal, a server).

    ``write`` is called once, at the end of the session. It raises ``AgentPerfError`` (refused,
    the message says why), ``OSError`` (could not write) or ``ValueError`` (could not encode):
    the session then fails with a line naming ``label`` and ``target``, since a CI job must not
    go green without the report it asked for.
    """

    label: str
    """What it writes, for messages: "JSON report"."""
    target: str
    """Where it writes, for messages: a path, a URL, "terminal"."""

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str | None:
        """Write the output; return the line that says where it went, or None."""
        ...


class WriterFactory(Protocol):
    """Makes a writer from its option's value (None for a writer that is always on or turned
    on by a flag) and its tuning options (``WriterEntry.options``, by ``dest``)."""

    def __call__(self, value: str | None, options: Mapping[str, Any]) -> ReportWriter: ...
