"""Result objects: plain frozen dataclasses that serialise to JSON.

The same objects feed the terminal table, the JSON report and the baseline, so no report
recomputes a statistic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from .codec import from_jsonable, to_jsonable

if TYPE_CHECKING:
    from .baseline.comparison import Comparison

FloatArray = npt.NDArray[np.float64]
StatusArray = npt.NDArray[np.int8]
IntArray = npt.NDArray[np.int64]


def _empty_samples() -> FloatArray:
    a = np.zeros(0, dtype=np.float64)
    a.flags.writeable = False
    return a


def _frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Stats:
    """Summary of a sample of durations in seconds; None where the sample is empty."""

    n: int = 0
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    stdev: float | None = None
    samples: FloatArray = field(default_factory=_empty_samples, repr=False, compare=False)

    def percentile(self, q: float) -> float | None:
        """Percentile ``q`` (0-100) of the samples, numpy's default (linear) method."""
        if self.n == 0:
            return None
        return float(np.percentile(self.samples, q))


@dataclass(frozen=True)
class LoadShape:
    """What load a run applied; two runs are comparable only when their shapes match."""

    requests: int | None
    concurrency: int | None
    rate: float | None
    arrival: str
    duration: float | None
    warmup: int
    timeout: float
    stages: tuple[tuple[float, float], ...] = ()
    """(duration in seconds, target) of each stage (``stages=``); empty: one steady level."""


@dataclass(frozen=True)
class ModelUsage:
    """Token totals of one model within a run."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0

    JSON_PROPERTIES: ClassVar[tuple[str, ...]] = ("total_tokens",)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class PerCallUsage:
    """Mean tokens per measured call."""

    input_tokens: float | None = None
    output_tokens: float | None = None
    total_tokens: float | None = None


@dataclass(frozen=True)
class Usage:
    """Token use of a run; all None when no call reported usage (unknown, not zero)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    calls_with_usage: int = 0
    per_call: PerCallUsage = field(default_factory=PerCallUsage)
    by_model: Mapping[str, ModelUsage] = field(default_factory=_frozen_map)

    @property
    def known(self) -> bool:
        return self.calls_with_usage > 0


@dataclass(frozen=True)
class Cost:
    """Dollar cost of a run; None where a price is unknown."""

    total: float | None = None
    per_call: float | None = None
    by_model: Mapping[str, float | None] = field(default_factory=_frozen_map)
    unknown_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Allocation:
    """One allocation site from the optional tracemalloc pass."""

    location: str
    size_mb: float
    count: int


@dataclass(frozen=True)
class Memory:
    """Process RSS during a run, in megabytes (10^6 bytes)."""

    rss_start_mb: float | None = None
    rss_peak_mb: float | None = None
    rss_delta_mb: float | None = None
    per_1k_calls: float | None = None
    samples: int = 0
    top_allocations: tuple[Allocation, ...] = ()


@dataclass(frozen=True)
class ToolStats:
    """Calls to one tool made inside the agent during a run."""

    calls: int = 0
    errors: int = 0
    total_time: float = 0.0


@dataclass(frozen=True)
class PerRequest:
    """How a count is spread over the measured calls (requests) of a run: LLM calls, tool calls
    or tokens of each call. Every figure is None when the run cannot tell (unknown, not zero)."""

    mean: float | None = None
    p95: float | None = None
    """95th percentile, numpy's default (linear) method: it may fall between two counts."""
    max: float | None = None
    n: int = 0
    """The calls the figures are over."""


@dataclass(frozen=True)
class TimeShare:
    """Where the measured calls' time went: the shares of their summed latency spent waiting
    for LLM requests, in tools, and in the agent's own code (the rest). None where no
    integration timed that kind of operation (``record_usage`` and usage read from return
    values carry no times).

    Requests or tools that one call runs in parallel overlap: their time is counted once per
    operation, so ``model + tools`` can exceed 1 and ``own`` is then 0.
    """

    model: float | None = None
    tools: float | None = None
    own: float | None = None
    timed_llm_calls: int = 0
    """The LLM requests the ``model`` share is over (an integration timed them)."""


