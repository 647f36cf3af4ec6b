"""The baseline file: schema, locked atomic save with subset merge, and a strict, hostile-safe load.

One JSON file (default ``.agentperf/baseline.json``) holds one entry per (test node id, run
name). It is written for git: a schema version, a fixed key order, values rounded (latencies to
microseconds), the latency samples of a run on one line, entries sorted by test and run. JSON
only, never pickle; reading validates every field and bounds every size, so a corrupt, foreign,
newer or hostile file is a ``BaselineError`` naming the file and the problem, never a crash; an
entry that fails validation is set aside on its own (named in ``Baseline.problems``) and the
others are used. A save holds a lock file (``baseline.json.lock``) from load to rename, so
sessions saving at once each add their runs, and keeps the entries it cannot read as they are.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..atomic import FileKind, check_target, json_kind, write_atomic
from ..errors import BaselineError, OutputPathError
from ..locking import DEFAULT_TIMEOUT, locked
from ..results import (
    Capacity,
    CapacitySearchOptions,
    Contention,
    FloatArray,
    LoadShape,
    PerfResult,
    Stats,
)
from .environment import Environment, Machine
from .metrics import STORED_FIELDS, stored_figures

FORMAT = "pytest-agentperf-baseline"
BASELINE_SCHEMA_VERSION = 1
"""Version of the baseline file's layout (its own format, versioned apart from the JSON report)."""
MAX_SAMPLES = 2000
"""Latency samples stored per run; larger runs keep this many evenly spaced quantiles."""

# Bounds applied when reading, so a hostile file cannot exhaust memory or time.
_MAX_FILE_BYTES = 64 * 1024 * 1024
_MAX_RUNS = 20_000
_MAX_READ_SAMPLES = 20_000
_MAX_STAGES = 10_000
_MAX_TEXT = 4096
"""Longest machine/commit/version text read; test ids and run names may be of any length."""
_MAX_SHOWN = 120
_MAX_DEPTH = 32

RunKey = tuple[str, str]


KIND: FileKind = json_kind("pytest-agentperf baseline", FORMAT)
"""What a baseline file looks like: only such a file (or none, or an empty one) is replaced."""


@dataclass(frozen=True)
class BaselineRun:
    """One run of one test as saved in the baseline.

    ``latency`` holds the percentiles of the full run (``latency.n`` successful calls) and, as
    ``latency.samples``, at most ``MAX_SAMPLES`` samples rounded to microseconds: in start
    order (``in_order``; calls evenly spaced in time when the run had more), or sorted in files
    written before the order was kept (resampled as independent calls then).
    ``figures["cpu_per_call"]``, ``cpu_share`` and ``contention`` are None in such older files.
    """

    test: str
    run: str
    shape: LoadShape
    requests: int
    errors: int
    timeouts: int
    duration: float
    throughput: float
    latency: Stats
    machine: Machine
    commit: str | None
    plugin_version: str
    created: str
    figures: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    """The figure per call of each stored gated metric (``metrics.STORED``), keyed by its
    ``stored_as`` name ("tokens_per_call", "cost_per_call", "cpu_per_call"); None if unknown."""
    cpu_share: float | None = None
    contention: Contention | None = None
    in_order: bool = False
    capacity: Capacity | None = None
    """What a capacity search (``agentperf.capacity``) found and how it searched: its SLO,
    options and bracket (``max_rate``, ``first_failing``), without the curve; None for an
    ordinary run (and in files written before capacity searches were kept)."""

    @property
    def key(self) -> RunKey:
        return (self.test, self.run)


@dataclass(frozen=True)
class Baseline:
    """A loaded baseline file: its runs keyed by (test node id, run name).

    ``problems`` says, one line each, which entries were set aside as unreadable and why;
    ``unreadable`` holds those entries as they were in the file, so a save can keep them.
    """

    path: str
    runs: Mapping[RunKey, BaselineRun] = field(default_factory=lambda: MappingProxyType({}))
    problems: tuple[str, ...] = ()
    unreadable: tuple[Any, ...] = ()

    def get(self, test: str, run: str) -> BaselineRun | None:
        return self.runs.get((test, run))

    def tests(self) -> frozenset[str]:
        return frozenset(t for t, _ in self.runs)


