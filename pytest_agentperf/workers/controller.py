"""The controller of a run split over workers: opens the execnet gateways, starts the workers
together, watches them, and merges what they measured.

The start has two phases. Each worker first rebuilds the agent and makes its warmup calls,
then says "ready"; once every worker is ready the controller sends each one "go" with one
start time a little ahead (the wall clock), and each worker waits for that moment and starts.
How late each one really started is its start skew (``WorkerShard.start_skew``).

A worker that reports an error, whose process dies (its channel closes) or that sends nothing
for ``HANG_AFTER`` seconds (it sends a heartbeat every ``BEAT_EVERY``) fails the whole run: the
other workers are stopped (their processes ended), and ``WorkerError`` names the worker and the
reason; nothing of the run is reported. Gateways of runs that succeed are kept for the next
run of the session (a process costs about half a second to start), and closed at exit. The
gateways of a run are opened at once, each on a thread of its own.

Early abort (``abort_on``) is judged by each worker on its own calls. The first worker that
aborts says so at once; the others are stopped as when a worker fails (their processes ended),
and the run is reported as aborted, naming that worker, with the calls of the workers that
sent theirs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ..engine import Progress, ProgressSink, RawRun
from ..engine.log import MergedLog
from ..engine.target import LazyInputs, make_target
from ..errors import SettingsError, WorkerError
from ..observers.windows import compute_windows
from ..pricing import PriceTable
from ..results import WorkerShard
from ..settings import Settings
from .merge import ShardReport, merge_shards
from .remote import settings_to_plain
from .split import shard_count, split
from .transfer import encode_agent, encode_inputs

BEAT_EVERY = 0.5
"""Seconds between a worker's heartbeats."""
REMOTE_SOURCE = f"""
import threading
importing = threading.Event()

def beat():  # beats while the package (numpy, the engine, the agent's module) is imported
    while not importing.wait({BEAT_EVERY}):
        channel.send(("beat", 0, 0))

threading.Thread(target=beat, daemon=True).start()
try:
    from pytest_agentperf.workers.remote import serve
finally:
    importing.set()
serve(channel)
"""
"""What a worker runs (execnet sends the source; ``channel`` is its end of the channel)."""
HANG_AFTER = 30.0
"""Seconds without a word from a worker after which it counts as hung."""
START_MARGIN_LOCAL = 0.05
START_MARGIN_REMOTE = 0.5
"""Seconds between "go" and the common start: the message must reach every worker first."""
TERMINATE_WAIT = 1.0
"""Seconds a stopped worker is given to exit before its process is killed."""
_END = object()
MEMORY_BUDGETS = ("memory", "memory_per_1k_calls")


def _execnet() -> Any:
    try:
        import execnet
    except ImportError:
        raise SettingsError(
            "workers: splitting a run over workers needs execnet; install it with "
            "pip install 'pytest-agentperf[workers]' (or pip install execnet)",
            key="workers",
        ) from None
    return execnet


@dataclass(frozen=True)
class Gateway:
    """A worker process: its execnet gateway, in an execnet group of its own, so that it can
    be ended (killed, if it does not exit) without touching the others."""

    spec: str
    gateway: Any
    group: Any


class GatewayPool:
    """Idle worker gateways by spec, kept between the runs of a session."""

    def __init__(self) -> None:
        self._idle: dict[str, list[Gateway]] = {}
        self._lock = threading.Lock()

    def take(self, spec: str) -> Gateway:
        """An idle gateway of ``spec`` that still answers, else a new one."""
        with self._lock:
            idle = self._idle.get(spec, [])
            while idle:
                gateway = idle.pop()
                if gateway.gateway.hasreceiver():
                    return gateway
        group = _execnet().Group()
        return Gateway(spec, group.makegateway(spec), group)

    def give_back(self, gateway: Gateway) -> None:
        with self._lock:
            self._idle.setdefault(gateway.spec, []).append(gateway)

    def close(self) -> None:
        with self._lock:
            gateways = [g for idle in self._idle.values() for g in idle]
            self._idle.clear()
        end_gateways(gateways)


