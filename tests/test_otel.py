"""``--agentperf-otel``: each measured call as OpenTelemetry GenAI spans, with the call table's
own times, to the configured tracer provider or over OTLP/HTTP."""

from __future__ import annotations

import http.server
import math
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy
import pytest
from conftest import QUIET_MACHINE, make_result
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("opentelemetry.sdk.trace", reason="needs the [otel] extra")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from pytest_agentperf.errors import AgentPerfError
from pytest_agentperf.record import RunRecord, RunStatus
from pytest_agentperf.report import WRITERS, ReportContext, otel
from pytest_agentperf.report.output import write_report
from pytest_agentperf.results import CHAT, TOOL, CallTable, SpanTable

T0 = 1_750_000_000.25
KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz"
NAN = math.nan


def floats(*values: float) -> Any:
    return numpy.asarray(values, dtype=numpy.float64)


def ints(*values: int) -> Any:
    return numpy.asarray(values, dtype=numpy.int64)


def codes(*values: int) -> Any:
    return numpy.asarray(values, dtype=numpy.int8)


def make_calls() -> CallTable:
    """Three calls: ok (a streamed chat, a tool, an untimed chat), failed (a failed tool),
    timed out (nothing inside)."""
    return CallTable(
        t0_unix=T0,
        start=floats(0.0, 0.1, 0.2),
        actual=floats(0.0, 0.12, 0.2),
        end=floats(0.05, 0.3, 0.5),
        status=codes(0, 1, 2),
        ttft=floats(0.02, NAN, NAN),
        input_tokens=ints(15, -1, -1),
        output_tokens=ints(6, -1, -1),
        cost=floats(0.0012, NAN, NAN),
        model=ints(0, -1, -1),
        error_rows=ints(1, 2),
        error_types=("RateLimitError", "Timeout"),
        names=("gpt-4o-mini", "openai", "search", f"fetch {KEY}"),
        spans=SpanTable(
            call=ints(0, 0, 0, 1),
            kind=codes(CHAT, TOOL, CHAT, TOOL),
            name=ints(0, 2, 0, 3),
            provider=ints(1, -1, -1, -1),
            start=floats(0.001, 0.02, NAN, 0.13),
            end=floats(0.03, 0.04, NAN, 0.2),
            input_tokens=ints(10, -1, 5, -1),
            output_tokens=ints(4, -1, 2, -1),
            ttft=floats(0.011, NAN, NAN, NAN),
            ok=codes(1, 1, 1, 0),
        ),
    )


def make_record(
    calls: CallTable | None = None, *, name: str = "triage", status: RunStatus = RunStatus.PASS
) -> RunRecord:
    result = make_result([0.05, 0.18], errors=1, timeouts=1, name=name, calls=calls)
    return RunRecord(nodeid="test_agent.py::test_triage", name=name, status=status, result=result)