@dataclass(frozen=True)
class SaveResult:
    """What ``save`` did: runs written now, runs kept from the old file, and a replaced file.

    ``unreadable_kept`` entries of the old file could not be read and were kept as they were.
    """

    path: str
    written: int
    kept: int
    replaced_problem: str | None = None
    unreadable_kept: int = 0


# --------------------------------------------------------------------------- building runs


def _finite(value: float | None, digits: int | None = None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits) if digits is not None else float(value)


def cap_samples(samples: FloatArray, cap: int = MAX_SAMPLES) -> FloatArray:
    """Sorted samples rounded to microseconds; above ``cap``, ``cap`` evenly spaced quantiles.

    Evenly spaced quantiles (numpy's linear method, from the minimum to the maximum) rather than
    a random subset: the same run gives the same file (diffs stay small), every percentile of
    the stored samples is within 1/cap of the full run's, and no sampling noise is added. The
    bootstrap then sees ``cap`` samples instead of n, so its interval is a little wider: the
    conservative side for a gate.
    """
    arr = np.sort(np.asarray(samples, dtype=np.float64))
    arr = arr[np.isfinite(arr)]
    if arr.size > cap:
        arr = np.asarray(np.quantile(arr, np.linspace(0.0, 1.0, cap)), dtype=np.float64)
    out: FloatArray = np.round(arr, 6)
    out.flags.writeable = False
    return out


