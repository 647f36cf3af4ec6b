"""Report writers: each output of the run records is one module here, listed once in ``WRITERS``.

A writer module defines ``create(value, options) -> ReportWriter`` (``report.protocol``); its
entry below names the module, the command-line option that turns it on and the options that
tune it, so adding an output is one module plus one entry. The plugin adds each entry's
options, and registers each writer that is turned on as an implementation of the
``pytest_agentperf_session_finished`` hook, the same way a ``conftest.py`` implements it.
This module stays light: a writer's module is imported only when its output was asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .protocol import ReportContext, ReportWriter, WriterFactory


def dest_of(option: str) -> str:
    """An option's attribute name on pytest's config: ``--agentperf-json`` -> ``agentperf_json``."""
    return option.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class WriterOption:
    """A command-line option that tunes a writer (not one that turns it on)."""

    option: str
    help: str
    metavar: str | None = None
    """None: a flag (``store_true``); else the option takes a value."""
    default: Any = None

    @property
    def dest(self) -> str:
        return dest_of(self.option)


@dataclass(frozen=True)
class WriterEntry:
    """One output: its module under ``report/``, the option that turns it on and the options
    that tune it."""

    name: str
    module: str
    """The module defining ``create``, by its full name (``pytest_agentperf.report.json``)."""
    option: str | None = None
    """Command-line option giving the writer its value (a path, a URL); None: always on."""
    metavar: str | None = "PATH"
    """None: ``option`` is a flag (``store_true``, the writer's value is None)."""
    help: str = ""
    options: tuple[WriterOption, ...] = ()
    """Options the writer reads (given to ``create`` by their ``dest``)."""
    env: str | None = None
    """An environment variable that also turns the writer on when set and not empty (the
    Markdown summary: ``GITHUB_STEP_SUMMARY``)."""
    needs_calls: bool = False
    """The writer reads each call (``PerfResult.calls``): runs keep their per-call table while
    it is on (memory grows with the calls, so only then)."""
    extra: str | None = None
    """The optional extra (``pip install pytest-agentperf[EXTRA]``) the writer needs."""
    requires: tuple[str, ...] = ()
    """Modules of that extra: checked (found, not imported) when the session starts, so a
    missing extra stops it before the load tests run rather than after."""

    @property
    def dest(self) -> str | None:
        """The option's attribute name on pytest's config; None without an option."""
        return dest_of(self.option) if self.option else None

    def enabled(
        self, getoption: Callable[[str], Any], environ: Mapping[str, str] = os.environ
    ) -> bool:
        """Whether this session asked for the output (``getoption``: pytest's, by ``dest``)."""
        if self.dest is None:
            return True
        return bool(getoption(self.dest)) or bool(self.env and environ.get(self.env))

    @property
    def always_on(self) -> bool:
        """A writer without an option (the terminal table): it writes only when there is news,
        so a session with nothing to report never imports it."""
        return self.option is None

    def missing(self) -> list[str]:
        """The modules of ``requires`` that are not installed (looked up, not imported)."""
        absent = []
        for name in self.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):  # a parent package is missing or broken
                found = False
            if not found:
                absent.append(name)
        return absent

    def missing_extra(self) -> str | None:
        """What to tell a user who asked for this output without its extra installed (None:
        nothing is missing)."""
        missing = self.missing()
        if not missing:
            return None
        return (
            f"{self.option} needs the [{self.extra}] extra ({', '.join(missing)} is not "
            f"installed): pip install 'pytest-agentperf[{self.extra}]'"
        )

    def factory(self) -> WriterFactory:
        """The module's ``create`` (imports the module)."""
        module = importlib.import_module(self.module)
        create: WriterFactory = module.create
        return create

    def create(self, getoption: Callable[[str], Any]) -> ReportWriter:
        """The writer, given its option's value and its tuning options."""
        value = getoption(self.dest) if self.dest else None
        if value is True:  # a flag carries no value
            value = None
        return self.factory()(value, {o.dest: getoption(o.dest) for o in self.options})


def needs_calls(getoption: Callable[[str], Any], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether any output this session asked for reads each call."""
    return any(e.needs_calls and e.enabled(getoption, environ) for e in WRITERS)


WRITERS: tuple[WriterEntry, ...] = (
    WriterEntry("terminal", f"{__name__}.terminal"),
    WriterEntry(
        "json",
        f"{__name__}.json",
        option="--agentperf-json",
        help="write every run of every perf test to PATH as JSON",
    ),
    WriterEntry(
        "log",
        f"{__name__}.log",
        option="--agentperf-log",
        help="write every measured call to PATH as JSON Lines (one object per call)",
        options=(
            WriterOption(
                "--agentperf-log-content",
                "also write each call's input and output text (redacted) to the per-call log",
            ),
        ),
        needs_calls=True,
    ),
    WriterEntry(
        "markdown",
        f"{__name__}.markdown",
        option="--agentperf-markdown",
        help="write a Markdown summary to PATH (also appended to $GITHUB_STEP_SUMMARY when set)",
        options=(
            WriterOption(
                "--agentperf-no-step-summary",
                help="do not append the Markdown summary to $GITHUB_STEP_SUMMARY",
            ),
        ),
        env="GITHUB_STEP_SUMMARY",
    ),
    WriterEntry(
        "openmetrics",
        f"{__name__}.openmetrics",
        option="--agentperf-openmetrics",
        help="write the runs as Prometheus metrics (OpenMetrics text) to PATH",
        needs_calls=True,
        extra="prometheus",
        requires=("prometheus_client",),
    ),
    WriterEntry(
        "pushgateway",
        f"{__name__}.pushgateway",
        option="--agentperf-pushgateway",
        metavar="URL",
        help="push the runs' Prometheus metrics to the Pushgateway at URL at session end",
        options=(
            WriterOption(
                "--agentperf-pushgateway-job",
                "the Pushgateway job name (default: agentperf)",
                metavar="NAME",
                default="agentperf",
            ),
        ),
        needs_calls=True,
        extra="prometheus",
        requires=("prometheus_client",),
    ),
    WriterEntry(
        "otel",
        f"{__name__}.otel",
        option="--agentperf-otel",
        metavar=None,
        help="send each measured call as OpenTelemetry GenAI spans (the configured tracer "
        "provider, else OTLP/HTTP from OTEL_EXPORTER_OTLP_*; needs the [otel] extra)",
        needs_calls=True,
        extra="otel",
        requires=(
            "opentelemetry.sdk.trace",
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ),
    ),
    WriterEntry(
        "html",
        f"{__name__}.html",
        option="--agentperf-html",
        help="write a self-contained HTML dashboard of the runs to PATH (charts, no network; "
        "needs the [html] extra)",
        needs_calls=True,
        extra="html",
        requires=("jinja2",),
    ),
)
"""Every built-in output, in the order they are written."""

__all__ = [
    "WRITERS",
    "ReportContext",
    "ReportWriter",
    "WriterEntry",
    "WriterFactory",
    "WriterOption",
    "dest_of",
    "needs_calls",
]
