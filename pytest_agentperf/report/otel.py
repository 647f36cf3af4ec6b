"""``--agentperf-otel``: every measured call as OpenTelemetry spans (GenAI conventions), sent
after the session with the calls' own start and end times.

What is sent, per run that kept its calls (``PerfResult.calls``):

- one span ``agentperf run {run}`` (kind INTERNAL) over the run: test, run, status and the
  run's figures as attributes; its own trace;
- per measured call, the root of its own trace: ``invoke_agent {run}`` (kind INTERNAL: the
  agent is a Python callable called in this process, which the conventions' "invoke agent
  internal span" describes), linked to the run's span, with ``error.type`` and an ERROR status
  when the call failed or timed out;
- under it, ``chat {model}`` (kind CLIENT) for each LLM request and ``execute_tool {tool}``
  (kind INTERNAL) for each tool call the integrations saw in that call. An operation that was
  not timed (``record_usage`` takes no times) spans its whole call and carries
  ``agentperf.timed = false``, so its tokens still show.

A trace per call is the shape the conventions and every tracing backend expect (one request,
one trace: latency views and LangSmith's runs read the root span); the link and the
``agentperf.test`` / ``agentperf.run`` attributes find a run's calls. Spans are made at the end
of the session, from the call table, with explicit timestamps: tracing adds nothing to a
measured call. Attribute names are those of the GenAI conventions (``time_to_first_chunk``:
semantic-conventions #3607, on inference spans).

Spans go to the tracer provider the user configured (``trace.set_tracer_provider``, e.g. in a
``conftest.py``, or ``opentelemetry-instrument``), else to a provider of our own that sends them
over OTLP/HTTP (protobuf) as the standard ``OTEL_EXPORTER_OTLP_*`` variables say. The plugin
never sets the global provider. Every string taken from a test passes through ``redact``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import AgentPerfError
from ..record import RunRecord, RunStatus
from ..redact import redact
from ..results import CHAT, TOOL, CallTable
from .protocol import ReportContext

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer, TracerProvider

EXTRA = "otel"
"""The optional extra with the OpenTelemetry packages: ``pip install pytest-agentperf[otel]``."""
SERVICE_NAME = "pytest-agentperf"
"""``service.name`` of the plugin's own provider, unless ``OTEL_SERVICE_NAME`` (or
``OTEL_RESOURCE_ATTRIBUTES``) names one."""
DEFAULT_ENDPOINT = "http://localhost:4318"
"""Where OTLP/HTTP goes without ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the specification's default)."""
FLUSH_EVERY = 1024
"""Spans made between two flushes. A batch processor drops spans once its queue is full (2048 by
default), and spans made in a loop fill it faster than they are exported."""
FLUSH_TIMEOUT_MS = 30_000
UNTYPED_ERROR = "_OTHER"
"""``error.type`` of a failed LLM request or tool call, whose exception type is not recorded
(the conventions' fallback value)."""
FAILED_RUN = frozenset({RunStatus.FAIL, RunStatus.ABORTED, RunStatus.REGRESSED, RunStatus.ERROR})
"""Run statuses that give the run's span an ERROR status."""

_EXPORTER_LOGGER = "opentelemetry.exporter"


class OtelUnavailable(AgentPerfError):
    """``--agentperf-otel`` was given but the OpenTelemetry packages are not installed."""


class TraceExportError(AgentPerfError):
    """Spans were made but not all of them reached the exporter's endpoint (or the user's
    provider did not flush them in time)."""


def otlp_endpoint(environ: Mapping[str, str] = os.environ) -> str:
    """The URL OTLP/HTTP spans are sent to, as the exporter resolves it: the traces endpoint as
    given, else the base endpoint plus ``/v1/traces``."""
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    return base.removesuffix("/") + "/v1/traces"