def thin_samples(samples: FloatArray, cap: int = MAX_SAMPLES) -> FloatArray:
    """Samples in start order rounded to microseconds; above ``cap``, ``cap`` calls evenly
    spaced in time (every n/cap-th call, first and last included).

    Time order is kept so the gate's block bootstrap sees which calls ran together; the
    thinning is deterministic (the same run gives the same file) and keeps each stretch of
    the run in proportion, so waves of slow calls stay in the sample as they were.
    """
    arr = np.asarray(samples, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size > cap:
        arr = arr[np.round(np.linspace(0, arr.size - 1, cap)).astype(np.int64)]
    out: FloatArray = np.round(arr, 6)
    out.flags.writeable = False
    return out


_STATS = ("p50", "p90", "p95", "p99", "min", "max", "mean", "stdev")
"""Latency statistics an entry keeps beside ``n``, in seconds rounded to microseconds."""
_CONTENTION_DIGITS = {
    "interval": 6,
    "other_cpu": 4,
    "steal": 4,
    "own_cpu": 4,
    "load_avg": 3,
    "loop_lag_p50": 6,
    "loop_lag_p95": 6,
    "loop_lag_max": 6,
}
"""Contention figures an entry keeps beside ``cores`` and ``source``, with their decimals."""


def _stats_dict(lat: Stats) -> dict[str, float | None]:
    return {key: _finite(getattr(lat, key), 6) for key in _STATS}


def _contention_dict(c: Contention | None) -> dict[str, Any] | None:
    if c is None:
        return None
    figures = {key: _finite(getattr(c, key), d) for key, d in _CONTENTION_DIGITS.items()}
    return {**figures, "cores": c.cores, "source": c.source}


def run_from_result(test: str, result: PerfResult, env: Environment) -> BaselineRun:
    """The baseline entry of ``result``, the run named ``result.name`` of test ``test``."""
    lat = result.latency
    samples = thin_samples(lat.samples)
    latency = Stats(n=lat.n, **_stats_dict(lat), samples=samples)
    return BaselineRun(
        test=test,
        run=result.name,
        shape=result.shape,
        requests=result.requests,
        errors=result.errors,
        timeouts=result.timeouts,
        duration=_finite(result.duration, 6) or 0.0,
        throughput=_finite(result.throughput, 6) or 0.0,
        latency=latency,
        machine=env.machine,
        commit=env.commit,
        plugin_version=env.plugin_version,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        figures=MappingProxyType(stored_figures(result)),
        cpu_share=_finite(result.cpu.share, 4),
        contention=result.contention,
        in_order=True,
        capacity=None if result.capacity is None else replace(result.capacity, points=()),
    )


# --------------------------------------------------------------------------- writing


def shape_dict(s: LoadShape) -> dict[str, Any]:
    """A load shape as the baseline and the history files keep it (JSON-ready); the stages
    only when there are some, so a file written before they were kept reads the same."""
    out: dict[str, Any] = {
        "requests": s.requests,
        "concurrency": s.concurrency,
        "rate": _finite(s.rate),
        "arrival": s.arrival,
        "duration": _finite(s.duration),
        "warmup": s.warmup,
        "timeout": _finite(s.timeout),
    }
    if s.stages:
        out["stages"] = [[_finite(d), _finite(t)] for d, t in s.stages]
    return out


def machine_dict(m: Machine) -> dict[str, Any]:
    """A machine as the baseline and the history files keep it (JSON-ready)."""
    return {
        "cpu": m.cpu,
        "cores": m.cores,
        "os": m.os,
        "arch": m.arch,
        "python": m.python,
        "implementation": m.implementation,
        "platform": m.platform,
        "workers": m.workers,
    }


def _capacity_dict(c: Capacity) -> dict[str, Any]:
    """A capacity search as the baseline keeps it: SLO, options and bracket (no curve)."""
    o = c.search
    search = None
    if o is not None:
        search = {
            "start": _finite(o.start),
            "limit": _finite(o.limit),
            "factor": _finite(o.factor),
            "resolution": _finite(o.resolution),
            "step": _finite(o.step),
            "repeats": o.repeats,
            "time_budget": _finite(o.time_budget),
        }
    return {
        "slo": {name: _finite(limit) for name, limit in c.slo.items()},
        "search": search,
        "max_rate": _finite(c.max_rate),
        "first_failing": _finite(c.first_failing),
        "stopped": c.stopped,
    }


def _run_dict(r: BaselineRun) -> dict[str, Any]:
    lat = r.latency
    extra = {} if r.capacity is None else {"capacity": _capacity_dict(r.capacity)}
    return {
        "test": r.test,
        "run": r.run,
        "created": r.created,
        "commit": r.commit,
        "plugin_version": r.plugin_version,
        "machine": machine_dict(r.machine),
        "shape": shape_dict(r.shape),
        "requests": r.requests,
        "errors": r.errors,
        "timeouts": r.timeouts,
        "duration": _finite(r.duration, 6),
        "throughput": _finite(r.throughput, 6),
        **{name: _finite(r.figures.get(name)) for name in STORED_FIELDS},
        "cpu_share": _finite(r.cpu_share, 4),
        "contention": _contention_dict(r.contention),
        "latency": {
            "n": lat.n,
            **_stats_dict(lat),
        },
        **extra,
        "order": "start" if r.in_order else "sorted",
        "samples": None,  # placeholder, replaced by one compact line
    }


def dumps(runs: Iterable[BaselineRun], unreadable: Iterable[Any] = ()) -> str:
    """The file text: fixed key order, entries sorted by (test, run), samples on one line each;
    ``unreadable`` entries (JSON values) follow, unchanged."""
    ordered = sorted(runs, key=lambda r: r.key)
    docs: list[Any] = []
    lines = []
    # A placeholder no test id or run name can contain (they are written before it).
    nonce = uuid.uuid4().hex
    for i, r in enumerate(ordered):
        d = _run_dict(r)
        d["samples"] = f"@@{nonce}:{i}@@"
        docs.append(d)
        lines.append(json.dumps([round(float(x), 6) for x in r.latency.samples], allow_nan=False))
    docs.extend(unreadable)
    doc = {"format": FORMAT, "schema": BASELINE_SCHEMA_VERSION, "runs": docs}
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)
    for i, line in enumerate(lines):
        text = text.replace(f'"@@{nonce}:{i}@@"', line, 1)
    return text + "\n"


def _entry_key(value: Any) -> RunKey | None:
    """The (test, run) an unreadable entry claims, when it says so with two strings."""
    if isinstance(value, dict):
        test, run = value.get("test"), value.get("run")
        if isinstance(test, str) and isinstance(run, str):
            return (test, run)
    return None