@dataclass(frozen=True)
class Window:
    """Statistics of one time window of a run."""

    start: float
    end: float
    calls: int
    errors: int
    throughput: float
    p50: float | None
    p95: float | None
    rss_mb: float | None = None


@dataclass(frozen=True)
class Contention:
    """How busy the machine was during a run, measured beside it (``pytest_agentperf.contention``).

    CPU figures are fractions of the machine's whole capacity (all cores, 0-1): on 2 cores, one
    other process spinning is ``other_cpu`` 0.5. None where the platform does not say.
    """

    interval: float | None = None
    """Seconds over which the CPU figures were measured (the run's measured phase)."""
    cores: int | None = None
    other_cpu: float | None = None
    """CPU used by every other process (and the kernel on their behalf)."""
    steal: float | None = None
    """CPU the hypervisor gave to other virtual machines (Linux guests only)."""
    own_cpu: float | None = None
    """CPU used by this test process (all its threads)."""
    load_avg: float | None = None
    """The 1-minute load average at the end of the run (runnable tasks, not a fraction)."""
    loop_lag_p50: float | None = None
    """Async runs: median lateness of a 50 ms ``call_later`` tick on the event loop, seconds."""
    loop_lag_p95: float | None = None
    loop_lag_max: float | None = None
    source: str = "unavailable"
    """Where the machine's CPU times came from: "/proc/stat", "psutil" or "unavailable"."""

    @property
    def level(self) -> float | None:
        """Contention from outside the test process: other processes plus steal (0-1)."""
        if self.other_cpu is None:
            return None
        return self.other_cpu + (self.steal or 0.0)


@dataclass(frozen=True)
class GeneratorWindow:
    """The load generator (this test process) during one window of a run: the same edges as
    the run's ``windows``."""

    start: float
    end: float
    cpu: float | None = None
    """CPU (user + system) of this process as a share of one core (1.0 = one core busy)."""
    loop_lag_p99: float | None = None
    """Async runs: p99 of how late a scheduled event-loop tick fired, seconds."""
    threads: int | None = None
    """The most threads this process had in the window."""


@dataclass(frozen=True)
class LoadGenerator:
    """How busy the test process itself (the load generator) was while the run was measured.

    When it saturates (``findings.GENERATOR_CPU`` of one core on an async run, or event-loop lag
    p99 above ``findings.GENERATOR_LAG``), the measured latencies include the test's own
    queueing, not only the agent's. None where not measured.
    """

    interval: float | None = None
    """Seconds of the measured phase the figures cover."""
    cpu_one_core: float | None = None
    """CPU (user + system) of this process over the run, as a share of one core (can pass 1.0
    with several threads on several cores)."""
    cpu_all_cores: float | None = None
    """The same as a share of all the machine's cores (0-1)."""
    cores: int | None = None
    event_loop: bool = False
    """True for an async run (the calls shared one event loop, whose lag is measured)."""
    loop_lag_p99: float | None = None
    """p99 of how late a ``call_at`` tick every ``LAG_PERIOD`` fired, seconds (async runs)."""
    loop_lag_max: float | None = None
    loop_lag_ticks: int | None = None
    """Ticks measured (async runs)."""
    loop_lag_late: int | None = None
    """Ticks that fired ``observers.looplag.LATE_TICK`` (10 ms) or more late: a single stall
    (a garbage collection of a large heap) is one; a loop kept busy, many."""
    loop_lag_late_seconds: float | None = None
    """How late those ticks were, summed: a loop blocked for the whole run fires one tick,
    as late as the run is long."""
    threads: int | None = None
    """The most threads this process had during the run."""
    windows: tuple[GeneratorWindow, ...] = ()
    """The figures per window of the run (the edges of ``PerfResult.windows``)."""


