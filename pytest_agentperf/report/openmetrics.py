"""``--agentperf-openmetrics=PATH``: the session's runs as Prometheus metrics (OpenMetrics text).

The metric families are built here, from the run records, with ``prometheus-client`` (the
optional extra ``[prometheus]``, imported only when this output is on); the Pushgateway push
(``report.pushgateway``) sends the same families. Names follow the OpenTelemetry GenAI semantic
conventions mapped to Prometheus (``gen_ai.client.operation.duration`` ->
``gen_ai_client_operation_duration_seconds``, with the conventions' bucket boundaries), plus
``agentperf_*`` families for what the conventions do not cover (outcomes, cost, budgets).

Every run of a session is one set of label values (``test``, ``run``); the totals of a run
(calls, tokens, cost) are gauges, not counters: they describe one finished run, they do not
grow across sessions, and a gauge keeps its type in both the OpenMetrics and the classic
Prometheus text format (node-exporter's textfile collector reads the classic one, which would
see a counter's ``_total`` samples as untyped).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import FileKind, write_atomic
from ..errors import AgentPerfError
from ..record import RunRecord
from ..redact import redact
from ..results import CHAT, CallTable, FloatArray
from .protocol import ReportContext

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import CollectorRegistry

DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
"""Seconds: the GenAI conventions' explicit bucket boundaries for operation durations (also
used for the time to the first chunk)."""
TOKEN_BUCKETS: tuple[float, ...] = tuple(float(4**i) for i in range(14))
"""Tokens: the GenAI conventions' boundaries for token usage, 1, 4, 16, ... 67108864."""
QUANTILES: tuple[tuple[str, str], ...] = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
"""The ``quantile`` label value and the ``Stats`` field of the percentile gauges."""

INVOKE_AGENT, CHAT_OPERATION = "invoke_agent", "chat"
"""``gen_ai_operation_name``: a measured call of the agent, one LLM request inside it."""
OUTCOMES = ("ok", "error", "timeout")

RUN_LABELS = ("test", "run")
MODEL = "gen_ai_request_model"
OPERATION = "gen_ai_operation_name"


def _is_ours(path: Path) -> bool:
    """An OpenMetrics text ending with ``# EOF`` that holds our families."""
    with open(path, "rb") as f:
        data = f.read(64 * 1024 * 1024)
    data = data.rstrip()
    # a session without runs writes "# EOF" alone
    return data == b"# EOF" or (data.endswith(b"\n# EOF") and b"\n# TYPE agentperf_" in data)


KIND = FileKind("pytest-agentperf OpenMetrics file", _is_ours)
"""Only such a file (or none, or an empty one) is replaced."""


def go_float(value: float) -> str:
    """A bucket bound as the Prometheus clients write it (``0.01``, ``1.0``, ``1.6777216e+07``)."""
    from prometheus_client.utils import floatToGoString

    out: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return out


class _Histograms:
    """Observations of one histogram family, gathered per set of label values (two runs with
    the same labels, e.g. a test's run made twice, add up instead of clashing)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], list[FloatArray]] = {}

    def observe(self, labels: tuple[str, ...], values: Iterable[float] | FloatArray) -> None:
        array = np.asarray(values, dtype=np.float64)
        array = array[np.isfinite(array)]
        if array.size:
            self.values.setdefault(labels, []).append(array)

    def family(
        self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
    ) -> Metric | None:
        """The family, or None when nothing was observed."""
        from prometheus_client.metrics_core import HistogramMetricFamily

        if not self.values:
            return None
        family = HistogramMetricFamily(name, documentation, labels=list(labels))
        edges = np.asarray(bounds, dtype=np.float64)
        for key, parts in self.values.items():
            values = np.sort(np.concatenate(parts))
            # cumulative: observations <= each upper bound, then all of them at +Inf
            counts = np.searchsorted(values, edges, side="right").tolist()
            buckets = [(go_float(b), float(c)) for b, c in zip(bounds, counts, strict=True)]
            buckets.append(("+Inf", float(values.size)))
            family.add_metric(list(key), buckets, float(values.sum()))
        return family


class _Gauges:
    """Values of one gauge family per set of label values: ``set`` keeps the last one given
    (a percentile, a status), ``add`` sums (a total)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, ...], float] = {}

    def set(self, labels: tuple[str, ...], value: float | None) -> None:
        if value is not None and math.isfinite(value):
            self.values[labels] = float(value)

    def add(self, labels: tuple[str, ...], value: float | None) -> None:
        """A total: two runs with the same labels add up."""
        if value is not None and math.isfinite(value):
            self.values[labels] = self.values.get(labels, 0.0) + float(value)

    def family(
        self, name: str, documentation: str, labels: Sequence[str], unit: str = ""
    ) -> Metric | None:
        from prometheus_client.metrics_core import GaugeMetricFamily

        if not self.values:
            return None
        family = GaugeMetricFamily(name, documentation, labels=list(labels), unit=unit)
        for key, value in self.values.items():
            family.add_metric(list(key), value)
        return family