def save(
    path: str | os.PathLike[str],
    entries: Iterable[BaselineRun],
    *,
    keep_existing: bool = True,
    complete: Collection[str] = (),
    root: str | os.PathLike[str] | None = None,
    lock_timeout: float = DEFAULT_TIMEOUT,
) -> SaveResult:
    """Write ``entries`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    With ``keep_existing``, the old file's runs are kept unless ``entries`` replace them, so
    saving from a subset of tests updates those and keeps the rest. A test named in ``complete``
    (it ran to the end and passed) is re-recorded whole: its old runs that it no longer makes
    (renamed, removed) are dropped instead of lingering as "missing". A test that stopped early
    keeps the old runs it did not reach. An old entry that cannot be read is kept as it is,
    unless an entry of the same test and run (or a complete test) replaces it. A corrupt old
    file cannot be merged: it is replaced and the problem is returned in
    ``SaveResult.replaced_problem``.

    Load, merge and rename happen under the lock file ``<path>.lock`` (waiting at most
    ``lock_timeout`` seconds), so two sessions saving at once both end up in the file.
    A path that is not a baseline of ours (a device, a directory, a foreign file, a dangling
    link out of ``root``) is refused; a failure leaves the old file intact. Both raise
    ``BaselineError``.
    """
    given = Path(path)

    def failed(what: str, exc: OSError | ValueError) -> BaselineError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return BaselineError(
            f"could not {what} the baseline file {given}: {reason}; "
            "the previous file (if any) is unchanged",
            path=str(given),
            problem=str(exc),
        )

    try:
        target = check_target(given, KIND, root=root)
    except OutputPathError as exc:
        raise BaselineError(str(exc), path=str(given), problem=exc.problem) from None
    new = {r.key: r for r in entries}
    problem = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with locked(target, timeout=lock_timeout):
            old = None
            if keep_existing:
                try:
                    old = load(target)
                except BaselineError as exc:
                    problem = exc.problem or str(exc)
            merged, keep_raw, kept = _merge(old, new, set(complete))
            text = dumps(merged.values(), keep_raw)
            _check_readable(given, len(merged) + len(keep_raw), len(text.encode("utf-8")))
            write_atomic(given, text, kind=KIND, root=root)
    except OutputPathError as exc:
        raise BaselineError(str(exc), path=str(given), problem=exc.problem) from None
    except OSError as exc:
        raise failed("lock" if isinstance(exc, TimeoutError) else "write", exc) from exc
    except ValueError as exc:  # text that cannot be encoded (a lone surrogate in a name)
        raise failed("encode", exc) from exc
    return SaveResult(
        str(given),
        written=len(new),
        kept=kept,
        replaced_problem=problem,
        unreadable_kept=len(keep_raw),
    )


def _check_readable(path: Path, runs: int, size: int) -> None:
    """Refuse to write a file that ``load`` would reject as a whole (too many runs, too big)."""
    if runs > _MAX_RUNS or size > _MAX_FILE_BYTES:
        raise BaselineError(
            f"not saving the baseline file {path}: {runs} runs in {size / 1e6:.0f} MB would be "
            f"more than the {_MAX_RUNS} runs or {_MAX_FILE_BYTES // 2**20} MiB a baseline may "
            "hold; give some tests their own file with --agentperf-baseline-path",
            path=str(path),
            problem="too large",
        )


def _merge(
    old: Baseline | None, new: Mapping[RunKey, BaselineRun], whole: Collection[str]
) -> tuple[dict[RunKey, BaselineRun], list[Any], int]:
    """The runs to write (old ones not replaced, then ``new``), the old unreadable entries to
    keep as they are, and how many old runs were kept. A test in ``whole`` keeps no old run."""
    merged: dict[RunKey, BaselineRun] = {}
    keep_raw: list[Any] = []
    if old is not None:
        for key, run in old.runs.items():
            if key not in new and key[0] not in whole:
                merged[key] = run
        for raw in old.unreadable:
            claimed = _entry_key(raw)
            if claimed is None or (claimed not in new and claimed[0] not in whole):
                keep_raw.append(raw)
    kept = len(merged)
    merged.update(new)
    return merged, keep_raw, kept


# --------------------------------------------------------------------------- reading


class _Invalid(Exception):
    """A validation problem at a place in the document."""


def _fail(where: str, problem: str) -> _Invalid:
    return _Invalid(f"{where}: {problem}" if where else problem)


def _reject_constant(name: str) -> Any:
    raise _Invalid(f"non-finite number {name} (NaN/Infinity are not valid JSON here)")