def end_gateways(gateways: Sequence[Gateway]) -> None:
    """End these gateways' processes at once (in parallel), killing those that do not exit."""

    def end(gateway: Gateway) -> None:
        with contextlib.suppress(Exception):  # already gone
            gateway.group.terminate(timeout=TERMINATE_WAIT)

    threads = [threading.Thread(target=end, args=(g,), daemon=True) for g in gateways]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TERMINATE_WAIT * 3)


POOL = GatewayPool()
atexit.register(POOL.close)


@dataclass
class _Worker:
    name: str
    spec: str
    gateway: Gateway
    channel: Any
    offset: float
    seen: float
    ready: dict[str, Any] | None = None
    payload: dict[str, Any] | None = None
    done: int = 0
    errors: int = 0
    stopped: bool = False
    """Ended by the controller because another worker aborted the run."""


@dataclass
class _Abort:
    """The first worker that aborted the run, and why."""

    worker: _Worker
    reason: str
    others_stopped: bool = False


@dataclass
class WorkerRun:
    """One run split over the gateways ``specs``; as a run observer it hands the result its
    ``workers`` field (``result_fields``)."""

    specs: tuple[str, ...]
    warn: Any = None
    shards: tuple[WorkerShard, ...] = field(default=())
    window: float | None = None
    """The run's ``window`` setting, for the time windows of the merged calls."""
    _abort: _Abort | None = field(default=None, init=False, repr=False)

    # -- RunObserver: the workers' figures go into the result ----------------------------
    def on_start(self, t0: float) -> None:
        pass

    def on_tick(self, view: Any) -> str | None:
        return None

    def on_stop(self) -> None:
        pass

    def result_fields(self, log: MergedLog, duration: float) -> dict[str, Any]:
        """``workers``, and the time windows of the merged calls (no RSS: each worker's
        memory is its own)."""
        windows = compute_windows(
            log.start, log.end, log.status, duration=duration, window=self.window
        )
        return {"workers": self.shards, "windows": windows}

    # -- the run -----------------------------------------------------------------------
    def run(
        self,
        fn: Any,
        inputs: Any,
        settings: Settings,
        *,
        progress: ProgressSink | None = None,
        detail: int = 0,
        prices: PriceTable | None = None,
    ) -> RawRun:
        """Split the run over the workers, run it, and merge what they measured; ``prices``:
        the session's price table, sent to each worker for its share of a ``total_cost``
        budget (None: the bundled prices)."""
        target = make_target(fn, inputs)  # the agent and inputs are checked here first
        items = target.inputs
        if isinstance(items, LazyInputs):
            raise SettingsError(
                "workers: the inputs are an iterator of unknown length, which cannot be split "
                "over workers; pass a list",
                key="workers",
            )
        agent = encode_agent(fn)
        listed = None if items is None else list(items)
        if listed is not None:
            encode_inputs(listed)  # refused here, before any process starts
        self.window = settings.window
        self._say_unmeasured(settings)
        n = shard_count(settings, len(self.specs))
        if n < len(self.specs) and self.warn is not None:
            self.warn(
                f"workers: {n} of {len(self.specs)} workers used: a run has at most one "
                "worker per call in flight (concurrency=) and per call (requests=)"
            )
        shards = split(settings, listed, n)
        _execnet()
        workers: list[_Worker] = []
        inbox: queue.Queue[tuple[int, Any]] = queue.Queue()
        self._abort = None
        gateways: list[Gateway] = []
        succeeded = False
        begun = time.monotonic()
        try:
            gateways = start_all([(self.specs[s.index], f"gw{s.index}") for s in shards])
            for shard, gateway in zip(shards, gateways, strict=True):
                spec = gateway.spec
                channel = gateway.gateway.remote_exec(REMOTE_SOURCE)
                workers.append(
                    _Worker(f"gw{shard.index}", spec, gateway, channel, shard.start_offset, 0.0)
                )
                channel.send(
                    {
                        "agent": agent,
                        "inputs": None if shard.inputs is None else encode_inputs(shard.inputs),
                        "settings": settings_to_plain(shard.settings),
                        "detail": detail,
                        "prices": None if prices is None else prices.to_plain(),
                        "beat_every": BEAT_EVERY,
                        "sys_path": [p for p in sys.path if isinstance(p, str)],
                        "cwd": os.getcwd() if spec.startswith("popen") else None,
                    }
                )
                _listen(channel, shard.index, inbox)
            now = time.monotonic()
            for worker in workers:
                worker.seen = now
            self._wait(workers, inbox, "ready", progress, settings)
            remote = any(not w.spec.startswith("popen") for w in workers)
            start = time.time() + (START_MARGIN_REMOTE if remote else START_MARGIN_LOCAL)
            for worker in workers:
                worker.channel.send(("go", start + worker.offset))
            self._wait(workers, inbox, "done", progress, settings)
            reports = [
                ShardReport(
                    w.name,
                    w.spec,
                    str((w.ready or {}).get("host", "")),
                    int((w.ready or {}).get("pid", 0)),
                    w.payload,
                    w.offset,
                )
                for w in workers
                if w.payload is not None  # not those stopped when another one aborted
            ]
            raw, self.shards = merge_shards(reports, start)
            if self._abort is not None:
                raw = replace(raw, aborted=self._aborted(workers, self._abort))
            succeeded = True
            return raw
        finally:
            if progress is not None:  # ends the progress line
                done = sum(len(w.payload["status"]) if w.payload else w.done for w in workers)
                total, elapsed = settings.requests, time.monotonic() - begun
                progress(Progress(done, total, elapsed, settings.duration, 0, finished=True))
            if succeeded:
                for worker in workers:
                    if not worker.stopped:
                        POOL.give_back(worker.gateway)
            else:  # stop the others at once: nothing of this run is reported
                end_gateways(gateways)

    def _say_unmeasured(self, settings: Settings) -> None:
        """Warn about what a run split over workers does not measure."""
        unmeasured = [key for key in MEMORY_BUDGETS if key in settings.budgets]
        if settings.memory_profile:
            unmeasured.append("memory_profile")
        if unmeasured and self.warn is not None:
            self.warn(
                "workers: not measured when a run is split over workers (each process's "
                f"memory is its own): {', '.join(unmeasured)}"
            )

    def _aborted(self, workers: list[_Worker], abort: _Abort) -> str:
        """The merged run's ``aborted``: the first aborting worker's reason, naming it, and
        which workers were stopped (their calls are not in the result)."""
        # the monitor says "aborted after N calls: why"; N counts that worker's calls only
        match = re.match(r"aborted after (\d+) calls?: (.*)$", abort.reason, re.DOTALL)
        if match:
            text = f"aborted: {abort.worker.name}: after {match[1]} of its calls: {match[2]}"
        else:
            text = f"aborted: {abort.worker.name}: {abort.reason}"
        stopped = [w.name for w in workers if w.stopped]
        if stopped:
            its = "its" if len(stopped) == 1 else "their"
            text += f"; {', '.join(stopped)} stopped, {its} calls are not in the result"
        return text

    def _stop_others(self, workers: list[_Worker], aborted: _Worker) -> None:
        """Stop every worker but ``aborted`` that has not sent its calls yet: their processes
        are ended at once, as when a worker fails."""
        others = [w for w in workers if w is not aborted and w.payload is None and not w.stopped]
        for worker in others:
            worker.stopped = True  # before ending it: its channel closing is no failure
        end_gateways([w.gateway for w in others])

    def _wait(
        self,
        workers: list[_Worker],
        inbox: queue.Queue[tuple[int, Any]],
        phase: str,
        progress: ProgressSink | None,
        settings: Settings,
    ) -> None:
        """Until every worker sent ``phase`` ("ready", "done"); raise WorkerError on a failure."""
        waiting = {i for i, w in enumerate(workers) if _state(w, phase) is None}
        started = time.monotonic()
        shown = started
        while waiting:
            try:
                k, item = inbox.get(timeout=min(BEAT_EVERY, HANG_AFTER) / 2)
            except queue.Empty:
                item = None
            now = time.monotonic()
            if item is not None:
                self._take(workers[k], item, now)
                if _state(workers[k], phase) is not None:
                    waiting.discard(k)
                if self._abort is not None and not self._abort.others_stopped:
                    self._abort.others_stopped = True
                    self._stop_others(workers, self._abort.worker)
                    waiting = {i for i in waiting if not workers[i].stopped}
            for i in waiting:
                if now - workers[i].seen > HANG_AFTER:
                    raise _failure(
                        workers[i], f"sent nothing for {HANG_AFTER:g} s (hung or unreachable)"
                    )
            if phase == "ready" and now - started > (limit := ready_within(settings)):
                late = workers[min(waiting)]
                raise _failure(
                    late,
                    f"was not ready after {limit:g} s (importing the agent's module and the "
                    "warmup calls took longer: does the module do something slow on import?)",
                )
            if progress is not None and phase == "done" and now - shown >= BEAT_EVERY:
                shown = now
                progress(
                    Progress(
                        done=sum(w.done for w in workers),
                        total=settings.requests,
                        elapsed=now - started,
                        duration=settings.duration,
                        errors=sum(w.errors for w in workers),
                    )
                )

    def _take(self, worker: _Worker, item: Any, now: float) -> None:
        worker.seen = now
        if worker.stopped:  # what a stopped worker still sent, or its channel closing
            return
        if item is _END:
            if worker.payload is None:
                raise _failure(worker, "died: its process ended or its connection closed")
            return
        kind = item[0]
        if kind == "beat":
            worker.done, worker.errors = int(item[1]), int(item[2])
        elif kind == "warn":
            if self.warn is not None:
                self.warn(f"{worker.name}: {item[1]}")
        elif kind == "ready":
            worker.ready = dict(item[1])
        elif kind == "done":
            worker.payload = dict(item[1])
        elif kind == "abort":
            if self._abort is None:  # the first one: _wait stops the others now
                self._abort = _Abort(worker, str(item[1]))
        elif kind == "error":
            raise _failure(worker, f"failed: {item[1]}")