def _label(value: object) -> str:
    """A label value: every text passes through ``redact``."""
    return redact("" if value is None else str(value))


def _run_model(record: RunRecord) -> str:
    """The run's model when it used exactly one ("" when none or several)."""
    models = list(record.result.usage.by_model)
    return models[0] if len(models) == 1 else ""


class _Families:
    """Every family, filled run by run."""

    def __init__(self) -> None:
        self.duration = _Histograms()
        self.tokens = _Histograms()
        self.ttft = _Histograms()
        self.calls = _Gauges()
        self.errors = _Gauges()
        self.token_totals = _Gauges()
        self.cost = _Gauges()
        self.latency = _Gauges()
        self.ttft_quantiles = _Gauges()
        self.throughput = _Gauges()
        self.run_duration = _Gauges()
        self.status = _Gauges()
        self.budget_passed = _Gauges()
        self.budget_limit = _Gauges()
        self.budget_value = _Gauges()
        self.change = _Gauges()

    def add(self, record: RunRecord) -> None:
        result = record.result
        run = (_label(record.nodeid), _label(record.name))
        calls = result.calls
        if calls is not None and len(calls):
            self._add_calls(run, calls)
        else:  # no per-call table: the run's successful latencies and TTFTs, its one model
            model = _label(_run_model(record))
            self.duration.observe((*run, INVOKE_AGENT, model, ""), result.latency.samples)
            self.ttft.observe((*run, INVOKE_AGENT, model), result.ttft.samples)
        ok = result.requests - result.errors
        outcomes = (ok, result.errors - result.timeouts, result.timeouts)
        for outcome, count in zip(OUTCOMES, outcomes, strict=True):
            self.calls.add((*run, outcome), count)
        for error_type, count in result.error_types.items():
            self.errors.add((*run, _label(error_type)), count)
        self._add_usage(record, run)
        for label, field in QUANTILES:
            self.latency.set((*run, label), getattr(result.latency, field))
            if result.ttft.n:
                self.ttft_quantiles.set((*run, label), getattr(result.ttft, field))
        self.throughput.set(run, result.throughput)
        self.run_duration.set(run, result.duration)
        self.status.set((*run, _label(record.status.value)), 1.0)
        for budget in result.budgets:
            key = (*run, _label(budget.name))
            self.budget_passed.set(key, 1.0 if budget.passed else 0.0)
            self.budget_limit.set(key, budget.limit)
            self.budget_value.set(key, budget.value)
        if record.comparison is not None:
            for metric in record.comparison.metrics.values():
                self.change.set((*run, _label(metric.key), metric.kind.value), metric.change)

    def _add_calls(self, run: tuple[str, str], calls: CallTable) -> None:
        """Per call: its duration (actual start to end) and TTFT; per LLM request: tokens and,
        when the integration timed it, its duration."""
        models = np.asarray([_label(calls.name(i)) for i in range(len(calls.names))] + [""])
        call_model = models[calls.model]  # -1 (no model) picks the trailing ""
        error_type = np.asarray([_label(t) for t in calls.error_type()], dtype=str)
        duration = calls.end - calls.actual
        for model in np.unique(call_model).tolist():
            mine = call_model == model
            for err in np.unique(error_type[mine]).tolist():  # "" for the calls that succeeded
                rows = mine & (error_type == err)
                self.duration.observe((*run, INVOKE_AGENT, model, err), duration[rows])
            self.ttft.observe((*run, INVOKE_AGENT, model), calls.ttft[mine])
        spans = calls.spans
        chat = spans.kind == CHAT
        if np.any(chat):
            span_model = models[spans.name]
            for model in np.unique(span_model[chat]).tolist():
                rows = chat & (span_model == model)
                for token_type, column in (
                    ("input", spans.input_tokens),
                    ("output", spans.output_tokens),
                ):
                    known = column[rows]
                    self.tokens.observe(
                        (*run, CHAT_OPERATION, model, token_type), known[known >= 0]
                    )
                for ok, err in ((1, ""), (0, "_OTHER")):  # a span knows no error type
                    timed = rows & (spans.ok == ok)
                    self.duration.observe(
                        (*run, CHAT_OPERATION, model, err), spans.end[timed] - spans.start[timed]
                    )
        else:  # no LLM request seen one by one: each call's tokens (-1: unknown)
            for model in np.unique(call_model).tolist():
                mine = call_model == model
                for token_type, column in (
                    ("input", calls.input_tokens),
                    ("output", calls.output_tokens),
                ):
                    known = column[mine]
                    self.tokens.observe((*run, INVOKE_AGENT, model, token_type), known[known >= 0])

    def _add_usage(self, record: RunRecord, run: tuple[str, str]) -> None:
        """The run's token and dollar totals, per model where known."""
        usage, cost = record.result.usage, record.result.cost
        if usage.by_model:
            for model, m in usage.by_model.items():
                self.token_totals.add((*run, _label(model), "input"), m.input_tokens)
                self.token_totals.add((*run, _label(model), "output"), m.output_tokens)
        elif usage.known:
            self.token_totals.add((*run, "", "input"), usage.input_tokens)
            self.token_totals.add((*run, "", "output"), usage.output_tokens)
        priced = {m: c for m, c in cost.by_model.items() if c is not None}
        if priced:
            for model, dollars in priced.items():
                self.cost.add((*run, _label(model)), dollars)
        elif cost.total is not None:
            self.cost.add((*run, ""), cost.total)

    def families(self) -> Iterator[Metric]:
        run = RUN_LABELS
        made = (
            self.duration.family(
                "gen_ai_client_operation_duration_seconds",
                "Duration of GenAI operations: each measured call of the agent (invoke_agent) "
                "and each LLM request the integrations timed (chat)",
                (*run, OPERATION, MODEL, "error_type"),
                DURATION_BUCKETS,
            ),
            self.tokens.family(
                "gen_ai_client_token_usage",
                "Tokens used per LLM request (chat), or per measured call (invoke_agent) when "
                "the requests were not seen one by one",
                (*run, OPERATION, MODEL, "gen_ai_token_type"),
                TOKEN_BUCKETS,
            ),
            self.ttft.family(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Time from a call's start to the first chunk of its streamed answer",
                (*run, OPERATION, MODEL),
                DURATION_BUCKETS,
            ),
            self.calls.family(
                "agentperf_calls", "Measured calls of the run by outcome", (*run, "outcome")
            ),
            self.errors.family(
                "agentperf_errors", "Failed calls of the run by error type", (*run, "error_type")
            ),
            self.token_totals.family(
                "agentperf_tokens",
                "Tokens of the run's measured calls",
                (*run, MODEL, "gen_ai_token_type"),
            ),
            self.cost.family(
                "agentperf_cost_usd", "Cost of the run's measured calls", (*run, MODEL), "usd"
            ),
            self.latency.family(
                "agentperf_latency_seconds",
                "Latency percentiles of the run's successful calls",
                (*run, "quantile"),
            ),
            self.ttft_quantiles.family(
                "agentperf_ttft_seconds",
                "Time-to-first-chunk percentiles of the run's successful calls",
                (*run, "quantile"),
            ),
            self.throughput.family(
                "agentperf_throughput", "Successful calls per second of the run", run
            ),
            self.run_duration.family(
                "agentperf_run_duration_seconds", "Wall time of the run's measured phase", run
            ),
            self.status.family(
                "agentperf_run_status",
                "1 for the run's status (PASS, FAIL, REGRESSED, ...), as in the terminal table",
                (*run, "status"),
            ),
            self.budget_passed.family(
                "agentperf_budget_passed", "1 when the budget held, 0 when broken", (*run, "budget")
            ),
            self.budget_limit.family(
                "agentperf_budget_limit",
                "The budget's limit (seconds, dollars, ...)",
                (*run, "budget"),
            ),
            self.budget_value.family(
                "agentperf_budget_value", "The measured value the budget judged", (*run, "budget")
            ),
            self.change.family(
                "agentperf_baseline_change",
                "Change against the baseline: now/baseline (ratio) or now-baseline (difference)",
                (*run, "metric", "kind"),
            ),
        )
        return (f for f in made if f is not None)


