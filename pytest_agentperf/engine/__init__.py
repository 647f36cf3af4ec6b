"""Load generation: closed and open loop, sync and async agents, timeouts and warmup.

The modules, in the order a run goes through them: ``target`` (how one call is made and
timed), ``plan`` (which calls, when), ``thread_exec`` / ``async_exec`` (the executors),
``monitor`` (timeouts), ``log`` (every call's timing), ``streams`` (TTFT of streamed calls) and
``run`` (one run, end to end). Observers watching a run meet ``observer.RunObserver``. This
``__init__`` only re-exports the names the rest of the package uses.
"""

from __future__ import annotations

from .log import KEEP_CALLS, KEEP_CONTENT
from .observer import LiveView, Progress, ProgressSink, RunObserver
from .run import RawRun, arun_load, run_load
from .target import readable_again

__all__ = [
    "KEEP_CALLS",
    "KEEP_CONTENT",
    "LiveView",
    "Progress",
    "ProgressSink",
    "RawRun",
    "RunObserver",
    "arun_load",
    "readable_again",
    "run_load",
]