@dataclass(frozen=True)
class CpuTime:
    """CPU time the agent's calls used, beside their wall time.

    Sync agents: the worker threads' CPU time (``time.thread_time`` when each thread starts
    and stops making calls, not around every call: each read is a system call) summed and
    divided by their calls. Async agents: the process CPU time of the measured phase divided
    by the calls (the event loop's own work included). A busy machine stretches wall time but
    hardly CPU time, so this is the figure that tells a slower agent from a slower machine.
    """

    per_call: float | None = None
    """Mean CPU seconds per measured call."""
    p50: float | None = None
    """Median CPU seconds per call, when calls are measured one by one; None from the engine,
    which measures CPU time per worker thread (sync) or per run (async)."""
    share: float | None = None
    """``per_call`` / latency p50: near 1 when calls are mostly CPU (CPU-bound)."""
    source: str = "none"
    """"thread" (the worker threads', sync agents) or "process" (over the run, async agents),
    "none" when not measured."""


@dataclass(frozen=True)
class BudgetCheck:
    """One budget of a run: its limit, the measured value, and whether it held."""

    name: str
    limit: float
    value: float | None
    passed: bool
    n: int
    message: str
    evaluated: bool = True
    """False for a budget that needs the whole run, after an abort: not judged, not broken."""


def _no_floats() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


def _no_ints() -> IntArray:
    return np.zeros(0, dtype=np.int64)


def _no_codes() -> StatusArray:
    return np.zeros(0, dtype=np.int8)


CONTENT_LIMIT = 4000
"""Characters of a call's input or output kept as text (``CallTable.inputs`` / ``outputs``)."""

CHAT, TOOL = 0, 1
"""``SpanTable.kind``: an LLM request, a tool call."""


@dataclass(frozen=True)
class SpanTable:
    """The LLM requests and tool calls made inside the measured calls, one row each, column by
    column (arrays of equal length). Times are seconds since the run's start; NaN where the
    integration that saw the operation could not time it (``record_usage`` takes no times)."""

    JSON_WHOLE: ClassVar[bool] = True
    JSON_EXACT: ClassVar[frozenset[str]] = frozenset()

    call: IntArray = field(default_factory=_no_ints)
    """The row in ``CallTable`` of the measured call the operation was made in (ascending)."""
    kind: StatusArray = field(default_factory=_no_codes)
    """``CHAT`` (0) or ``TOOL`` (1)."""
    name: IntArray = field(default_factory=_no_ints)
    """Index into ``CallTable.names``: the model (chat) or the tool; -1 when not named."""
    provider: IntArray = field(default_factory=_no_ints)
    """Index into ``CallTable.names`` of the provider ("openai", ...); -1 when unknown."""
    start: FloatArray = field(default_factory=_no_floats)
    end: FloatArray = field(default_factory=_no_floats)
    input_tokens: IntArray = field(default_factory=_no_ints)
    output_tokens: IntArray = field(default_factory=_no_ints)
    ttft: FloatArray = field(default_factory=_no_floats)
    """Seconds from the request to its first streamed chunk; NaN when not streamed."""
    ok: StatusArray = field(default_factory=_no_codes)
    """1 when the operation succeeded, 0 when it failed."""

    def __len__(self) -> int:
        return int(self.call.size)