def unix_ns(t0_unix: float, seconds: float) -> int:
    """``t0_unix + seconds`` as integer nanoseconds, keeping sub-microsecond precision (the sum
    as one float would round to 256 ns at today's Unix times)."""
    whole = math.floor(t0_unix)
    return whole * 1_000_000_000 + round((t0_unix - whole + seconds) * 1e9)


def _attributes(values: Mapping[str, object]) -> dict[str, Any]:
    """``values`` without the unknown ones (None), every string redacted."""
    return {
        key: redact(value) if isinstance(value, str) else value
        for key, value in values.items()
        if value is not None
    }


def _known(value: float) -> float | None:
    return None if math.isnan(value) else value


def _tokens(value: int) -> int | None:
    return value if value >= 0 else None


def count_spans(records: Sequence[RunRecord]) -> int:
    """How many spans ``emit_spans`` makes of ``records``."""
    return sum(
        1 + len(r.result.calls) + len(r.result.calls.spans)
        for r in records
        if r.result.calls is not None and len(r.result.calls)
    )


def emit_spans(
    tracer: Tracer,
    records: Sequence[RunRecord],
    *,
    flush: Callable[[], bool] | None = None,
) -> int:
    """Make the spans of every record that kept its calls; return how many were made.

    ``flush`` is called every ``FLUSH_EVERY`` spans (it flushes the provider); when it returns
    False (the spans cannot be delivered) no more spans are made, so an endpoint that is down
    costs one export timeout, not one per batch of a long run.
    """
    made = 0
    for record in records:
        calls = record.result.calls
        if calls is None or len(calls) == 0:
            continue
        for count in _record_spans(tracer, record, calls):
            before, made = made, made + count
            if flush is not None and made // FLUSH_EVERY > before // FLUSH_EVERY and not flush():
                return made
    return made