def ns(seconds: float) -> int:
    """``T0 + seconds`` in nanoseconds, computed exactly (no float sum)."""
    return round((Decimal(T0) + Decimal(seconds)) * 10**9)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A provider of the test's own (never the global one)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def send(provider: TracerProvider, *records: RunRecord) -> str:
    return otel.OtelWriter(provider).write(records, ReportContext(plugin_version="0.1.0"))


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def test_one_run_span_one_invoke_agent_span_per_call_and_a_child_per_operation(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    line = send(provider, make_record(make_calls()))
    spans = exporter.get_finished_spans()
    assert line == "8 OpenTelemetry spans sent to the configured TracerProvider"
    names = sorted(s.name for s in spans)
    assert names == sorted(
        [
            "agentperf run triage",
            "invoke_agent triage",
            "invoke_agent triage",
            "invoke_agent triage",
            "chat gpt-4o-mini",
            "chat gpt-4o-mini",
            "execute_tool search",
            "execute_tool fetch sk-proj-***",
        ]
    )


def test_each_call_is_a_trace_of_its_own_linked_to_its_run_and_parent_of_its_operations(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    send(provider, make_record(make_calls()))
    spans = by_name(exporter.get_finished_spans())
    (run,) = spans["agentperf run triage"]
    calls = sorted(spans["invoke_agent triage"], key=lambda s: s.attributes["agentperf.call"])
    assert run.parent is None
    traces = {run.context.trace_id} | {c.context.trace_id for c in calls}
    assert len(traces) == 4
    for call in calls:
        assert call.parent is None
        assert call.kind is SpanKind.INTERNAL
        assert [link.context.span_id for link in call.links] == [run.context.span_id]
    children = [s for s in exporter.get_finished_spans() if s.parent is not None]
    assert len(children) == 4
    owner = {c.context.span_id: c.attributes["agentperf.call"] for c in calls}
    assert sorted(owner[s.parent.span_id] for s in children) == [0, 0, 0, 1]
    for child in children:
        assert child.context.trace_id == child.parent.trace_id
    kinds = {s.name: s.kind for s in children}
    assert kinds["chat gpt-4o-mini"] is SpanKind.CLIENT
    assert kinds["execute_tool search"] is SpanKind.INTERNAL


def test_spans_carry_the_tables_times_not_the_time_they_were_made(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    send(provider, make_record(make_calls()))
    spans = by_name(exporter.get_finished_spans())
    calls = sorted(spans["invoke_agent triage"], key=lambda s: s.attributes["agentperf.call"])
    assert [(c.start_time, c.end_time) for c in calls] == [
        (ns(0.0), ns(0.05)),
        (ns(0.12), ns(0.3)),  # the actual start, not the intended 0.1
        (ns(0.2), ns(0.5)),
    ]
    (run,) = spans["agentperf run triage"]
    assert (run.start_time, run.end_time) == (ns(0.0), ns(0.5))
    timed = [s for s in spans["chat gpt-4o-mini"] if "agentperf.timed" not in s.attributes]
    assert [(s.start_time, s.end_time) for s in timed] == [(ns(0.001), ns(0.03))]
    (tool,) = spans["execute_tool search"]
    assert (tool.start_time, tool.end_time) == (ns(0.02), ns(0.04))


def test_an_operation_that_was_not_timed_spans_its_call_and_says_so(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    send(provider, make_record(make_calls()))
    chats = by_name(exporter.get_finished_spans())["chat gpt-4o-mini"]
    (untimed,) = [s for s in chats if "agentperf.timed" in s.attributes]
    assert untimed.attributes["agentperf.timed"] is False
    assert (untimed.start_time, untimed.end_time) == (ns(0.0), ns(0.05))
    assert untimed.attributes["gen_ai.usage.input_tokens"] == 5
    assert "gen_ai.provider.name" not in untimed.attributes  # unknown: left out, not "None"


def test_genai_attributes_on_calls_llm_requests_and_tools(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    send(provider, make_record(make_calls()))
    spans = by_name(exporter.get_finished_spans())
    first = next(s for s in spans["invoke_agent triage"] if s.attributes["agentperf.call"] == 0)
    assert dict(first.attributes) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "triage",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 15,
        "gen_ai.usage.output_tokens": 6,
        "agentperf.test": "test_agent.py::test_triage",
        "agentperf.run": "triage",
        "agentperf.call": 0,
        "agentperf.intended_start": 0.0,
        "agentperf.ttft": 0.02,
        "agentperf.cost_usd": 0.0012,
    }
    streamed = next(s for s in spans["chat gpt-4o-mini"] if "agentperf.timed" not in s.attributes)
    assert dict(streamed.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 4,
        "gen_ai.response.time_to_first_chunk": 0.011,
    }
    (tool,) = spans["execute_tool search"]
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search",
    }
    (run,) = spans["agentperf run triage"]
    assert run.attributes["agentperf.status"] == "PASS"
    assert run.attributes["agentperf.requests"] == 3
    assert run.status.status_code is StatusCode.UNSET


def test_failed_and_timed_out_calls_have_error_type_and_error_status(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    send(provider, make_record(make_calls(), status=RunStatus.FAIL))
    spans = by_name(exporter.get_finished_spans())
    calls = sorted(spans["invoke_agent triage"], key=lambda s: s.attributes["agentperf.call"])
    assert [c.status.status_code for c in calls] == [
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.ERROR,
    ]
    assert [c.attributes.get("error.type") for c in calls] == [
        None,
        "RateLimitError",
        "Timeout",
    ]
    (failed_tool,) = spans["execute_tool fetch sk-proj-***"]
    assert failed_tool.status.status_code is StatusCode.ERROR
    assert failed_tool.attributes["error.type"] == "_OTHER"
    (run,) = spans["agentperf run triage"]
    assert run.status.status_code is StatusCode.ERROR
    assert run.attributes["agentperf.status"] == "FAIL"


def test_a_failed_call_without_a_recorded_type_gets_the_fallback_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    calls = make_calls()
    untyped = CallTable(**{**calls.__dict__, "error_rows": ints(), "error_types": ()})
    send(provider, make_record(untyped))
    failed = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "invoke_agent triage" and s.status.status_code is StatusCode.ERROR
    ]
    assert [s.attributes["error.type"] for s in failed] == ["_OTHER", "_OTHER"]


def test_every_string_from_the_test_is_redacted(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    record = make_record(make_calls(), name=f"run {KEY}")
    record = RunRecord(
        nodeid=f"test_agent.py::test_x[{KEY}]",
        name=record.name,
        status=record.status,
        result=record.result,
    )
    send(provider, record)
    spans = exporter.get_finished_spans()
    seen = [s.name for s in spans] + [
        v for s in spans for v in s.attributes.values() if isinstance(v, str)
    ]
    assert not [text for text in seen if "abcdefghijkl" in text]
    assert "invoke_agent run sk-proj-***" in seen
    assert "test_agent.py::test_x[sk-proj-***]" in seen


@st.composite
def call_tables(draw: st.DrawFn) -> CallTable:
    """Random call tables: calls anywhere in a 100 s run, each with 0-3 LLM requests or tool
    calls, timed or not, ok or not."""
    n = draw(st.integers(1, 12))
    times = st.floats(0.0, 100.0, allow_nan=False)
    actual = [draw(times) for _ in range(n)]
    end = [a + draw(st.floats(0.0, 5.0)) for a in actual]
    status = [draw(st.sampled_from([0, 0, 1, 2])) for _ in range(n)]
    rows: list[tuple[int, int, float, float, int]] = []
    for i in range(n):
        for _ in range(draw(st.integers(0, 3))):
            timed = draw(st.booleans())
            start = draw(st.floats(actual[i], end[i])) if timed else NAN
            rows.append(
                (
                    i,
                    draw(st.sampled_from([CHAT, TOOL])),
                    start,
                    start if timed else NAN,
                    draw(st.sampled_from([0, 1])),
                )
            )
    failed = [i for i in range(n) if status[i]]
    return CallTable(
        t0_unix=draw(st.floats(1.5e9, 2e9)),
        start=floats(*actual),
        actual=floats(*actual),
        end=floats(*end),
        status=codes(*status),
        ttft=floats(*[NAN] * n),
        input_tokens=ints(*[-1] * n),
        output_tokens=ints(*[-1] * n),
        cost=floats(*[NAN] * n),
        model=ints(*[-1] * n),
        error_rows=ints(*failed),
        error_types=tuple("Timeout" if status[i] == 2 else "ValueError" for i in failed),
        names=("m",),
        spans=SpanTable(
            call=ints(*[r[0] for r in rows]),
            kind=codes(*[r[1] for r in rows]),
            name=ints(*[0] * len(rows)),
            provider=ints(*[-1] * len(rows)),
            start=floats(*[r[2] for r in rows]),
            end=floats(*[r[3] for r in rows]),
            input_tokens=ints(*[-1] * len(rows)),
            output_tokens=ints(*[-1] * len(rows)),
            ttft=floats(*[NAN] * len(rows)),
            ok=codes(*[r[4] for r in rows]),
        ),
    )


@settings(max_examples=40, deadline=None)
@given(call_tables())
def test_any_table_gives_one_trace_per_call_with_its_operations_inside_at_the_tables_times(
    calls: CallTable,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        send(provider, make_record(calls))
    finally:
        provider.shutdown()
    spans = exporter.get_finished_spans()
    assert len(spans) == 1 + len(calls) + len(calls.spans)
    roots = {s.attributes["agentperf.call"]: s for s in spans if s.name.startswith("invoke_agent")}
    assert sorted(roots) == list(range(len(calls)))
    assert len({s.context.trace_id for s in roots.values()}) == len(calls)
    row_of = {s.context.span_id: i for i, s in roots.items()}
    children = sorted(
        (s for s in spans if s.parent is not None),
        key=lambda s: (row_of[s.parent.span_id], s.start_time),
    )
    error_type = calls.error_type()
    for i, span in roots.items():
        assert span.parent is None
        assert span.start_time == otel.unix_ns(calls.t0_unix, float(calls.actual[i]))
        assert span.end_time == otel.unix_ns(calls.t0_unix, float(calls.end[i]))
        failed = int(calls.status[i]) != 0
        assert (span.status.status_code is StatusCode.ERROR) is failed
        assert span.attributes.get("error.type") == error_type[i]
    assert sorted(row_of[s.parent.span_id] for s in children) == calls.spans.call.tolist()
    for s in children:
        call = roots[row_of[s.parent.span_id]]
        if s.attributes.get("agentperf.timed") is False:
            assert (s.start_time, s.end_time) == (call.start_time, call.end_time)
        failed = s.status.status_code is StatusCode.ERROR
        assert failed == (s.attributes.get("error.type") == "_OTHER")
    for i in range(len(calls)):
        rows = [r for r in range(len(calls.spans)) if calls.spans.call[r] == i]
        table = sorted(
            (
                otel.unix_ns(calls.t0_unix, float(calls.spans.start[r])),
                otel.unix_ns(calls.t0_unix, float(calls.spans.end[r])),
            )
            for r in rows
            if not math.isnan(calls.spans.start[r])
        )
        sent = sorted(
            (s.start_time, s.end_time)
            for s in children
            if row_of[s.parent.span_id] == i and "agentperf.timed" not in s.attributes
        )
        assert sent == table
        assert sorted(
            s.status.status_code is StatusCode.ERROR
            for s in children
            if row_of[s.parent.span_id] == i
        ) == sorted(not calls.spans.ok[r] for r in rows)


def test_runs_without_a_call_table_make_no_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    line = send(provider, make_record(None), make_record(CallTable()))
    assert exporter.get_finished_spans() == ()
    assert line.startswith("0 ")


def long_run(n: int) -> CallTable:
    """``n`` calls of 10 ms, one every ms, with nothing inside."""
    starts = numpy.arange(n, dtype=numpy.float64) / 1000
    return CallTable(
        t0_unix=T0,
        start=starts,
        actual=starts,
        end=starts + 0.01,
        status=numpy.zeros(n, dtype=numpy.int8),
        ttft=numpy.full(n, NAN),
        input_tokens=numpy.full(n, -1, dtype=numpy.int64),
        output_tokens=numpy.full(n, -1, dtype=numpy.int64),
        cost=numpy.full(n, NAN),
        model=numpy.full(n, -1, dtype=numpy.int64),
    )


def test_spans_are_flushed_every_flush_every_spans(provider: TracerProvider) -> None:
    flushes: list[int] = []

    def flush() -> bool:
        flushes.append(1)
        return True

    made = otel.emit_spans(provider.get_tracer("t"), [make_record(long_run(5000))], flush=flush)
    assert made == 5001
    assert len(flushes) == 5001 // otel.FLUSH_EVERY == 4


def test_a_batch_processor_loses_no_span_of_a_long_run() -> None:
    """Spans are made in a loop, faster than a slow exporter takes them; without a flush every
    ``FLUSH_EVERY`` spans the batch processor's queue (2048 by default) would drop the rest."""

    class Slow(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            if not self.get_finished_spans():  # the first batch takes long
                time.sleep(2.0)
            return super().export(spans)

    exporter = Slow()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        send(provider, make_record(long_run(6000)))
        assert len(exporter.get_finished_spans()) == 6001
    finally:
        provider.shutdown()


def test_a_provider_that_does_not_flush_fails_the_report(exporter: InMemorySpanExporter) -> None:
    class Stuck(TracerProvider):
        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return False

    provider = Stuck()
    writer = otel.OtelWriter(provider)
    line, failed = write_report(
        writer.label,
        writer.target,
        lambda: writer.write([make_record(make_calls())], ReportContext(plugin_version="0")),
    )
    assert failed
    assert line == (
        "ERROR: OpenTelemetry traces not written: "
        "the configured Stuck did not flush 8 spans within 30 s"
    )


def test_without_the_extra_the_report_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    writer = otel.create(None, {})
    with pytest.raises(otel.OtelUnavailable, match=r"pip install 'pytest-agentperf\[otel\]'"):
        writer.write([make_record(make_calls())], ReportContext(plugin_version="0"))
    assert issubclass(otel.OtelUnavailable, AgentPerfError)


def test_the_writer_is_a_flag_that_keeps_the_call_table() -> None:
    (entry,) = [e for e in WRITERS if e.name == "otel"]
    assert entry.option == "--agentperf-otel"
    assert entry.metavar is None
    assert entry.needs_calls
    assert isinstance(entry.factory()(None, {}), otel.OtelWriter)


def test_without_a_configured_provider_none_is_found() -> None:
    """This process never sets the global provider (the plugin must not either)."""
    assert otel.configured_provider() is None


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "http://localhost:4318/v1/traces"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:4318/"},
            "https://otel.example:4318/v1/traces",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "https://a.example",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://b.example/otlp/v1/traces",
            },
            "https://b.example/otlp/v1/traces",
        ),
    ],
)
def test_the_otlp_endpoint_is_resolved_as_the_exporter_does(
    environ: dict[str, str], url: str
) -> None:
    assert otel.otlp_endpoint(environ) == url


def test_unix_ns_keeps_sub_microsecond_precision() -> None:
    assert otel.unix_ns(T0, 0.000_000_3) == ns(0.000_000_3)
    assert otel.unix_ns(T0, 123.456_789_012) == ns(123.456_789_012)


# ----------------------------------------------------------------------------- OTLP over HTTP


class Collector(http.server.ThreadingHTTPServer):
    """A tiny OTLP/HTTP receiver on a free loopback port: keeps every POST /v1/traces body."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[bytes] = []
        self.status = status
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        out = []
        for body in self.bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    out.extend((resource_spans.resource, s) for s in scope_spans.spans)
        return out


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces" and self.server.status == 200:
            self.server.bodies.append(body)
        self.send_response(self.server.status if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_without_a_provider_spans_go_over_otlp_http_to_the_endpoint_of_the_environment(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    writer = otel.OtelWriter(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    line = writer.write([make_record(make_calls())], ReportContext(plugin_version="0.1.0"))
    assert line == f"8 OpenTelemetry spans sent to {collector.url}/v1/traces"
    received = collector.spans()
    assert sorted(s.name for _, s in received) == sorted(
        ["agentperf run triage"]
        + ["invoke_agent triage"] * 3
        + ["chat gpt-4o-mini"] * 2
        + ["execute_tool search", "execute_tool fetch sk-proj-***"]
    )
    resource, _ = received[0]
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == (
        "pytest-agentperf"
    )
    first = next(
        s
        for _, s in received
        if s.name == "invoke_agent triage" and attrs(s)["agentperf.call"] == 1
    )
    assert attrs(first)["error.type"] == "RateLimitError"
    assert attrs(first)["gen_ai.operation.name"] == "invoke_agent"
    assert (first.start_time_unix_nano, first.end_time_unix_nano) == (ns(0.12), ns(0.3))
    assert first.status.code == first.status.STATUS_CODE_ERROR
    chat = next(
        s
        for _, s in received
        if s.name == "chat gpt-4o-mini" and "gen_ai.response.time_to_first_chunk" in attrs(s)
    )
    assert attrs(chat)["gen_ai.usage.input_tokens"] == 10
    assert attrs(chat)["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.011)
    assert chat.parent_span_id != b""


def test_an_endpoint_that_refuses_the_spans_fails_the_report_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Collector(status=400)  # not retried by the exporter
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        writer = otel.OtelWriter(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": server.url})
        line, failed = write_report(
            writer.label,
            writer.target,
            lambda: writer.write([make_record(make_calls())], ReportContext(plugin_version="0")),
        )
    finally:
        server.shutdown()
        server.server_close()
    assert failed
    assert line is not None
    prefix = "ERROR: OpenTelemetry traces not written: 8 of 8 spans not sent to"
    assert line.startswith(f"{prefix} {server.url}/v1/traces: ")
    assert "400" in line


def test_after_a_failed_export_no_more_spans_are_made() -> None:
    """An endpoint that is down costs one export, not one per batch of a long run."""
    server = Collector(status=400)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        writer = otel.OtelWriter(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": server.url})
        with pytest.raises(otel.TraceExportError) as failure:
            writer.write([make_record(long_run(5000))], ReportContext(plugin_version="0"))
    finally:
        server.shutdown()
        server.server_close()
    message = str(failure.value)
    assert message.startswith(
        f"1024 of 1024 spans not sent to {server.url}/v1/traces (3977 more not made after that): "
    )
    assert otel.count_spans([make_record(long_run(5000))]) == 5001


def test_an_endpoint_nobody_listens_on_fails_the_report_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = Collector()  # bound, then closed: the port is free and refuses connections
    url = server.url
    server.server_close()
    # long enough for one retry: the exporter logs the refused connection before it retries
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3")
    writer = otel.OtelWriter(environ={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url + "/v1/traces"})
    with pytest.raises(otel.TraceExportError, match=f"spans not sent to {url}/v1/traces") as e:
        writer.write([make_record(make_calls())], ReportContext(plugin_version="0"))
    assert "Connection refused" in str(e.value)  # the exporter's reason, from its log


# ----------------------------------------------------------------------------- end to end

# The session's own provider, set in conftest.py as a user would; the spans it received are
# written to spans.json when the controller ends (workers write nothing).
CONFTEST = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)

def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    spans = [
        {
            "name": s.name,
            "span_id": s.context.span_id,
            "trace_id": s.context.trace_id,
            "parent": s.parent.span_id if s.parent else None,
            "start": s.start_time,
            "end": s.end_time,
            "status": s.status.status_code.name,
            "attributes": dict(s.attributes),
        }
        for s in EXPORTER.get_finished_spans()
    ]
    with open("spans.json", "w") as f:
        json.dump(spans, f)
"""

# Every call records an LLM request (record_usage: not timed) and a timed tool call; every
# fourth call fails.
PERF_TESTS = """
import time
import pytest
import pytest_agentperf
from pytest_agentperf.usage import record_tool

def agent(k):
    time.sleep(0.002)
    pytest_agentperf.record_usage(10 + k, 5, model="gpt-4o-mini")
    t = time.perf_counter()
    time.sleep(0.001)
    record_tool("search", time.perf_counter() - t, True)
    if k % 4 == 3:
        raise ValueError("bad input")
    return "ok"

@pytest.mark.parametrize("i", [0, 1])
def test_agent(agentperf, i):
    agentperf.run(agent, list(range(8)), requests=8, warmup=0, name=f"run{i}", check=False)
"""


def run_project(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The perf tests in a fresh interpreter (the global provider can be set once per
    process, and this one must never have one)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_perf=PERF_TESTS)
    return pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider", *args)


def read_spans(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    import json

    spans: list[dict[str, Any]] = json.loads((pytester.path / "spans.json").read_text())
    return spans


@pytest.mark.parametrize("xdist", [False, True], ids=["one-process", "n2"])
def test_end_to_end_spans_reach_the_provider_configured_in_conftest(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    pytester.makeconftest(CONFTEST)
    result = run_project(pytester, "--agentperf-otel", *(["-n", "2"] if xdist else []))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["agentperf: 50 OpenTelemetry spans sent to the configured TracerProvider"]
    )
    spans = read_spans(pytester)
    # per run: 1 run span, 8 calls, each with one chat and one tool span
    assert len(spans) == 2 * (1 + 8 * 3)
    for run in ("run0", "run1"):
        calls = [
            s
            for s in spans
            if s["name"] == f"invoke_agent {run}"
            and s["attributes"]["agentperf.test"].startswith("test_perf.py::test_agent[")
        ]
        assert len(calls) == 8
        assert sorted(c["attributes"]["agentperf.call"] for c in calls) == list(range(8))
        failed = [c for c in calls if c["status"] == "ERROR"]
        assert len(failed) == 2
        assert {c["attributes"]["error.type"] for c in failed} == {"ValueError"}
        for call in calls:
            assert call["parent"] is None
            assert call["end"] > call["start"]
            children = [s for s in spans if s["parent"] == call["span_id"]]
            names = sorted(s["name"] for s in children)
            assert names == ["chat gpt-4o-mini", "execute_tool search"]
            chat, tool = sorted(children, key=lambda s: s["name"])
            assert chat["attributes"]["agentperf.timed"] is False  # record_usage has no times
            assert (chat["start"], chat["end"]) == (call["start"], call["end"])
            assert chat["attributes"]["gen_ai.usage.output_tokens"] == 5
            assert "agentperf.timed" not in tool["attributes"]
            assert call["start"] <= tool["start"] < tool["end"] <= call["end"]
    # the LLM request of call k recorded 10 + k input tokens
    chats = [s for s in spans if s["name"] == "chat gpt-4o-mini"]
    assert sorted(s["attributes"]["gen_ai.usage.input_tokens"] for s in chats) == sorted(
        list(range(10, 18)) * 2
    )


def test_end_to_end_without_the_flag_no_span_is_made(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    run_project(pytester).assert_outcomes(passed=2)
    assert read_spans(pytester) == []


def test_end_to_end_over_otlp_http_from_the_environment(
    pytester: pytest.Pytester, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "triage-bench")
    result = run_project(pytester, "--agentperf-otel")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [f"agentperf: 50 OpenTelemetry spans sent to {collector.url}/v1/traces"]
    )
    received = collector.spans()
    assert len(received) == 50
    services = {
        kv.value.string_value
        for resource, _ in received
        for kv in resource.attributes
        if kv.key == "service.name"
    }
    assert services == {"triage-bench"}
    calls = [s for _, s in received if s.name.startswith("invoke_agent ")]
    assert len(calls) == 16
    assert {attrs(c)["gen_ai.agent.name"] for c in calls} == {"run0", "run1"}
    tools = [s for _, s in received if s.name == "execute_tool search"]
    assert len(tools) == 16
    assert all(attrs(t)["gen_ai.tool.name"] == "search" for t in tools)


def test_end_to_end_an_unreachable_endpoint_fails_the_session_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Collector()  # bound, then closed: nobody listens on its port
    url = server.url
    server.server_close()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url}/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    result = run_project(pytester, "--agentperf-otel")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [f"agentperf: ERROR: OpenTelemetry traces not written: 50 of 50 spans not sent to {url}*"]
    )
    assert "Traceback" not in result.stdout.str()


GATED_TESTS = """
import pytest
from agents import make

@pytest.mark.agent_perf(requests=30)
def test_one(agentperf):
    agentperf.run(make("one"), name="main")

@pytest.mark.agent_perf(requests=30, p95="1ms")
def test_budget(agentperf):
    agentperf.run(make("two"), name="main")
"""
# The machine is reported quiet (see test_gate_plugin.py): the other xdist worker's load must
# not turn the regression INCONCLUSIVE.


def test_end_to_end_a_broken_budget_and_a_regression_mark_their_run_spans(
    agents: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DELAY_ONE", raising=False)
    monkeypatch.delenv("DELAY_TWO", raising=False)
    agents.makeconftest(CONFTEST + QUIET_MACHINE)
    agents.makepyfile(test_perf=GATED_TESTS)
    args = ("-p", "no:randomly", "-p", "no:cacheprovider")
    saved = agents.runpytest_subprocess(*args, "--agentperf-baseline", "-k", "test_one")
    saved.assert_outcomes(passed=1, deselected=1)
    monkeypatch.setenv("DELAY_ONE", "0.05")  # 5x slower than its baseline
    result = agents.runpytest_subprocess(*args, "--agentperf-otel", "--agentperf-tolerance=100%")
    result.assert_outcomes(failed=2)
    runs = {
        s["attributes"]["agentperf.test"]: s
        for s in read_spans(agents)
        if s["name"] == "agentperf run main"
    }
    assert runs["test_perf.py::test_one"]["attributes"]["agentperf.status"] == "REGRESSED"
    assert runs["test_perf.py::test_budget"]["attributes"]["agentperf.status"] == "FAIL"
    assert {s["status"] for s in runs.values()} == {"ERROR"}
    calls = [s for s in read_spans(agents) if s["name"] == "invoke_agent main"]
    assert len(calls) == 60
    assert {s["status"] for s in calls} == {"UNSET"}  # the calls themselves all succeeded