@dataclass(frozen=True)
class CallTable:
    """Every measured call of a run, one row each in order of intended start, column by column.

    Kept only while an output that reads each call is on (the per-call log, OpenMetrics,
    OpenTelemetry, HTML): a million calls cost tens of MB here. Never cut to a sample: a row is
    a call. Times are seconds since the run's start.
    """

    JSON_WHOLE: ClassVar[bool] = True
    """The codec writes every row (no cut to ``max_samples``)."""
    JSON_EXACT: ClassVar[frozenset[str]] = frozenset({"cost"})
    """Columns written unrounded (a call's cost can be a few millionths of a dollar)."""

    t0_unix: float = 0.0
    """The run's start (time 0 of every column) as a Unix time in seconds, to place the calls
    on a wall clock (traces, logs)."""

    start: FloatArray = field(default_factory=_no_floats)
    """When the call was meant to start (open loop: its arrival; closed loop: its start)."""
    actual: FloatArray = field(default_factory=_no_floats)
    """When the agent was called (later than ``start`` when an open-loop call started late)."""
    end: FloatArray = field(default_factory=_no_floats)
    status: StatusArray = field(default_factory=_no_codes)
    """0 ok, 1 error, 2 timeout."""
    ttft: FloatArray = field(default_factory=_no_floats)
    """Seconds from ``start`` to the first chunk of a streamed answer; NaN when not streamed."""
    input_tokens: IntArray = field(default_factory=_no_ints)
    """Tokens of the call's LLM requests; -1 when the call recorded no usage (unknown)."""
    output_tokens: IntArray = field(default_factory=_no_ints)
    cost: FloatArray = field(default_factory=_no_floats)
    """Dollars; NaN when unknown (no usage, or a model without a price)."""
    model: IntArray = field(default_factory=_no_ints)
    """Index into ``names`` of the call's (first) model; -1 when none was named."""
    error_rows: IntArray = field(default_factory=_no_ints)
    """The rows of the calls that failed (errors and timeouts), ascending."""
    error_types: tuple[str, ...] = ()
    """The exception type of each call in ``error_rows`` ("Timeout" for a timeout)."""
    names: tuple[str, ...] = ()
    """Model, tool and provider names the columns refer to by index."""
    spans: SpanTable = field(default_factory=SpanTable)
    inputs: tuple[str | None, ...] = ()
    """Each call's input as text (redacted, cut to ``CONTENT_LIMIT`` characters), only with
    ``--agentperf-log-content``; else empty."""
    outputs: tuple[str | None, ...] = ()
    """Each call's return value as text, as ``inputs``."""

    def __len__(self) -> int:
        return int(self.start.size)

    def name(self, index: int) -> str | None:
        """The name at ``index`` in ``names``; None for -1."""
        return self.names[index] if index >= 0 else None

    def error_type(self) -> list[str | None]:
        """The error type of every row (None for a call that succeeded)."""
        out: list[str | None] = [None] * len(self)
        for row, kind in zip(self.error_rows.tolist(), self.error_types, strict=True):
            out[row] = kind
        return out


@dataclass(frozen=True)
class StageResult:
    """Figures of one stage of a ramped run (``stages=``): the calls whose intended start fell
    within it. ``target_from``/``target_to``: the rate (per second) or, closed loop, the
    number of workers the stage ramped between."""

    index: int
    start: float
    """Seconds from the run's start."""
    end: float
    target_from: float
    target_to: float
    calls: int
    errors: int
    throughput: float
    """Successful calls per second of the stage."""
    p50: float | None
    p95: float | None
    p99: float | None
    budgets: tuple[BudgetCheck, ...] = ()
    """This stage's own budgets (``stage_budgets=``)."""


@dataclass(frozen=True)
class CapacityPoint:
    """One step of a capacity search: the offered rate and what the agent did at it (the
    latency-versus-load curve)."""

    rate: float
    """Offered arrival rate, per second."""
    throughput: float
    p50: float | None
    p95: float | None
    p99: float | None
    requests: int
    errors: int
    held: bool
    """Whether the SLO held at this rate."""
    decided: bool = True
    """False when neither verdict was beyond doubt after the re-measurements allowed: then
    ``held`` is the point estimate."""
    measurements: int = 1
    why: str = ""
    """What decided it, e.g. the budget broken beyond doubt."""