def _record_spans(tracer: Tracer, record: RunRecord, calls: CallTable) -> Iterator[int]:
    """Make one record's spans; yield how many were made after each call's spans."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    t0 = calls.t0_unix
    run = record.name
    result = record.result
    actual = calls.actual.tolist()
    ends = calls.end.tolist()
    intended = calls.start.tolist()
    status = calls.status.tolist()
    ttft = calls.ttft.tolist()
    inputs = calls.input_tokens.tolist()
    outputs = calls.output_tokens.tolist()
    cost = calls.cost.tolist()
    model = calls.model.tolist()
    error_type = calls.error_type()
    common = {"agentperf.test": record.nodeid, "agentperf.run": run}

    # The run's span is ended before its calls' spans are made: it only needs its context for
    # the links, and a provider never holds more than one open span of ours at a time.
    run_end = max([e for e in ends if not math.isnan(e)], default=0.0)
    run_span = tracer.start_span(
        f"agentperf run {redact(run)}",
        context=otel_context.Context(),
        kind=SpanKind.INTERNAL,
        attributes=_attributes(
            {
                **common,
                "agentperf.status": str(record.status),
                "agentperf.requests": result.requests,
                "agentperf.errors": result.errors,
                "agentperf.timeouts": result.timeouts,
                "agentperf.throughput": result.throughput,
                "agentperf.latency.p50": result.latency.p50,
                "agentperf.latency.p95": result.latency.p95,
            }
        ),
        start_time=unix_ns(t0, 0.0),
    )
    if record.status in FAILED_RUN:
        run_span.set_status(Status(StatusCode.ERROR, str(record.status)))
    run_span.end(end_time=unix_ns(t0, run_end))
    link = Link(run_span.get_span_context())
    yield 1

    spans = calls.spans
    span_call = spans.call.tolist()
    row = 0  # the next row of ``spans``; rows are in ascending order of their call
    for i in range(len(calls)):
        start_ns = unix_ns(t0, actual[i])
        end_ns = unix_ns(t0, ends[i])
        mine = []
        while row < len(span_call) and span_call[row] <= i:
            if span_call[row] == i:
                mine.append(row)
            row += 1
        provider = next(
            (
                calls.name(int(spans.provider[r]))
                for r in mine
                if spans.kind[r] == CHAT and spans.provider[r] >= 0
            ),
            None,
        )
        model_name = calls.name(model[i])
        call_span = tracer.start_span(
            f"invoke_agent {redact(run)}",
            context=otel_context.Context(),  # a trace of its own
            kind=SpanKind.INTERNAL,
            links=[link],
            attributes=_attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": run,
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": model_name,
                    "gen_ai.usage.input_tokens": _tokens(inputs[i]),
                    "gen_ai.usage.output_tokens": _tokens(outputs[i]),
                    **common,
                    "agentperf.call": i,
                    "agentperf.intended_start": intended[i],
                    "agentperf.ttft": _known(ttft[i]),
                    "agentperf.cost_usd": _known(cost[i]),
                    "error.type": error_type[i] or (UNTYPED_ERROR if status[i] else None),
                }
            ),
            start_time=start_ns,
        )
        if status[i] != 0:
            call_span.set_status(Status(StatusCode.ERROR))
        parent = trace.set_span_in_context(call_span, otel_context.Context())
        for r in mine:
            _child_span(tracer, calls, r, parent, start_ns, end_ns)
        call_span.end(end_time=end_ns)
        yield 1 + len(mine)


def _child_span(
    tracer: Tracer,
    calls: CallTable,
    r: int,
    parent: Context,
    call_start_ns: int,
    call_end_ns: int,
) -> None:
    """The span of row ``r`` of the call's LLM requests and tool calls."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    spans = calls.spans
    name = calls.name(int(spans.name[r]))
    start, end = float(spans.start[r]), float(spans.end[r])
    timed = not (math.isnan(start) or math.isnan(end))
    ok = bool(spans.ok[r])
    common: dict[str, object] = {
        "error.type": None if ok else UNTYPED_ERROR,
        "agentperf.timed": None if timed else False,
    }
    if int(spans.kind[r]) == TOOL:
        operation, kind = "execute_tool", SpanKind.INTERNAL
        values: dict[str, object] = {"gen_ai.tool.name": name}
    else:
        operation, kind = "chat", SpanKind.CLIENT
        values = {
            "gen_ai.provider.name": calls.name(int(spans.provider[r])),
            "gen_ai.request.model": name,
            "gen_ai.usage.input_tokens": _tokens(int(spans.input_tokens[r])),
            "gen_ai.usage.output_tokens": _tokens(int(spans.output_tokens[r])),
            "gen_ai.response.time_to_first_chunk": _known(float(spans.ttft[r])),
        }
    span: Span = tracer.start_span(
        f"{operation} {redact(name)}" if name else operation,
        context=parent,
        kind=kind,
        attributes=_attributes({"gen_ai.operation.name": operation, **values, **common}),
        start_time=unix_ns(calls.t0_unix, start) if timed else call_start_ns,
    )
    if not ok:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=unix_ns(calls.t0_unix, end) if timed else call_end_ns)


def configured_provider() -> TracerProvider | None:
    """The tracer provider the user set (``trace.set_tracer_provider``); None while it is the
    API's default (a proxy to a no-op provider)."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider


class _ErrorLog(logging.Handler):
    """Keeps what the OTLP exporter logged: it returns a bare FAILURE, and the why (a status
    code, a refused connection) is only in its log: the first transient error (a warning,
    before it retries) and the last error (when it gives up)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.first_warning: str | None = None
        self.last_error: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a log record that cannot format must not cost the report
            message = str(record.msg)
        if record.levelno >= logging.ERROR:
            self.last_error = message
        elif self.first_warning is None:
            self.first_warning = message

    def reason(self) -> str | None:
        """What went wrong, as the exporter said it; None when it said nothing."""
        if self.last_error and self.first_warning:
            return f"{self.last_error} (first: {self.first_warning})"
        return self.last_error or self.first_warning