def _state(worker: _Worker, phase: str) -> Any:
    return worker.ready if phase == "ready" else worker.payload


def ready_within(settings: Settings) -> float:
    """Seconds a worker has to get ready: import the agent's module (``HANG_AFTER``) and make
    its warmup calls, each within its timeout."""
    return HANG_AFTER + settings.warmup * settings.timeout


def _start(spec: str, name: str) -> Gateway:
    """A gateway of ``spec`` from the pool; WorkerError when it cannot be opened."""
    try:
        return POOL.take(spec)
    except SettingsError:
        raise
    except Exception as exc:  # execnet raises several kinds: a host not found, a failed ssh
        raise WorkerError(
            f"worker {name} ({spec}) could not be started: {type(exc).__name__}: {exc}; the "
            "other workers were stopped and this run is not reported",
            worker=name,
        ) from exc


def start_all(wanted: Sequence[tuple[str, str]]) -> list[Gateway]:
    """Gateways of the ``(spec, name)`` pairs, opened at once, each on a thread of its own (a
    process takes about half a second to start). Each gateway has an execnet group of its own,
    so the threads share no execnet state. If any cannot be opened, those that were are ended
    and the WorkerError of the first that could not (in ``wanted``'s order) is raised."""
    if len(wanted) == 1:
        return [_start(*wanted[0])]
    with ThreadPoolExecutor(len(wanted), thread_name_prefix="agentperf-gateway") as pool:
        futures = [pool.submit(_start, spec, name) for spec, name in wanted]
    failures = [f.exception() for f in futures if f.exception() is not None]
    if failures:
        end_gateways([f.result() for f in futures if f.exception() is None])
        raise failures[0]  # type: ignore[misc]
    return [f.result() for f in futures]


def _failure(worker: _Worker, reason: str) -> WorkerError:
    pid = (worker.ready or {}).get("pid")
    where = f"{worker.spec}, pid {pid}" if pid else worker.spec
    return WorkerError(
        f"worker {worker.name} ({where}) {reason}; the other workers were stopped and this run "
        "is not reported",
        worker=worker.name,
    )


def _listen(channel: Any, k: int, inbox: queue.Queue[tuple[int, Any]]) -> None:
    """Put what ``channel`` receives into ``inbox`` as ``(k, item)``; ``_END`` when it closes."""

    def put(item: Any) -> None:
        inbox.put((k, item))

    channel.setcallback(put, endmarker=_END)