@dataclass(frozen=True)
class CapacitySearchOptions:
    """The options of a capacity search that change what it finds: a search is compared with
    its baseline only when these (and its SLO) are the same."""

    start: float
    """First rate, per second."""
    limit: float
    """Highest rate tried, per second."""
    factor: float
    resolution: float
    step: float
    """Shortest step, in seconds."""
    repeats: int
    time_budget: float | None = None
    """``duration=``: the whole search's time budget, seconds; None without one."""


@dataclass(frozen=True)
class Capacity:
    """What a capacity search found (``agentperf.capacity``): the highest rate at which the
    SLO held, the first rate at which it failed, and the curve of every step."""

    slo: Mapping[str, float]
    max_rate: float | None
    """Highest offered rate (per second) at which every SLO budget held; None when even the
    start rate failed."""
    first_failing: float | None
    """Lowest rate that failed above ``max_rate``: the true capacity lies between the two.
    None when no rate up to the limit failed."""
    points: tuple[CapacityPoint, ...] = ()
    """Every step in the order measured."""
    stopped: str = ""
    """Why the search ended: "resolution", "limit", "time budget", "start rate failed"."""
    search: CapacitySearchOptions | None = None
    """The options the search ran with (None in records written before they were kept)."""

    @property
    def curve(self) -> tuple[CapacityPoint, ...]:
        """The steps sorted by rate (the latency-versus-load curve)."""
        return tuple(sorted(self.points, key=lambda p: p.rate))


@dataclass(frozen=True)
class WorkerShard:
    """How one worker process of a run split over workers (``workers=N``) did."""

    name: str
    """``gw0``, ``gw1``, ...: the worker's place in the run."""
    spec: str
    """The execnet gateway spec it ran on (``popen``, ``ssh=host//python=python3``, ...)."""
    host: str
    pid: int
    calls: int
    """Measured calls it made, failed ones included."""
    errors: int
    throughput: float
    """Its successful calls per second, over its own measured duration."""
    duration: float
    cpu_seconds: float
    """CPU time of the worker process (every thread) during its measured calls."""
    cpu_use: float
    """``cpu_seconds`` over ``duration``: cores kept busy (1.0 is one core saturated)."""
    start_skew: float
    """Seconds its first call started after the common start time (negative: before; across
    hosts this includes the difference of their clocks)."""


@dataclass(frozen=True)
class PerfResult:
    """Everything measured in one run of an agent under load (read-only)."""

    name: str
    shape: LoadShape
    requests: int
    errors: int
    timeouts: int
    error_rate: float
    error_types: Mapping[str, int]
    error_messages: tuple[str, ...]
    throughput: float
    duration: float
    latency: Stats
    ttft: Stats
    itl: Stats
    late_starts: int = 0
    aborted: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Cost = field(default_factory=Cost)
    memory: Memory = field(default_factory=Memory)
    tools: Mapping[str, ToolStats] = field(default_factory=_frozen_map)
    llm_calls: PerRequest = field(default_factory=PerRequest)
    """LLM requests per measured call (usage records from the integrations or ``record_usage``),
    over every call; unknown when no call of the run recorded usage."""
    tool_calls: PerRequest = field(default_factory=PerRequest)
    """Tool calls per measured call, over every call; unknown when the run recorded no tool
    call."""
    tokens: PerRequest = field(default_factory=PerRequest)
    """Total tokens per measured call, over the calls that recorded usage."""
    time_share: TimeShare = field(default_factory=TimeShare)
    windows: tuple[Window, ...] = ()
    contention: Contention = field(default_factory=Contention)
    generator: LoadGenerator = field(default_factory=LoadGenerator)
    """How busy the test process (the load generator) was during the run."""
    cpu: CpuTime = field(default_factory=CpuTime)
    budgets: tuple[BudgetCheck, ...] = ()
    comparison: Comparison | None = None
    """This run against its baseline run (None when no baseline was compared)."""
    calls: CallTable | None = None
    """Every measured call, row by row; None unless an output that reads each call was asked
    for (``--agentperf-log``, ``--agentperf-otel``, ``--agentperf-openmetrics``, ...)."""
    stages: tuple[StageResult, ...] = ()
    """Each stage's figures, for a run with ``stages=``; empty otherwise."""
    capacity: Capacity | None = None
    """The capacity search this result stands for (``agentperf.capacity``): the step at the
    found capacity, with the whole search attached; None for an ordinary run."""
    workers: tuple[WorkerShard, ...] = ()
    """Each worker's share of a run split over workers (``workers=N``); empty otherwise."""

    @property
    def passed(self) -> bool:
        """True when every budget held (each stage's own budgets too)."""
        return all(b.passed for b in self.budgets) and all(
            b.passed for s in self.stages for b in s.budgets
        )

    def to_dict(self, *, samples: bool = True, max_samples: int | None = None) -> dict[str, Any]:
        """A JSON-ready dict; latency samples are rounded to microseconds.

        ``max_samples`` keeps at most that many evenly spaced samples per series. The series
        are cut as arrays, so only the samples written become Python floats (a million calls
        would otherwise cost tens of MB of floats just to be thrown away).
        """
        out = to_jsonable(self, samples=samples, limit=max_samples)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerfResult:
        """The result ``to_dict`` wrote (samples come back as read-only arrays).

        Raises ``codec.DecodeError`` (a ``ValueError``) naming the field that does not fit.
        """
        return from_jsonable(cls, data, "result")