class RecordsCollector:
    """A ``prometheus_client`` collector of the session's run records."""

    def __init__(self, records: Sequence[RunRecord]) -> None:
        self.records = tuple(records)

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for record in self.records:
            families.add(record)
        return families.families()


def registry(records: Sequence[RunRecord]) -> CollectorRegistry:
    """A registry holding the families of ``records`` (and nothing else: no process metrics)."""
    from prometheus_client.registry import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(RecordsCollector(records))
    return reg


def text(records: Sequence[RunRecord]) -> str:
    """The OpenMetrics text of ``records`` (ends with ``# EOF``)."""
    from prometheus_client.openmetrics.exposition import generate_latest

    out: bytes = generate_latest(registry(records))  # type: ignore[no-untyped-call]
    return out.decode("utf-8")


def require_client(output: str) -> None:
    """Raise ``AgentPerfError`` saying how to install ``prometheus-client`` when it is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise AgentPerfError(
            f"the {output} needs prometheus-client: pip install 'pytest-agentperf[prometheus]'"
        ) from None


class OpenMetricsWriter:
    """``--agentperf-openmetrics=PATH``: the ``ReportWriter`` of the OpenMetrics file."""

    label = "OpenMetrics file"

    def __init__(self, path: str) -> None:
        self.target = path

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        require_client(self.label)
        written = write_atomic(self.target, text(records), kind=KIND, root=context.root)
        return f"{self.label} written to {written}"


def create(value: str | None, options: Mapping[str, Any]) -> OpenMetricsWriter:
    """The writer of ``--agentperf-openmetrics=value``."""
    if not value:
        raise ValueError("the OpenMetrics file needs a path")
    return OpenMetricsWriter(value)
