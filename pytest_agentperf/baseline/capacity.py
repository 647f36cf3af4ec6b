"""A capacity search (``agentperf.capacity``) compared with its baseline search.

A search does not measure its capacity, it brackets it: the highest rate that held
(``max_rate``) and the lowest that failed above it (``first_failing``); the true capacity lies
in between, and each end was judged with confidence. So the verdict compares brackets, not
point estimates: REGRESSED when today's bracket lies wholly below the baseline's (today's
failing rate is at or below the baseline's max rate: capacity certainly dropped, by more than
the search's resolution), IMPROVED when wholly above, UNCHANGED when they overlap. A search
with another SLO, other search options or another load (``concurrency`` cap, ``arrival``)
answers another question: NOT COMPARABLE, naming what changed.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

from ..results import Capacity, CapacitySearchOptions, LoadShape, PerfResult
from ..units import Unit, format_value
from .change import ChangeKind, MetricChange, Status
from .comparison import DEFAULT_TOLERANCE, Comparison, machine_flags
from .environment import Machine
from .store import BaselineRun

KEY = "capacity"
"""The key of the capacity's change in ``Comparison.metrics``."""
SEARCH_FIELDS = ("start", "limit", "factor", "resolution", "step", "repeats", "time_budget")
"""Options of ``CapacitySearchOptions`` that change what a search finds."""
LOAD_FIELDS = ("concurrency", "arrival")
"""Load-shape fields every step shares (the search sets ``rate`` and ``requests`` itself)."""


def bracket_status(baseline: Capacity, current: Capacity) -> Status:
    """REGRESSED when ``current``'s bracket lies wholly below ``baseline``'s, IMPROVED when
    wholly above, else UNCHANGED.

    An open end stays open: no ``max_rate`` (the start failed) is a bracket from 0, no
    ``first_failing`` (the search ended at the limit or its time budget) one without an upper
    end, so "at least 80/s" never regresses against "at least 80/s".
    """
    if (
        current.first_failing is not None
        and baseline.max_rate is not None
        and current.first_failing <= baseline.max_rate
    ):
        return Status.REGRESSED
    if (
        baseline.first_failing is not None
        and current.max_rate is not None
        and current.max_rate >= baseline.first_failing
    ):
        return Status.IMPROVED
    return Status.UNCHANGED


def bracket_text(cap: Capacity) -> str:
    """Where the capacity lies: ``47.6-52.4/s``, ``>=80/s`` (no step failed), ``<20/s`` (the
    start failed) or ``unknown``."""
    low, high = cap.max_rate, cap.first_failing
    if low is not None and high is not None:
        return f"{_rate(low).removesuffix('/s')}-{_rate(high)}"
    if low is not None:
        return f">={_rate(low)}"
    if high is not None:
        return f"<{_rate(high)}"
    return "unknown"


def _rate(value: float) -> str:
    return format_value(value, Unit.PER_SECOND)


def _slo_text(cap: Capacity) -> str:
    from ..budgets import BUDGETS

    parts = []
    for name, limit in cap.slo.items():
        spec = BUDGETS.get(name)
        parts.append(f"{name} <= {format_value(limit, spec.unit) if spec else f'{limit:g}'}")
    return ", ".join(parts) or "none"


def _same(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b


def search_differences(
    baseline: Capacity, current: Capacity, base_shape: LoadShape, shape: LoadShape
) -> tuple[str, ...]:
    """What makes two searches answer different questions: the SLO, the search options
    (``SEARCH_FIELDS``) and the steps' shared load (``LOAD_FIELDS``), each as "was -> is"."""
    out = []
    same_slo = baseline.slo.keys() == current.slo.keys() and all(
        _same(limit, current.slo[name]) for name, limit in baseline.slo.items()
    )
    if not same_slo:
        out.append(f"slo {_slo_text(baseline)} -> {_slo_text(current)}")
    was, now = baseline.search, current.search
    if was is None or now is None:
        if was is not now:
            out.append("search options not recorded in the baseline")
    else:
        out += [
            f"{name} {_option(was, name)} -> {_option(now, name)}"
            for name in SEARCH_FIELDS
            if not _same(getattr(was, name), getattr(now, name))
        ]
    out += [
        f"{name} {getattr(base_shape, name)} -> {getattr(shape, name)}"
        for name in LOAD_FIELDS
        if getattr(base_shape, name) != getattr(shape, name)
    ]
    return tuple(out)


def _option(options: CapacitySearchOptions, name: str) -> str:
    value = getattr(options, name)
    if value is None:
        return "none"
    if name in ("start", "limit"):
        return _rate(value)
    if name in ("step", "time_budget"):
        return f"{value:g}s"
    return f"{value:g}"


def capacity_change(baseline: Capacity, current: Capacity) -> MetricChange:
    """The capacity's change: the max rates (0 when none held), their ratio, the brackets'
    verdict (``bracket_status``) and both brackets in ``note``."""
    base, now = baseline.max_rate or 0.0, current.max_rate or 0.0
    ratio = now / base if base > 0 else (math.inf if now > 0 else 1.0)
    resolution = current.search.resolution if current.search is not None else 0.0
    return MetricChange(
        key=KEY,
        name="capacity",
        kind=ChangeKind.BRACKET,
        unit=Unit.PER_SECOND,
        baseline=base,
        current=now,
        change=ratio,
        low=None,
        high=None,
        status=bracket_status(baseline, current),
        limit=resolution,
        note=f"baseline bracket {bracket_text(baseline)}, now {bracket_text(current)}",
    )


def compare_capacity(
    result: PerfResult,
    baseline: BaselineRun | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    machine: Machine | None = None,
) -> Comparison:
    """The capacity search ``result`` (``result.capacity`` is set) against its baseline run:
    NEW without one, NOT COMPARABLE when the baseline run is no capacity search or another
    one (``search_differences``), else the brackets' verdict. ``tolerance`` is only recorded:
    the search's resolution is the comparison's."""
    current = result.capacity
    assert current is not None, "compare_capacity needs a capacity search's result"
    if baseline is None:
        return Comparison(Status.NEW, tolerance, messages=("no baseline run to compare with",))
    origin: dict[str, Any] = {
        "baseline_commit": baseline.commit,
        "baseline_created": baseline.created or None,
    }
    flags = machine_flags(baseline, machine)
    saved = baseline.capacity
    if saved is None:
        msg = (
            "the baseline run is not a capacity search (an agentperf.run, or recorded before "
            "capacity searches were saved); re-record the baseline to compare"
        )
        return Comparison(Status.NOT_COMPARABLE, tolerance, flags=flags, messages=(msg,), **origin)
    changed = search_differences(saved, current, baseline.shape, result.shape)
    if changed:
        msg = (
            "capacity search changed (" + "; ".join(changed) + "); re-record the baseline to "
            "compare"
        )
        return Comparison(Status.NOT_COMPARABLE, tolerance, flags=flags, messages=(msg,), **origin)
    change = capacity_change(saved, current)
    return Comparison(
        status=change.status,
        tolerance=tolerance,
        metrics=MappingProxyType({KEY: change}),
        flags=flags,
        messages=(change.text,),
        **origin,
    )


__all__ = [
    "KEY",
    "LOAD_FIELDS",
    "SEARCH_FIELDS",
    "bracket_status",
    "bracket_text",
    "capacity_change",
    "compare_capacity",
    "search_differences",
]
