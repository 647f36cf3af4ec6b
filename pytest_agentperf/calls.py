"""The per-call table of a run (``results.CallTable``), built from the engine's merged log.

Only runs whose logs kept detail (an output that reads each call was asked for) get one; the
statistics never read it, so it costs nothing otherwise.
"""

from __future__ import annotations

import math

import numpy as np

from .engine.log import CallDetail, MergedLog
from .pricing import PriceTable, table_or_default
from .results import CHAT, TOOL, CallTable, SpanTable
from .usage import UNNAMED_MODEL

_NAN = math.nan


class _Names:
    """Interns the model, tool and provider names the table's columns refer to by index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, name: str | None) -> int:
        if not name:
            return -1
        return self.index.setdefault(name, len(self.index))

    def names(self) -> tuple[str, ...]:
        return tuple(self.index)


def call_table(
    log: MergedLog,
    *,
    t0_unix: float,
    model: str | None = None,
    prices: PriceTable | None = None,
) -> CallTable:
    """Every call of ``log`` as a ``CallTable``; ``model``: the run's ``model=`` setting, for
    usage that named none; ``prices``: None for the bundled prices.

    A call's tokens and cost are those of the LLM requests it recorded (-1 and NaN when it
    recorded none); its model is its first request's. Times of the requests and tool calls
    (``time.perf_counter`` readings) become seconds since the run's start.
    """
    n = len(log)
    names = _Names()
    table = table_or_default(prices)
    input_tokens = np.full(n, -1, dtype=np.int64)
    output_tokens = np.full(n, -1, dtype=np.int64)
    cost = np.full(n, _NAN, dtype=np.float64)
    models = np.full(n, -1, dtype=np.int64)
    t0 = log.t0  # perf_counter readings minus this: seconds since the run's start
    spans = _SpanRows()
    for row, detail in zip(log.detail_rows.tolist(), log.details, strict=True):
        records = detail.records or ()
        if records:
            input_tokens[row] = sum(r.input_tokens for r in records)
            output_tokens[row] = sum(r.output_tokens for r in records)
            total: float | None = 0.0
            for r in records:
                one = table.record_cost(r, model or UNNAMED_MODEL)
                total = None if one is None or total is None else total + one
            cost[row] = _NAN if total is None else total
            models[row] = names(records[0].model or model)
        spans.add(row, detail, names, model, t0)
    inputs: tuple[str | None, ...] = ()
    outputs: tuple[str | None, ...] = ()
    if any(d.given is not None or d.returned is not None for d in log.details):
        given: list[str | None] = [None] * n
        returned: list[str | None] = [None] * n
        for row, detail in zip(log.detail_rows.tolist(), log.details, strict=True):
            given[row], returned[row] = detail.given, detail.returned
        inputs, outputs = tuple(given), tuple(returned)
    return CallTable(
        t0_unix=t0_unix,
        start=log.start,
        actual=log.start if log.actual is None else log.actual,
        end=log.end,
        status=log.status,
        ttft=log.ttft,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=cost,
        model=models,
        error_rows=log.error_rows,
        error_types=log.error_types,
        names=names.names(),
        spans=spans.table(),
        inputs=inputs,
        outputs=outputs,
    )


class _SpanRows:
    """The rows of a ``SpanTable``, gathered call by call."""

    def __init__(self) -> None:
        self.call: list[int] = []
        self.kind: list[int] = []
        self.name: list[int] = []
        self.provider: list[int] = []
        self.start: list[float] = []
        self.end: list[float] = []
        self.input_tokens: list[int] = []
        self.output_tokens: list[int] = []
        self.ttft: list[float] = []
        self.ok: list[int] = []

    def _row(
        self,
        call: int,
        kind: int,
        name: int,
        provider: int,
        start: float,
        end: float,
        tokens: tuple[int, int],
        ttft: float,
        ok: bool,
    ) -> None:
        self.call.append(call)
        self.kind.append(kind)
        self.name.append(name)
        self.provider.append(provider)
        self.start.append(start)
        self.end.append(end)
        self.input_tokens.append(tokens[0])
        self.output_tokens.append(tokens[1])
        self.ttft.append(ttft)
        self.ok.append(int(ok))

    def add(
        self, row: int, detail: CallDetail, names: _Names, model: str | None, t0: float
    ) -> None:
        for r in detail.records or ():
            self._row(
                row,
                CHAT,
                names(r.model or model),
                names(r.provider),
                _NAN if r.start is None else r.start - t0,
                _NAN if r.end is None else r.end - t0,
                (r.input_tokens, r.output_tokens),
                _NAN if r.ttft is None else r.ttft,
                True,
            )
        for tool, seconds, ok, end in detail.tools or ():
            self._row(row, TOOL, names(tool), -1, end - seconds - t0, end - t0, (0, 0), _NAN, ok)

    def table(self) -> SpanTable:
        return SpanTable(
            call=np.asarray(self.call, dtype=np.int64),
            kind=np.asarray(self.kind, dtype=np.int8),
            name=np.asarray(self.name, dtype=np.int64),
            provider=np.asarray(self.provider, dtype=np.int64),
            start=np.asarray(self.start, dtype=np.float64),
            end=np.asarray(self.end, dtype=np.float64),
            input_tokens=np.asarray(self.input_tokens, dtype=np.int64),
            output_tokens=np.asarray(self.output_tokens, dtype=np.int64),
            ttft=np.asarray(self.ttft, dtype=np.float64),
            ok=np.asarray(self.ok, dtype=np.int8),
        )
