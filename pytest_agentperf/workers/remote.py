"""The worker side of a run split over workers: runs in the worker process, under execnet.

``serve(channel)`` answers one run: it receives the job (the agent as ``transfer`` encoded it,
its shard's settings and inputs), rebuilds the agent, makes the warmup calls, says "ready",
waits for "go" with the common start time, runs its shard through the engine from that moment,
and sends back its raw call log (``wire.pack_run``). A thread sends a heartbeat meanwhile, so
that the controller can tell a worker that hangs from one that is busy.

Early abort (``abort_on``) is judged here, live, on this worker's own calls: when it stops the
run, the worker says so at once, so that the controller can stop the other workers.

Messages to the controller: ``("beat", done, errors)``, ``("warn", text)``,
``("ready", info)``, ``("abort", reason)``, ``("done", payload)``, ``("error", text)``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any

from ..engine import LiveView, Progress, RunObserver, run_load
from ..engine.log import MergedLog
from ..engine.spend import SPEND_BUDGETS
from ..integrations.langchain import activate as langchain_hook
from ..observers.abort import AbortMonitor
from ..pricing import PriceTable
from ..settings import Settings
from .transfer import decode
from .wire import pack_run

SPIN = 0.002
"""The last seconds before the common start are waited out by polling the clock, not by
sleeping: a sleep may overshoot by a scheduler tick."""


def settings_to_plain(settings: Settings) -> dict[str, Any]:
    """The load settings a worker needs, as plain data: budgets stay with the controller,
    but for the worker's share of the spend budgets, which its spend guard judges live, and
    the budgets named in ``abort_on``, which its early abort judges live on its own calls."""
    data = {
        f.name: getattr(settings, f.name)
        for f in fields(Settings)
        if f.name not in ("budgets", "stage_budgets")
    }
    live = set(SPEND_BUDGETS) | set(settings.abort_on)
    data["budgets"] = {k: v for k, v in settings.budgets.items() if k in live}
    return data


def settings_from_plain(data: dict[str, Any]) -> Settings:
    return Settings(**data)


class _Heartbeat(threading.Thread):
    """Tells the controller every ``every`` seconds that this worker is alive, and how far."""

    def __init__(self, channel: Any, every: float) -> None:
        super().__init__(daemon=True, name="agentperf-heartbeat")
        self.channel = channel
        self.every = every
        self.done = 0
        self.errors = 0
        self.stop = threading.Event()

    def progress(self, progress: Progress) -> None:
        self.done, self.errors = progress.done, progress.errors

    def run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.channel.send(("beat", self.done, self.errors))
            except Exception:  # the channel is closed: the run is over either way
                return


class AbortWatch:
    """The worker's early abort (``AbortMonitor`` on its own calls; no memory sampler: each
    process's memory is its own) that tells the controller the moment it stops the run, before
    the calls in flight end and the run's log is sent."""

    def __init__(self, monitor: AbortMonitor, send: Callable[[Any], None]) -> None:
        self.monitor = monitor
        self.send = send
        self.sent = False

    def on_start(self, t0: float) -> None:
        self.monitor.on_start(t0)
        self.sent = False

    def on_tick(self, view: LiveView) -> str | None:
        reason = self.monitor.on_tick(view)
        if reason is not None and not self.sent:
            self.sent = True
            # the channel may be closed already: the controller stopped this run
            with contextlib.suppress(Exception):
                self.send(("abort", reason))
        return reason

    def on_stop(self) -> None:
        self.monitor.on_stop()

    def result_fields(self, log: MergedLog, duration: float) -> dict[str, Any]:
        return {}


def worker_observers(settings: Settings, send: Callable[[Any], None]) -> list[RunObserver]:
    """The observers a worker's run needs: the early abort, when ``abort_on`` is set."""
    if not settings.abort_on:
        return []
    return [AbortWatch(AbortMonitor(settings.abort_on, settings.budgets), send)]


def _add_paths(paths: list[str], cwd: str | None) -> None:
    """The controller's import path, where it exists here (the same host, or the same tree)."""
    for path in reversed(paths):
        if path not in sys.path and (path == "" or os.path.isdir(path)):
            sys.path.insert(0, path)
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)


def _wait_until(when: float) -> None:
    delay = when - time.time()
    if delay > SPIN:
        time.sleep(delay - SPIN)
    while time.time() < when:
        pass


def serve(channel: Any) -> None:
    """Run one shard for the controller at the other end of ``channel``."""
    job = channel.receive()
    beat = _Heartbeat(channel, float(job["beat_every"]))
    beat.start()
    try:
        channel.send(_run(channel, job, beat))
    except Exception as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
        channel.send(("error", f"{text}{at}"))
    finally:
        beat.stop.set()


def _run(channel: Any, job: dict[str, Any], beat: _Heartbeat) -> tuple[str, Any]:
    _add_paths(list(job["sys_path"]), job.get("cwd"))
    try:
        fn = decode(job["agent"])
        inputs = None if job["inputs"] is None else decode(job["inputs"])
    except Exception as exc:
        raise RuntimeError(
            f"could not rebuild the agent on the worker: {type(exc).__name__}: {exc}"
        ) from exc
    settings = settings_from_plain(job["settings"])
    plain_prices = job.get("prices")
    prices = None if plain_prices is None else PriceTable.from_plain(plain_prices)

    def warn(message: str) -> None:
        channel.send(("warn", message))

    with langchain_hook():
        if settings.warmup:
            # the warmup calls run before "ready", so that they are done before the common start
            width = max(1, min(settings.warmup, settings.max_in_flight or 1))
            warm = replace(
                settings, requests=settings.warmup, warmup=0, duration=None, rate=None, stages=()
            )
            warm = replace(warm, concurrency=width)
            raw = run_load(fn, inputs, warm)
            if raw.error_types:
                first = raw.error_messages[0] if raw.error_messages else "(no message)"
                warn(f"{sum(raw.error_types.values())} warmup calls failed; first: {first}")
        channel.send(("ready", {"pid": os.getpid(), "host": socket.gethostname()}))
        _, start = channel.receive()  # ("go", the common start): a stopped run ends the process
        _wait_until(float(start))
        cpu = time.process_time()
        raw = run_load(
            fn,
            inputs,
            replace(settings, warmup=0),
            observers=worker_observers(settings, channel.send),
            progress=beat.progress,
            detail=job["detail"],
            prices=prices,
        )
        cpu = time.process_time() - cpu
    return ("done", pack_run(raw, cpu))
