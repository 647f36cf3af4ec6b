"""The history folder: one JSON file per session and machine, written atomically, read warily.

Layout: ``DIR/<machine id>/<UTC time>-<commit>-<random>.json`` (``.json.gz`` when large). The
machine id is a short hash of what the baseline gate compares between machines (CPU model,
cores, OS and architecture, Python implementation and major.minor version, pytest-xdist
workers), so series from different machines never mix unless asked; ``AGENTPERF_MACHINE``
names the machine instead (a CI pool whose runners should share one series). Each file holds
every completed run of the session: its summary figures and a compact distribution (101
latency quantiles, and TTFT ones for streaming runs), about 2 KB a run.

Sessions writing at once each write their own file (a unique name, written atomically), then
prune the oldest beyond ``keep`` under the machine folder's lock. Reading validates each file
and bounds its size: a corrupt or foreign file is skipped and named in ``History.problems``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import math
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..atomic import FileKind, check_target, json_kind, write_atomic
from ..baseline.environment import Machine, git_commit
from ..baseline.store import machine_dict, shape_dict
from ..locking import locked
from ..results import PerfResult, Stats

FORMAT = "pytest-agentperf-history"
SCHEMA_VERSION = 1
DEFAULT_KEEP = 500
"""Sessions kept per machine; the oldest beyond it are removed when a session is written."""
QUANTILES = 101
"""Latency (and TTFT) quantiles kept per run: every percent from the minimum to the maximum."""
GZIP_ABOVE = 256 * 1024
"""A session file larger than this (bytes of JSON) is written gzipped."""
COMMIT_VARIABLES = (
    "AGENTPERF_COMMIT",
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "BUILDKITE_COMMIT",
    "CIRCLE_SHA1",
    "GIT_COMMIT",
    "TRAVIS_COMMIT",
    "BITBUCKET_COMMIT",
)
"""Where the commit is read when git cannot tell it, in this order."""
MACHINE_VARIABLE = "AGENTPERF_MACHINE"
"""Names this machine's series instead of the fingerprint (e.g. one name for a CI pool)."""

_MAX_FILE_BYTES = 16 * 1024 * 1024
_MAX_RUNS = 20_000
_NAME_RE = re.compile(r"[^0-9A-Za-z._-]+")
_STAMP = "%Y%m%dT%H%M%S%fZ"

KIND: FileKind = json_kind("pytest-agentperf history file", FORMAT)

FIGURES = (
    "p50",
    "p90",
    "p95",
    "p99",
    "mean_latency",
    "ttft_p50",
    "ttft_p95",
    "error_rate",
    "throughput",
    "tokens_per_call",
    "cost_per_call",
)
"""The summary figures kept per run (seconds, fractions, calls per second, tokens, USD)."""

RunKey = tuple[str, str]


@dataclass(frozen=True)
class HistoryRun:
    """One run of one test as a history file keeps it."""

    test: str
    run: str
    status: str
    shape: Mapping[str, Any]
    """The load shape (requests, concurrency, rate, arrival, duration, warmup, timeout)."""
    requests: int
    errors: int
    figures: Mapping[str, float | None]
    """``FIGURES`` by name; None when unknown (no successful call, no usage, no price)."""
    latency_quantiles: tuple[float, ...] = ()
    ttft_quantiles: tuple[float, ...] = ()

    @property
    def key(self) -> RunKey:
        return (self.test, self.run)


@dataclass(frozen=True)
class HistorySession:
    """One session's file: where, when, at which commit, and its runs."""

    path: str
    machine_id: str
    machine: Machine
    commit: str | None
    created: datetime
    plugin_version: str
    runs: Mapping[RunKey, HistoryRun] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class History:
    """The sessions read from a history folder, oldest first, and the files set aside."""

    sessions: tuple[HistorySession, ...] = ()
    problems: tuple[str, ...] = ()

    def machines(self) -> tuple[str, ...]:
        """The machine ids present, in order of first appearance."""
        return tuple(dict.fromkeys(s.machine_id for s in self.sessions))

    def of_machine(self, machine_id: str) -> History:
        """Only the sessions of ``machine_id``."""
        own = tuple(s for s in self.sessions if s.machine_id == machine_id)
        return History(own, self.problems)