def _depth_ok(value: Any, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return True


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected an object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _text(
    d: dict[str, Any],
    key: str,
    where: str,
    *,
    optional: bool = False,
    limit: int | None = _MAX_TEXT,
) -> str | None:
    value = d.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(f"{where}.{key}", f"expected a string, got {_kind(value)}")
    if limit is not None and len(value) > limit:
        raise _fail(f"{where}.{key}", f"string too long ({len(value)} characters)")
    return value


def _int(
    d: dict[str, Any],
    key: str,
    where: str,
    *,
    optional: bool = False,
    limit: int | None = 10**12,
) -> int | None:
    """A non-negative whole number; counts of calls are bounded, settings (``limit=None``)
    are whatever the writer saved."""
    value = d.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{where}.{key}", f"expected a whole number, got {_kind(value)}")
    if value < 0 or (limit is not None and value > limit):
        raise _fail(f"{where}.{key}", f"out of range ({value})")
    return value


def _num(d: dict[str, Any], key: str, where: str, *, optional: bool = False) -> float | None:
    """A finite, non-negative number: the writer saves any such value (and null for others)."""
    value = d.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{where}.{key}", f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise _fail(f"{where}.{key}", "out of range (too large)") from None
    if not math.isfinite(number) or number < 0:
        raise _fail(f"{where}.{key}", f"out of range ({value!r})")
    return number


def _optional_numbers(
    d: dict[str, Any], where: str, keys: tuple[str, ...]
) -> dict[str, float | None]:
    """``_num`` of each of ``keys`` (each optional), by key."""
    return {key: _num(d, key, where, optional=True) for key in keys}


def _parse_machine(value: Any, where: str) -> Machine:
    d = _obj(value, where)
    return Machine(
        cpu=_text(d, "cpu", where) or "unknown",
        cores=_int(d, "cores", where, optional=True),
        os=_text(d, "os", where) or "unknown",
        arch=_text(d, "arch", where) or "unknown",
        python=_text(d, "python", where) or "unknown",
        implementation=_text(d, "implementation", where) or "unknown",
        platform=_text(d, "platform", where) or "unknown",
        workers=_int(d, "workers", where, optional=True, limit=100_000),
    )


def _parse_shape(value: Any, where: str) -> LoadShape:
    d = _obj(value, where)
    warmup = _int(d, "warmup", where, limit=None)
    assert warmup is not None
    return LoadShape(
        requests=_int(d, "requests", where, optional=True, limit=None),
        concurrency=_int(d, "concurrency", where, optional=True, limit=None),
        rate=_num(d, "rate", where, optional=True),
        arrival=_text(d, "arrival", where) or "",
        duration=_num(d, "duration", where, optional=True),
        warmup=warmup,
        timeout=_num(d, "timeout", where, optional=True) or 0.0,
        stages=_parse_stages(d.get("stages"), f"{where}.stages"),
    )


def _parse_stages(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    """The stages of a load shape: absent (none), or an array of [duration, target] pairs."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, f"expected an array of stages, got {_kind(value)}")
    if len(value) > _MAX_STAGES:
        raise _fail(where, f"{len(value)} stages, more than the {_MAX_STAGES} allowed")
    stages = []
    for k, pair in enumerate(value):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(f"{where}[{k}]", f"expected [duration, target], got {_kind(pair)}")
        duration = _num({"duration": pair[0]}, "duration", f"{where}[{k}]")
        target = _num({"target": pair[1]}, "target", f"{where}[{k}]")
        assert duration is not None and target is not None
        stages.append((duration, target))
    return tuple(stages)


def _parse_samples(value: Any, where: str) -> FloatArray:
    if not isinstance(value, list):
        raise _fail(where, f"expected an array of latencies, got {_kind(value)}")
    if len(value) > _MAX_READ_SAMPLES:
        raise _fail(where, f"{len(value)} samples, more than the {_MAX_READ_SAMPLES} allowed")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise _fail(where, "expected numbers only")
    arr = np.asarray(value, dtype=np.float64)
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1e9):
        raise _fail(where, "latencies must be finite, non-negative seconds")
    arr.flags.writeable = False
    return arr


def _parse_run(value: Any, where: str) -> BaselineRun:
    d = _obj(value, where)
    if not _depth_ok(d, 2):
        raise _fail(where, f"nested deeper than {_MAX_DEPTH} levels")
    lat = _obj(d.get("latency"), f"{where}.latency")
    lw = f"{where}.latency"
    samples = _parse_samples(d.get("samples"), f"{where}.samples")
    in_order = d.get("order") == "start"  # else sorted (files from before the order was kept)
    if not in_order:
        samples = np.sort(samples)
        samples.flags.writeable = False
    n = _int(lat, "n", lw)
    assert n is not None
    if samples.size > n:
        raise _fail(f"{where}.samples", f"{samples.size} samples but latency.n is {n}")
    latency = Stats(n=n, **_optional_numbers(lat, lw, _STATS), samples=samples)
    requests = _int(d, "requests", where)
    errors = _int(d, "errors", where)
    timeouts = _int(d, "timeouts", where)
    assert requests is not None and errors is not None and timeouts is not None
    if errors > requests or timeouts > errors:
        raise _fail(
            where,
            f"inconsistent counts (requests {requests}, errors {errors}, timeouts {timeouts})",
        )
    return BaselineRun(
        test=_text(d, "test", where, limit=None) or "",
        run=_text(d, "run", where, limit=None) or "",
        shape=_parse_shape(d.get("shape"), f"{where}.shape"),
        requests=requests,
        errors=errors,
        timeouts=timeouts,
        duration=_num(d, "duration", where, optional=True) or 0.0,
        throughput=_num(d, "throughput", where, optional=True) or 0.0,
        latency=latency,
        machine=_parse_machine(d.get("machine"), f"{where}.machine"),
        commit=_text(d, "commit", where, optional=True),
        plugin_version=_text(d, "plugin_version", where, optional=True) or "unknown",
        created=_text(d, "created", where, optional=True) or "",
        figures=MappingProxyType(_optional_numbers(d, where, STORED_FIELDS)),
        cpu_share=_num(d, "cpu_share", where, optional=True),
        contention=_parse_contention(d.get("contention"), f"{where}.contention"),
        in_order=in_order,
        capacity=_parse_capacity(d.get("capacity"), f"{where}.capacity"),
    )


_MAX_SLO = 64
"""Most budgets a capacity search's SLO may hold in the file."""


def _positive(d: dict[str, Any], key: str, where: str, *, optional: bool = False) -> float | None:
    """``_num``, above zero."""
    value = _num(d, key, where, optional=optional)
    if value is not None and not value > 0:
        raise _fail(f"{where}.{key}", f"must be above 0 ({value!r})")
    return value


def _parse_capacity(value: Any, where: str) -> Capacity | None:
    """A capacity search's SLO, options and bracket; absent for an ordinary run."""
    if value is None:
        return None
    d = _obj(value, where)
    slo_doc = _obj(d.get("slo"), f"{where}.slo")
    if not slo_doc or len(slo_doc) > _MAX_SLO:
        raise _fail(f"{where}.slo", f"expected 1 to {_MAX_SLO} budgets, got {len(slo_doc)}")
    slo: dict[str, float] = {}
    for name in slo_doc:
        if len(name) > _MAX_TEXT:
            raise _fail(f"{where}.slo", f"budget name too long ({len(name)} characters)")
        limit = _num(slo_doc, name, f"{where}.slo")
        assert limit is not None
        slo[name] = limit
    search = _parse_search(d.get("search"), f"{where}.search")
    max_rate = _positive(d, "max_rate", where, optional=True)
    failing = _positive(d, "first_failing", where, optional=True)
    if max_rate is not None and failing is not None and not failing > max_rate:
        raise _fail(where, f"first_failing {failing!r} is not above max_rate {max_rate!r}")
    return Capacity(
        slo=MappingProxyType(slo),
        max_rate=max_rate,
        first_failing=failing,
        stopped=_text(d, "stopped", where, optional=True) or "",
        search=search,
    )


def _parse_search(value: Any, where: str) -> CapacitySearchOptions | None:
    if value is None:
        return None
    d = _obj(value, where)
    start, limit = _positive(d, "start", where), _positive(d, "limit", where)
    factor, resolution = _positive(d, "factor", where), _positive(d, "resolution", where)
    step = _positive(d, "step", where)
    repeats = _int(d, "repeats", where, limit=10**6)
    assert start is not None and limit is not None and factor is not None
    assert resolution is not None and step is not None and repeats is not None
    if not limit > start:
        raise _fail(where, f"limit {limit!r} is not above start {start!r}")
    if not factor > 1:
        raise _fail(f"{where}.factor", f"must be above 1 ({factor!r})")
    return CapacitySearchOptions(
        start=start,
        limit=limit,
        factor=factor,
        resolution=resolution,
        step=step,
        repeats=repeats,
        time_budget=_positive(d, "time_budget", where, optional=True),
    )


def _parse_contention(value: Any, where: str) -> Contention | None:
    if value is None:
        return None
    d = _obj(value, where)
    return Contention(
        **_optional_numbers(d, where, tuple(_CONTENTION_DIGITS)),
        cores=_int(d, "cores", where, optional=True),
        source=_text(d, "source", where, optional=True) or "unavailable",
    )


def parse(text: str, path: str = "<baseline>") -> Baseline:
    """Validate the text of a baseline file; raise BaselineError naming ``path`` and the problem."""

    def error(problem: str) -> BaselineError:
        return BaselineError(
            f"baseline file {path} is unusable: {problem}. It is ignored (no comparison); "
            "re-create it with --agentperf-baseline",
            path=path,
            problem=problem,
        )

    if not text.strip():
        raise error("the file is empty")
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except _Invalid as exc:
        raise error(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise error(
            f"not valid JSON, truncated or corrupt ({exc.msg} at line {exc.lineno} "
            f"column {exc.colno})"
        ) from None
    except (RecursionError, ValueError) as exc:
        raise error(f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise error(f'not a pytest-agentperf baseline (no "format": "{FORMAT}" field)')
    schema = doc.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise error("the schema version is missing or not a number")
    if schema > BASELINE_SCHEMA_VERSION:
        raise error(
            f"written with schema {schema} by a newer pytest-agentperf; this version "
            f"reads schema {BASELINE_SCHEMA_VERSION}: upgrade pytest-agentperf"
        )
    if schema < 1:
        raise error(f"unknown schema version {schema}")
    if not _depth_ok({k: v for k, v in doc.items() if k != "runs"}):
        raise error(f"nested deeper than {_MAX_DEPTH} levels")
    runs_doc = doc.get("runs")
    if not isinstance(runs_doc, list):
        raise error(f"runs: expected an array, got {_kind(runs_doc)}")
    if len(runs_doc) > _MAX_RUNS:
        raise error(f"runs: {len(runs_doc)} entries, more than the {_MAX_RUNS} allowed")
    runs: dict[RunKey, BaselineRun] = {}
    problems: list[str] = []
    unreadable: list[Any] = []
    # One bad entry (edited by hand, written by a buggy version) is set aside on its own: the
    # other tests keep their baseline, and a save keeps the entry as it is.
    for i, item in enumerate(runs_doc):
        try:
            run = _parse_run(item, f"runs[{i}]")
            if run.key in runs:
                raise _fail(f"runs[{i}]", "a second entry for the same test and run")
        except _Invalid as exc:
            problems.append(
                f"baseline file {path}: entry {_describe_entry(item)} is ignored ({exc}); "
                "re-record that test with --agentperf-baseline"
            )
            unreadable.append(item)
            continue
        runs[run.key] = run
    return Baseline(
        path=path,
        runs=MappingProxyType(runs),
        problems=tuple(problems),
        unreadable=tuple(unreadable),
    )


def _shown(text: str) -> str:
    """``text`` quoted and cut short for a message (a test id may be very long)."""
    if len(text) <= _MAX_SHOWN:
        return repr(text)
    return repr(text[: _MAX_SHOWN - 3] + "...")


def _describe_entry(value: Any) -> str:
    """How a message names an entry: by its test and run when it gives them."""
    key = _entry_key(value)
    if key is None:
        return "without a test id and run name"
    return f"of test {_shown(key[0])} run {_shown(key[1])}"


def _unreadable(name: str, exc: OSError) -> BaselineError:
    return BaselineError(
        f"baseline file {name} cannot be read: {exc.strerror or exc}", path=name, problem=str(exc)
    )


def load(path: str | os.PathLike[str]) -> Baseline | None:
    """The baseline at ``path``; None when there is no file; BaselineError when it is unusable."""
    p = Path(path)
    name = str(p)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    if not p.is_file():
        raise BaselineError(
            f"baseline file {name} is not a regular file", path=name, problem="not a regular file"
        )
    if size > _MAX_FILE_BYTES:
        limit = _MAX_FILE_BYTES // 2**20
        problem = f"the file is {size / 1e6:.0f} MB, larger than the {limit} MiB allowed"
        raise BaselineError(
            f"baseline file {name} is unusable: {problem}", path=name, problem=problem
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise _unreadable(name, exc) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        problem = "not UTF-8 text (a binary or foreign file)"
        raise BaselineError(
            f"baseline file {name} is unusable: {problem}. It is ignored (no comparison); "
            "re-create it with --agentperf-baseline",
            path=name,
            problem=problem,
        ) from None
    return parse(text, name)