@contextmanager
def _exporter_errors() -> Iterator[_ErrorLog]:
    handler = _ErrorLog()
    logger = logging.getLogger(_EXPORTER_LOGGER)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _counting(exporter: SpanExporter) -> Any:
    """``exporter`` wrapped to count the spans it sent and failed to send."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        def __init__(self) -> None:
            self.sent = 0
            self.failed = 0
            self.problem: str | None = None

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            try:
                result = exporter.export(spans)
            except Exception as exc:  # an exporter that raises: counted as a failed export
                self.problem = f"{type(exc).__name__}: {exc}"
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                self.sent += len(spans)
            else:
                self.failed += len(spans)
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = FLUSH_TIMEOUT_MS) -> bool:
            return exporter.force_flush(timeout_millis)

    return Counting()


def _own_provider(environ: Mapping[str, str]) -> tuple[Any, Any]:
    """A provider of our own sending over OTLP/HTTP, and its counting exporter."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    exporter = _counting(OTLPSpanExporter(endpoint=otlp_endpoint(environ)))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def _import_otel() -> None:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
        from opentelemetry.exporter.otlp.proto.http import trace_exporter  # noqa: F401
    except ImportError as exc:
        raise OtelUnavailable(
            f"--agentperf-otel needs the OpenTelemetry packages ({exc.name or exc} is missing): "
            f"pip install 'pytest-agentperf[{EXTRA}]'"
        ) from exc


class OtelWriter:
    """``--agentperf-otel``: the ``ReportWriter`` that sends each measured call as spans."""

    label = "OpenTelemetry traces"

    def __init__(
        self, provider: TracerProvider | None = None, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.provider = provider
        """The provider to use; None: the one the user configured, else our own (OTLP)."""
        self.environ = environ
        self.target = redact(otlp_endpoint(environ))

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        _import_otel()
        provider = self.provider or configured_provider()
        if provider is not None:  # the user's: its exporters report their own failures
            where = f"the configured {type(provider).__name__}"
            made, flushed = self._send(provider, records, context, lambda: True)
            if not flushed:
                raise TraceExportError(
                    f"{where} did not flush {made} spans within {FLUSH_TIMEOUT_MS // 1000} s"
                )
            return f"{made} OpenTelemetry spans sent to {where}"
        own, exporter = _own_provider(self.environ)
        with _exporter_errors() as errors:
            try:
                made, flushed = self._send(own, records, context, lambda: not exporter.failed)
            finally:
                own.shutdown()
        if exporter.failed or not flushed:
            why = exporter.problem or errors.reason() or "not flushed in time"
            left = count_spans(records) - made
            raise TraceExportError(
                f"{exporter.failed or made} of {made} spans not sent to {self.target}"
                + (f" ({left} more not made after that)" if left else "")
                + f": {redact(why)} (check OTEL_EXPORTER_OTLP_ENDPOINT / "
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)"
            )
        return f"{made} OpenTelemetry spans sent to {self.target}"

    @staticmethod
    def _send(
        provider: Any,
        records: Sequence[RunRecord],
        context: ReportContext,
        delivered: Callable[[], bool],
    ) -> tuple[int, bool]:
        """Make the spans with ``provider``, flushing it as they are made and at the end;
        return how many were made and whether every flush finished in time. ``delivered``
        says whether the spans flushed so far arrived (else no more are made)."""
        tracer = provider.get_tracer("pytest_agentperf", context.plugin_version)
        force_flush = getattr(provider, "force_flush", None)
        flushed = True

        def flush() -> bool:
            nonlocal flushed
            if force_flush is not None and not force_flush(FLUSH_TIMEOUT_MS):
                flushed = False
            return flushed and delivered()

        made = emit_spans(tracer, records, flush=flush)
        flush()
        return made, flushed


def create(value: str | None, options: Mapping[str, Any]) -> OtelWriter:
    """The writer of ``--agentperf-otel`` (a flag: ``value`` is None). Imports nothing of
    OpenTelemetry: a missing extra is reported when the writer runs, as a failed report."""
    return OtelWriter()