# --------------------------------------------------------------------------- identity


def machine_id(machine: Machine) -> str:
    """The machine's id: ``AGENTPERF_MACHINE`` when set, else a 12-hex hash of what the
    baseline gate compares between machines (kernel and patch releases are left out)."""
    named = _NAME_RE.sub("-", os.environ.get(MACHINE_VARIABLE, "")).strip(".-")[:64]
    if named:
        return named
    print_ = {
        "cpu": machine.cpu,
        "cores": machine.cores,
        "os": machine.os,
        "arch": machine.arch,
        "implementation": machine.implementation,
        "python": ".".join(machine.python.split(".")[:2]),
        "workers": machine.workers,
    }
    digest = hashlib.sha256(json.dumps(print_, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def session_commit(cwd: str | os.PathLike[str] | None = None) -> tuple[str | None, str | None]:
    """The commit this session measured and where it was read: git in ``cwd`` when it can
    tell, else the first of ``COMMIT_VARIABLES`` that is set; (None, None) otherwise."""
    sha = git_commit(cwd)
    if sha:
        return sha, "git"
    for name in COMMIT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value[:100], name
    return None, None


# --------------------------------------------------------------------------- building


def _finite(value: float | None, digits: int = 9) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{float(value):.{digits}g}")


def quantiles(stats: Stats | None) -> tuple[float, ...]:
    """``QUANTILES`` evenly spaced quantiles of the samples (minimum to maximum), rounded to
    microseconds; () without samples."""
    if stats is None:
        return ()
    arr = np.asarray(stats.samples, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return ()
    values = np.quantile(arr, np.linspace(0.0, 1.0, QUANTILES))
    return tuple(round(float(v), 6) for v in values)


def run_from_result(test: str, result: PerfResult, status: str) -> HistoryRun:
    """What a history file keeps of ``result`` (run ``result.name`` of test ``test``)."""
    lat, ttft = result.latency, result.ttft
    figures = {
        "p50": lat.p50,
        "p90": lat.p90,
        "p95": lat.p95,
        "p99": lat.p99,
        "mean_latency": lat.mean,
        "ttft_p50": ttft.p50 if ttft is not None else None,
        "ttft_p95": ttft.p95 if ttft is not None else None,
        "error_rate": result.error_rate if result.requests else None,
        "throughput": result.throughput,
        "tokens_per_call": result.usage.per_call.total_tokens,
        "cost_per_call": result.cost.per_call,
    }
    return HistoryRun(
        test=test,
        run=result.name,
        status=status,
        shape=MappingProxyType(shape_dict(result.shape)),
        requests=result.requests,
        errors=result.errors,
        figures=MappingProxyType({k: _finite(v) for k, v in figures.items()}),
        latency_quantiles=quantiles(lat),
        ttft_quantiles=quantiles(ttft),
    )


def dumps(session: HistorySession, commit_source: str | None = None) -> str:
    """The JSON text of a session file (the format marker first, so it is recognised)."""
    doc = {
        "format": FORMAT,
        "schema": SCHEMA_VERSION,
        "machine_id": session.machine_id,
        "created": session.created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "commit": session.commit,
        "commit_source": commit_source,
        "plugin_version": session.plugin_version,
        "machine": machine_dict(session.machine),
        "runs": [
            {
                "test": r.test,
                "run": r.run,
                "status": r.status,
                "shape": dict(r.shape),
                "requests": r.requests,
                "errors": r.errors,
                "figures": dict(r.figures),
                "latency_quantiles": list(r.latency_quantiles),
                "ttft_quantiles": list(r.ttft_quantiles),
            }
            for r in sorted(session.runs.values(), key=lambda r: r.key)
        ],
    }
    return json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- writing


def file_name(created: datetime, commit: str | None) -> str:
    """``<UTC time>-<commit, 12 characters>-<random>``: sorts by time, never collides."""
    short = _NAME_RE.sub("-", commit or "")[:12] or "no-commit"
    return f"{created.strftime(_STAMP)}-{short}-{uuid.uuid4().hex[:8]}"


def _write_gzip(path: Path, text: str, root: str | os.PathLike[str] | None) -> Path:
    """``text`` gzipped to ``path`` atomically: a temp file beside it, fsynced, renamed.
    (``atomic.write_atomic`` writes text only; the checks are the same ``check_target``.)"""
    target = check_target(path, KIND, root=root)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(text.encode("utf-8"))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def session_files(folder: Path) -> list[Path]:
    """The session files of one machine folder, oldest first (their names start with the
    UTC time)."""
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = [p for p in entries if p.name.endswith((".json", ".json.gz")) and p.is_file()]
    return sorted(p for p in files if not p.name.startswith("."))


@dataclass(frozen=True)
class WriteResult:
    """What ``write_session`` did: the file written and how many old ones it removed."""

    path: Path
    removed: int
    kept: int


def write_session(
    folder: str | os.PathLike[str],
    session: HistorySession,
    *,
    keep: int = DEFAULT_KEEP,
    commit_source: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> WriteResult:
    """Add ``session`` to the history ``folder`` and keep the newest ``keep`` of its machine.

    Raises ``OutputPathError`` (a path that is not ours) or ``OSError``; ``LockTimeout``
    when another session held the machine folder's lock for a minute.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    machine_dir = Path(folder) / session.machine_id
    machine_dir.mkdir(parents=True, exist_ok=True)
    text = dumps(session, commit_source)
    name = file_name(session.created, session.commit)
    with locked(machine_dir / ".history"):  # one pruner at a time; each writes its own file
        if len(text.encode("utf-8")) > GZIP_ABOVE:
            written = _write_gzip(machine_dir / f"{name}.json.gz", text, root)
        else:
            written = write_atomic(machine_dir / f"{name}.json", text, kind=KIND, root=root)
        files = session_files(machine_dir)
        removed = 0
        for old in files[: max(0, len(files) - keep)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
                removed += 1
    return WriteResult(written, removed, min(len(files), keep))


# --------------------------------------------------------------------------- reading


class _Invalid(ValueError):
    pass


def _read_text(path: Path) -> str:
    if path.stat().st_size > _MAX_FILE_BYTES:
        raise _Invalid(f"larger than {_MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
        if len(data) > _MAX_FILE_BYTES:
            raise _Invalid(f"unpacks to more than {_MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return data.decode("utf-8")
    return path.read_text(encoding="utf-8")


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{where}: expected a number, got {type(value).__name__}")
    return float(value) if math.isfinite(value) else None


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid(f"{where}: expected a whole number >= 0")
    return value


def _text(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{where}: expected a string")
    return value


def _quantile_list(value: Any, where: str) -> tuple[float, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 10 * QUANTILES:
        raise _Invalid(f"{where}: expected a list of at most {10 * QUANTILES} numbers")
    out = []
    for v in value:
        number = _number(v, where)
        if number is None:
            raise _Invalid(f"{where}: expected finite numbers")
        out.append(number)
    return tuple(out)


def _parse_run(value: Any, where: str) -> HistoryRun:
    if not isinstance(value, dict):
        raise _Invalid(f"{where}: expected an object")
    figures_doc = value.get("figures")
    if not isinstance(figures_doc, dict):
        raise _Invalid(f"{where}.figures: expected an object")
    shape = value.get("shape")
    if not isinstance(shape, dict):
        raise _Invalid(f"{where}.shape: expected an object")
    return HistoryRun(
        test=str(_text(value.get("test"), f"{where}.test")),
        run=str(_text(value.get("run"), f"{where}.run")),
        status=str(_text(value.get("status"), f"{where}.status")),
        shape=MappingProxyType(
            {k: v for k, v in shape.items() if isinstance(v, (str, int, float, type(None)))}
        ),
        requests=_int(value.get("requests"), f"{where}.requests"),
        errors=_int(value.get("errors"), f"{where}.errors"),
        figures=MappingProxyType(
            {k: _number(figures_doc.get(k), f"{where}.figures.{k}") for k in FIGURES}
        ),
        latency_quantiles=_quantile_list(value.get("latency_quantiles"), f"{where}.latency"),
        ttft_quantiles=_quantile_list(value.get("ttft_quantiles"), f"{where}.ttft"),
    )


def _parse_machine(value: Any) -> Machine:
    if not isinstance(value, dict):
        raise _Invalid("machine: expected an object")
    texts = {k: value.get(k) for k in ("cpu", "os", "arch", "python", "implementation")}
    texts["platform"] = value.get("platform")
    known = {k: str(v)[:200] for k, v in texts.items() if isinstance(v, str)}
    cores = value.get("cores")
    workers = value.get("workers")
    return Machine(
        **known,
        cores=cores if isinstance(cores, int) and not isinstance(cores, bool) else None,
        workers=workers if isinstance(workers, int) and not isinstance(workers, bool) else None,
    )


def parse_session(text: str, path: str = "<history>") -> HistorySession:
    """The session a history file holds; ``ValueError`` saying what is wrong with it."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _Invalid(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Invalid(f'not a pytest-agentperf history file (no "format": "{FORMAT}")')
    schema = doc.get("schema")
    if schema != SCHEMA_VERSION:
        raise _Invalid(f"schema {schema!r} is not {SCHEMA_VERSION} (written by another version)")
    created_text = str(_text(doc.get("created"), "created"))
    try:
        created = datetime.strptime(created_text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise _Invalid(f"created: {created_text[:40]!r} is not a UTC time") from None
    runs_doc = doc.get("runs")
    if not isinstance(runs_doc, list) or len(runs_doc) > _MAX_RUNS:
        raise _Invalid(f"runs: expected a list of at most {_MAX_RUNS} runs")
    runs = [_parse_run(r, f"runs[{i}]") for i, r in enumerate(runs_doc)]
    return HistorySession(
        path=path,
        machine_id=str(_text(doc.get("machine_id"), "machine_id"))[:64],
        machine=_parse_machine(doc.get("machine")),
        commit=_text(doc.get("commit"), "commit", optional=True),
        created=created.replace(tzinfo=timezone.utc),
        plugin_version=str(_text(doc.get("plugin_version"), "plugin_version")),
        runs=MappingProxyType({r.key: r for r in runs}),
    )


def load_history(
    folder: str | os.PathLike[str], *, machine: str | None = None, last: int | None = None
) -> History:
    """The sessions under ``folder`` (all machines, or only ``machine``), oldest first; with
    ``last``, only the newest ``last`` files of each machine are read. A file that cannot be
    read or is not a valid history file is skipped and named in ``History.problems``."""
    root = Path(folder)
    if not root.is_dir():
        return History()
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if machine is not None:
        dirs = [d for d in dirs if d.name == machine]
    sessions: list[HistorySession] = []
    problems: list[str] = []
    for d in dirs:
        files = session_files(d)
        for path in files[-last:] if last else files:
            try:
                session = parse_session(_read_text(path), str(path))
            except (OSError, UnicodeDecodeError, ValueError, EOFError) as exc:
                problems.append(f"history file {path} skipped: {exc}")
                continue
            if session.machine_id != d.name:
                problems.append(
                    f"history file {path} skipped: it belongs to machine "
                    f"{session.machine_id[:64]!r}, not to its folder's {d.name!r}"
                )
                continue
            sessions.append(session)
    sessions.sort(key=lambda s: (s.created, s.path))
    return History(tuple(sessions), tuple(problems))


def new_session(
    runs: Iterable[HistoryRun],
    *,
    machine: Machine,
    commit: str | None,
    plugin_version: str,
    created: datetime | None = None,
) -> HistorySession:
    """A session of ``runs`` measured now (or at ``created``) on ``machine``."""
    when = created or datetime.now(timezone.utc)
    return HistorySession(
        path="",
        machine_id=machine_id(machine),
        machine=machine,
        commit=commit,
        created=when.astimezone(timezone.utc),
        plugin_version=plugin_version,
        runs=MappingProxyType({r.key: r for r in runs}),
    )


def runs_of(
    sessions: Sequence[HistorySession], key: RunKey
) -> list[tuple[HistorySession, HistoryRun]]:
    """Each session that has run ``key``, with that run, oldest first."""
    return [(s, s.runs[key]) for s in sessions if key in s.runs]