# ------------------------------------------------------------------------------ A/B comparison

VERDICTS = ("better", "worse", "same", "inconclusive")
"""What an A/B ratio says about an arm against the reference (``Ratio.verdict``)."""


@dataclass(frozen=True)
class Ratio:
    """One metric of an arm over the same metric of the reference arm of an A/B comparison
    (``agentperf.compare``), with a paired bootstrap interval over the randomized blocks.

    For ``error_rate`` the figures are a difference (arm minus reference), not a ratio. Lower
    is better for every metric; ``verdict`` is one of ``VERDICTS``; ``estimate`` is None when
    the metric is unknown for either arm (no usage, no prices, no streamed calls).
    """

    metric: str
    estimate: float | None = None
    low: float | None = None
    high: float | None = None
    verdict: str = "inconclusive"
    blocks: int = 0
    """Blocks both arms had data in (the units the bootstrap resamples)."""

    def _fmt(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.metric == "error_rate":
            return f"{value * 100:+.1f} pp"
        return f"{value:.3g}x"

    @property
    def short(self) -> str:
        """``1.24x worse`` (``+1.5 pp worse`` for the error rate); ``-`` when unknown."""
        if self.estimate is None:
            return "-"
        return f"{self._fmt(self.estimate)} {self.verdict}"

    @property
    def text(self) -> str:
        """``1.24x [1.11x, 1.49x] worse``: the estimate, its interval and the verdict."""
        if self.estimate is None:
            return "- (unknown)"
        return f"{self._fmt(self.estimate)} [{self._fmt(self.low)}, {self._fmt(self.high)}] " + (
            self.verdict
        )


@dataclass(frozen=True)
class ArmSummary:
    """A run's place in an A/B comparison: which comparison, which arm, and how the arm
    compared with the reference arm (empty ``ratios`` for the reference itself)."""

    comparison: str
    """The comparison's run name (``name=`` of ``agentperf.compare``)."""
    arm: str
    reference: str
    seed: int
    blocks: int
    ratios: tuple[Ratio, ...] = ()
    """Every compared metric, in ``COMPARED_METRICS`` order, then the error-rate difference."""
    confidence: float = 0.99
    """The two-sided confidence of the intervals of ``ratios``."""

    @property
    def is_reference(self) -> bool:
        return self.arm == self.reference

    def ratio(self, metric: str) -> Ratio | None:
        """The ratio of ``metric`` (None for the reference arm, or a metric not compared)."""
        return next((r for r in self.ratios if r.metric == metric), None)
