"""Report writers: each output of the run records is one module here, listed once in ``WRITERS``.

A writer module defines ``create(value) -> ReportWriter`` (``report.protocol``); its entry
below names the module and the command-line option that turns it on, so adding an output is
one module plus one entry. The plugin adds each entry's option, and registers each writer that
is turned on as an implementation of the ``pytest_agentperf_session_finished`` hook, the same
way a ``conftest.py`` implements it. This module stays light: a writer's module is imported
only when its output was asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .protocol import ReportContext, ReportWriter, WriterFactory


@dataclass(frozen=True)
class WriterEntry:
    """One output: its module under ``report/`` and the option that turns it on."""

    name: str
    module: str
    """The module defining ``create``, by its full name (``pytest_agentperf.report.json``)."""
    option: str | None = None
    """Command-line option giving the writer its value (a path); None: always on."""
    metavar: str = "PATH"
    help: str = ""

    @property
    def dest(self) -> str | None:
        """The option's attribute name on pytest's config (``--agentperf-json`` ->
        ``agentperf_json``)."""
        return self.option.lstrip("-").replace("-", "_") if self.option else None

    @property
    def always_on(self) -> bool:
        """A writer without an option (the terminal table): it writes only when there is news,
        so a session with nothing to report never imports it."""
        return self.option is None

    def factory(self) -> WriterFactory:
        """The module's ``create`` (imports the module)."""
        module = importlib.import_module(self.module)
        create: WriterFactory = module.create
        return create


WRITERS: tuple[WriterEntry, ...] = (
    WriterEntry("terminal", f"{__name__}.terminal"),
    WriterEntry(
        "json",
        f"{__name__}.json",
        option="--agentperf-json",
        help="write every run of every perf test to PATH as JSON",
    ),
)
"""Every built-in output, in the order they are written."""

__all__ = ["WRITERS", "ReportContext", "ReportWriter", "WriterEntry", "WriterFactory"]
