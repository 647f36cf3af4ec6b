"""Shared helpers for the test suite.

One way in: plain helpers (factories, constants) are imported by the test files with
``from conftest import ...``, and what needs a pytest fixture (pytester) is a fixture here.
The import works because the tests have no ``__init__.py``: pytest's default "prepend" import
mode puts tests/ on sys.path and loads this file as the module ``conftest``, so a test file gets
this same module (also in xdist workers).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

# The plugin loads numpy only when a perf test runs. pytester's in-process runs restore
# sys.modules after each run, so a numpy first imported inside one would be dropped and then
# imported again by the next, which numpy refuses ("cannot load module more than once per
# process"). Imported here, in the outer process, it stays loaded for every inner run.
import numpy
import pytest

if TYPE_CHECKING:
    from pytest_agentperf.results import LoadShape, PerfResult

# The factories import the package when called, not here. Imported here, part of the package
# would stay loaded in the outer process for every test file, also the pytester ones that never
# load it themselves, and their in-process runs would mix those kept modules with freshly
# imported ones: test_gate_plugin.py run alone then saw the gate count "0 regressed" next to a
# REGRESSED run.

# ----------------------------------------------------------------------------- result factories


def make_shape(**fields: Any) -> LoadShape:
    """A closed-loop shape (100 requests, one in flight, one warm-up call, 30 s timeout);
    any field can be given."""
    from pytest_agentperf.results import LoadShape

    values: dict[str, Any] = {
        "requests": 100,
        "concurrency": 1,
        "rate": None,
        "arrival": "closed",
        "duration": None,
        "warmup": 1,
        "timeout": 30.0,
    }
    values.update(fields)
    return LoadShape(**values)


def make_result(samples: Iterable[float] = (), **fields: Any) -> PerfResult:
    """A PerfResult whose latency is ``samples`` (seconds); any field can be given.

    By default: run "default", shape ``make_shape()``, no errors, ``requests`` = the samples
    plus ``errors``, ``error_rate`` = errors / requests, 10 calls/s over 1 s, no TTFT or ITL.
    """
    from pytest_agentperf.results import PerfResult, Stats
    from pytest_agentperf.stats import summarize

    latency = summarize(numpy.asarray(samples, dtype=numpy.float64))
    errors = fields.get("errors", 0)
    requests = fields.get("requests", latency.n + errors)
    values: dict[str, Any] = {
        "name": "default",
        "shape": make_shape(),
        "requests": requests,
        "errors": errors,
        "timeouts": 0,
        "error_rate": errors / requests if requests else 0.0,
        "error_types": {},
        "error_messages": (),
        "throughput": 10.0,
        "duration": 1.0,
        "latency": latency,
        "ttft": Stats(),
        "itl": Stats(),
    }
    values.update(fields)
    return PerfResult(**values)


# ----------------------------------------------------------------------------- pytester projects

# The agents the end-to-end tests import in their pytester projects (``from agents import ...``).
# A conftest for pytester projects: the machine is reported quiet, so the other xdist worker's
# load cannot make a session "busy" next to its baseline (contention is tested on its own).
QUIET_MACHINE = """
import pytest
import pytest_agentperf.observers.contention as contention

@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    monkeypatch.setattr(contention, "read_cpu_times", lambda: (None, "unavailable"))
"""

AGENTS = """
import asyncio, os, time

async def fast_async(x=None):
    await asyncio.sleep(0.001)
    return {"usage": {"prompt_tokens": 10, "completion_tokens": 5}, "model": "m"}

def fast_sync(x=None):
    time.sleep(0.001)
    return x

def fast_priced(x=None):
    time.sleep(0.001)
    return {"usage": {"prompt_tokens": 10, "completion_tokens": 5}, "model": "gpt-4o-mini"}

def priced(x=None):
    return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}

def local(x=None):
    return {"model": "my-llm", "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}

def nameless(x=None):
    return {"usage": {"prompt_tokens": 1000, "completion_tokens": 200}}

def silent(x=None):
    return "no usage here"

def make(name):  # sleeps for DELAY_<NAME> seconds (an environment variable), 10 ms by default
    def agent(x=None):
        time.sleep(float(os.environ.get("DELAY_" + name.upper(), "0.01")))
        return x
    return agent
"""
# The ini every pytester project starts from; a test appends its own options to it.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture(autouse=True)
def no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under GitHub Actions the runner sets ``GITHUB_STEP_SUMMARY``: without this, every
    pytester session of the suite would append its summary to the real job summary."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def agents(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with ``agents.py`` (``AGENTS``) and the ini ``INI``."""
    pytester.makepyfile(agents=AGENTS)
    pytester.makeini(INI)
    return pytester


def assert_processes_gone(pids: list[int], within: float = 10.0) -> None:
    """Every process of ``pids`` has ended (a zombie counts as ended) within ``within`` s."""
    import psutil

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if running(p)]
        time.sleep(0.1)
    assert not alive, f"worker processes still running: {alive}"
