"""One run split over worker processes (``workers=N``, ``--agentperf-workers``): splitting the
load, sending the agent, merging the raw logs, the two-phase start, and failing workers."""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from typing import Any

import numpy as np
import pytest
from conftest import assert_processes_gone
from hypothesis import given, settings
from hypothesis import strategies as st

# Imported here, in the outer process, so that pytester's in-process runs share one gateway
# pool (and execnet) instead of each starting worker processes of its own.
import pytest_agentperf.workers.controller as controller
from pytest_agentperf.assemble import build_result
from pytest_agentperf.engine.log import ERROR, OK, CallLog, merge
from pytest_agentperf.engine.plan import Plan
from pytest_agentperf.engine.run import RawRun
from pytest_agentperf.engine.target import make_target
from pytest_agentperf.errors import SettingsError, WorkerError
from pytest_agentperf.results import PerfResult
from pytest_agentperf.settings import parse_settings
from pytest_agentperf.stats import summarize
from pytest_agentperf.usage import UsageAccumulator, UsageRecord
from pytest_agentperf.workers.merge import ShardReport, merge_shards
from pytest_agentperf.workers.spec import parse_specs
from pytest_agentperf.workers.split import shard_count, shard_inputs, split
from pytest_agentperf.workers.transfer import decode, encode_agent, encode_inputs
from pytest_agentperf.workers.wire import pack_run

# ------------------------------------------------------------------------------------ specs


def test_specs_repeat_and_mix_local_and_remote_gateways() -> None:
    assert parse_specs("2*popen, ssh=host//python=python3") == (
        "popen",
        "popen",
        "ssh=host//python=python3",
    )
    assert parse_specs("socket=10.0.0.2:8888") == ("socket=10.0.0.2:8888",)


@pytest.mark.parametrize("text", ["bogus", "2*", "0*popen", "ssh=", "popen//python", ""])
def test_a_bad_spec_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(SettingsError, match="--agentperf-workers"):
        parse_specs(text)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2"])
def test_workers_must_be_a_whole_number_of_at_least_one(value: Any) -> None:
    with pytest.raises(SettingsError, match="workers=") as info:
        parse_settings({"workers": value})
    assert info.value.key == "workers"


# ---------------------------------------------------------------------------------- split


@settings(max_examples=60, deadline=None)
@given(
    requests=st.integers(1, 500),
    concurrency=st.integers(1, 64),
    workers=st.integers(1, 8),
)
def test_requests_and_concurrency_are_divided_without_loss(
    requests: int, concurrency: int, workers: int
) -> None:
    base = parse_settings({"requests": requests, "concurrency": concurrency, "workers": workers})
    n = shard_count(base, workers)
    assert n == min(workers, concurrency, requests)
    shards = split(base, None, n)
    assert sum(s.settings.requests or 0 for s in shards) == requests
    assert sum(s.settings.concurrency or 0 for s in shards) == concurrency
    assert all(s.settings.requests and s.settings.concurrency for s in shards)
    assert all(s.settings.workers is None for s in shards)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 12), n=st.integers(1, 6), calls=st.integers(1, 200))
def test_inputs_are_dealt_round_robin_so_every_input_keeps_its_share(
    size: int, n: int, calls: int
) -> None:
    inputs = [f"q{i}" for i in range(size)]
    parts = [shard_inputs(inputs, n, k) for k in range(n)]
    for j in range(calls):  # call j of the run is call j // n of shard j % n
        part = parts[j % n]
        assert part[(j // n) % len(part)] == inputs[j % size]


def test_a_closed_loop_without_concurrency_uses_one_worker() -> None:
    assert shard_count(parse_settings({"requests": 50}), 4) == 1
    assert shard_count(parse_settings({"requests": 3, "concurrency": 8}), 4) == 3
    assert shard_count(parse_settings({"rate": 50, "duration": 1}), 4) == 4


def test_each_worker_guards_its_share_of_a_spend_budget_and_of_each_stage() -> None:
    base = parse_settings(
        {
            "rate": 0,
            "stages": [(1, "40/s"), (2, "40/s")],
            "total_tokens": 900,
            "total_cost": "$0.30",
            "p95": "1s",
            "stage_budgets": [{"p95": "1s"}, {}],
        }
    )
    shards = split(base, None, 3)
    for shard in shards:
        assert dict(shard.settings.budgets) == pytest.approx(
            {"total_tokens": 300.0, "total_cost": 0.1}
        )
        assert [d for d, _ in shard.settings.stages] == [1, 2]
        assert [t for _, t in shard.settings.stages] == pytest.approx([40 / 3, 40 / 3])
        assert shard.settings.stage_budgets == ()  # judged on the merged calls
    closed = parse_settings({"concurrency": 1, "stages": [(1, 5), (1, 2)]})
    parts = [s.settings.stages for s in split(closed, None, 2)]
    assert [t for _, t in parts[0]] == [3, 1] and [t for _, t in parts[1]] == [2, 1]


def _arrivals(settings_: Any, offset: float = 0.0) -> np.ndarray[Any, Any]:
    plan = Plan(
        make_target(lambda: None, None), settings_, settings_.requests, settings_.duration, 1
    )
    return np.array([t + offset for _, t in plan.arrivals()])


def test_split_poisson_streams_merge_into_one_of_the_requested_rate() -> None:
    rate, duration = 400.0, 50.0
    base = parse_settings({"rate": rate, "duration": duration, "seed": 7})
    shards = split(base, None, 4)
    assert [s.settings.rate for s in shards] == [rate / 4] * 4
    assert len({s.settings.seed for s in shards}) == 4  # independent streams
    merged = np.sort(np.concatenate([_arrivals(s.settings) for s in shards]))
    expected = rate * duration  # 20000 arrivals; Poisson sd is about 141
    assert abs(merged.size - expected) < 5 * math.sqrt(expected)
    gaps = np.diff(merged)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.03)  # exponential: CV = 1


def test_split_constant_arrivals_interleave_into_the_constant_stream() -> None:
    rate = 100.0
    base = parse_settings({"rate": rate, "arrival": "constant", "requests": 90})
    shards = split(base, None, 3)
    merged = np.sort(np.concatenate([_arrivals(s.settings, s.start_offset) for s in shards]))
    np.testing.assert_allclose(merged, np.arange(90) / rate, atol=1e-12)


# ------------------------------------------------------------------------ sending the agent

MODULE_LEVEL_PREFIX = ">"


def module_level_agent(x: str) -> str:
    return MODULE_LEVEL_PREFIX + x


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    def greet(self, x: str) -> str:
        return f"{self.greeting} {x}"


GREETER = Greeter("hi")


class Chain:
    """Stands for a library object (a LangChain chain) built at module level of a test."""

    def __call__(self, x: str) -> str:
        return x.upper()


Chain.__module__ = "some_library"  # its class lives elsewhere: found among the modules
CHAIN = Chain()


def test_a_closure_is_rebuilt_from_its_code_and_captured_values() -> None:
    prefix, counts = "p", {"n": 3}

    def inner(x: str, sep: str = "-") -> str:
        return sep.join([prefix, x] * counts["n"]) + module_level_agent("")

    rebuilt = decode(encode_agent(inner))
    assert rebuilt is not inner
    assert rebuilt("a") == inner("a") == "p-a-p-a-p-a>"
    assert rebuilt.__qualname__ == inner.__qualname__


def test_module_level_objects_travel_by_name() -> None:
    assert decode(encode_agent(module_level_agent)) is module_level_agent
    assert decode(encode_agent(GREETER.greet))("you") == "hi you"
    assert decode(encode_agent(CHAIN)) is CHAIN
    part = decode(encode_agent(functools.partial(module_level_agent)))
    assert part("x") == ">x"
    assert decode(encode_inputs([{"q": (1, 2.5, None)}, b"x", {3, 4}])) == [
        {"q": (1, 2.5, None)},
        b"x",
        {3, 4},
    ]


def test_an_object_that_cannot_be_sent_is_named_with_its_variable() -> None:
    lock = threading.Lock()

    def agent(x: str) -> str:
        with lock:
            return x

    with pytest.raises(SettingsError, match=r"variable 'lock' is an object of type _thread\.lock"):
        encode_agent(agent)
    with pytest.raises(SettingsError, match=r"inputs\[1\] is an object of type _thread\.lock"):
        encode_inputs(["a", lock])


# ----------------------------------------------------------------------------------- merge


def _worker_payload(
    rng: np.random.Generator, n: int, scale: float, t0_unix: float, errors: int = 0
) -> dict[str, Any]:
    """A worker's packed run of ``n`` calls with latencies of ``scale`` seconds; every time a
    multiple of 2**-20 s, so moving it onto the common start is exact."""
    quantum = 2.0**-20
    starts = np.round(np.cumsum(rng.exponential(0.01, n)) / quantum) * quantum
    latency = np.round(rng.lognormal(np.log(scale), 0.5, n) / quantum) * quantum + quantum
    log = CallLog()
    for i in range(n):
        failed = i < errors
        scope = None
        record = log.record
        usage = [UsageRecord(100, 10, "gpt-4o-mini")]
        from pytest_agentperf.usage import CallScope

        scope = CallScope()
        scope.records = usage
        scope.tools = [("search", 0.001, True, 0.0)]
        record(
            float(starts[i]),
            float(starts[i] + latency[i]),
            ERROR if failed else OK,
            "ValueError" if failed else None,
            None,
            scope,
            None,
            None,
        )
    merged = merge([log])
    raw = RawRun(
        log=merged,
        usage=log.usage,
        error_types=dict(log.error_types),
        error_messages=("ValueError: boom",) if errors else (),
        duration=float(merged.end.max()),
        late_starts=0,
        aborted=None,
        target="agent",
        issued=n,
        t0_unix=t0_unix,
    )
    return pack_run(raw, cpu_seconds=0.5)


def test_the_merged_percentiles_are_those_of_the_pooled_samples_exactly() -> None:
    rng = np.random.default_rng(3)
    start = 1_000_000.0
    payloads = [
        _worker_payload(rng, 300, 0.02, start + 0.25, errors=3),
        _worker_payload(rng, 200, 0.2, start + 0.5),  # a slower worker: its tail dominates
    ]
    reports = [ShardReport(f"gw{k}", "popen", "h", 1, p) for k, p in enumerate(payloads)]
    raw, shards = merge_shards(reports, start)
    pooled = np.concatenate(
        [
            (np.frombuffer(p["end"]) - np.frombuffer(p["start"]))[
                np.frombuffer(p["status"], dtype=np.int8) == OK
            ]
            for p in payloads
        ]
    )
    result = build_result("default", parse_settings({"requests": 500}), raw)
    for q, got in ((50, result.latency.p50), (95, result.latency.p95), (99, result.latency.p99)):
        assert got == float(np.percentile(pooled, q))
    assert result.latency == summarize(pooled)
    assert result.latency.p95 != np.mean([summarize(np.frombuffer(p["end"])).p95 for p in payloads])
    # counts, usage, tools and errors add up; calls keep their worker's place in time
    assert result.requests == 500 and result.errors == 3
    assert result.error_types == {"ValueError": 3}
    assert result.usage.input_tokens == 500 * 100 and result.usage.output_tokens == 500 * 10
    assert result.cost.total is not None and result.cost.total > 0
    assert result.tools["search"].calls == 500
    assert raw.issued == 500
    assert raw.log.start.min() >= 0.25
    assert [s.calls for s in shards] == [300, 200]
    assert [s.errors for s in shards] == [3, 0]
    assert [s.start_skew for s in shards] == [0.25, 0.5]
    assert shards[0].cpu_use == pytest.approx(0.5 / shards[0].duration)


def test_start_skew_is_measured_from_each_workers_planned_start() -> None:
    rng = np.random.default_rng(2)
    start = 2_000.0
    reports = [  # constant arrivals: the second worker is meant to start 0.25 s later
        ShardReport("gw0", "popen", "h", 1, _worker_payload(rng, 10, 0.01, start + 0.0078125)),
        ShardReport("gw1", "popen", "h", 2, _worker_payload(rng, 10, 0.01, start + 0.25), 0.25),
    ]
    raw, shards = merge_shards(reports, start)
    assert [s.start_skew for s in shards] == [0.0078125, 0.0]
    # on the merged time line each worker's calls sit where they really happened
    assert raw.log.start.min() == 0.0078125 + np.frombuffer(reports[0].payload["start"]).min()


def test_the_workers_field_survives_the_json_round_trip() -> None:
    rng = np.random.default_rng(1)
    reports = [ShardReport("gw0", "popen", "h", 7, _worker_payload(rng, 20, 0.01, 5.0))]
    raw, shards = merge_shards(reports, 5.0)
    result = build_result("default", parse_settings({"requests": 20}), raw)
    from dataclasses import replace

    result = replace(result, workers=shards)
    again = PerfResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.workers == shards


def test_usage_totals_travel_as_plain_data() -> None:
    acc = UsageAccumulator()
    acc.add_call([UsageRecord(5, 6, "m", start=1.0, end=1.5)], None)
    acc.add_tools([("t", 0.2, False, 2.0)])
    again = UsageAccumulator.from_plain(json.loads(json.dumps(acc.to_plain())))
    assert again.usage(1) == acc.usage(1)
    assert again.tool_stats() == acc.tool_stats()
    assert again.llm_seconds == 0.5


# --------------------------------------------------------------------- real worker processes

AGENTS = """
import os, time
import pytest
from pytest_agentperf import record_usage

def busy(x):
    t = time.perf_counter()
    while time.perf_counter() - t < 0.002:
        pass
    record_usage(input_tokens=10, output_tokens=2, model="gpt-4o-mini")
    if x == "bad":
        raise ValueError("bad input")
    return os.getpid()
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_a_run_split_over_two_processes_merges_into_one_result(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_split=AGENTS
        + """
PIDS = set()

@pytest.mark.agent_perf(requests=120, concurrency=4, workers=2, warmup=0)
def test_module_level(agentperf):
    r = agentperf.run(busy, ["a", "b", "bad"])
    assert r.requests == 120 and r.errors == 40
    assert r.error_types == {"ValueError": 40}
    assert r.usage.input_tokens == 1200 and r.cost.total > 0
    assert len(r.workers) == 2
    assert [w.calls for w in r.workers] == [60, 60]
    assert sum(w.errors for w in r.workers) == 40
    assert len({w.pid for w in r.workers} | {os.getpid()}) == 3
    for w in r.workers:
        assert abs(w.start_skew) < 1.0 and w.cpu_seconds > 0 and w.throughput > 0
    assert sum(w.calls for w in r.windows) == 120  # time windows of the merged calls

def test_closure_async_open_loop(agentperf):
    suffix = "!"
    async def agent(x):
        return x + suffix
    r = agentperf.run(agent, ["a", "b"], rate=200, arrival="constant", requests=40,
                      workers=2)
    assert r.requests == 40 and r.errors == 0 and len(r.workers) == 2
    starts = sorted(r.latency.samples)  # latencies exist for every call
    assert len(starts) == 40

def test_command_line_specs_win(agentperf):
    r = agentperf.run(busy, ["a"], requests=10, concurrency=2)
    assert [w.spec for w in r.workers] == ["popen", "popen"]

@pytest.fixture
def made_by_a_fixture(tmp_path):
    where = str(tmp_path)
    def agent(x):
        return where + x
    return agent

def test_closure_from_a_fixture(agentperf, made_by_a_fixture):
    r = agentperf.run(made_by_a_fixture, ["a"], requests=10, concurrency=2, workers=2)
    assert r.errors == 0 and len(r.workers) == 2
"""
    )
    result = project.runpytest(
        "-p",
        "no:randomly",
        "--agentperf-workers=2*popen",
        "--agentperf-json=out.json",
        "--agentperf-log=calls.jsonl",
    )
    result.assert_outcomes(passed=4)
    runs = json.loads((project.path / "out.json").read_text())["runs"]
    assert [len(r["result"]["workers"]) for r in runs] == [2, 2, 2, 2]
    # the per-call log has every call of every worker, with the usage each call recorded
    calls = [json.loads(line) for line in (project.path / "calls.jsonl").read_text().splitlines()]
    assert len(calls) == 120 + 40 + 10 + 10
    assert sum(1 for c in calls if c.get("input_tokens") == 10) == 130


def test_a_split_run_keeps_its_spend_guard_and_its_stages(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_guarded=AGENTS
        + """
@pytest.mark.agent_perf(requests=2000, concurrency=2, workers=2, warmup=0, total_tokens=600)
def test_spend(agentperf):
    r = agentperf.run(busy, ["a"], check=False)
    assert r.aborted and "spend guard" in r.aborted, r.aborted
    # 12 tokens a call, 300 per worker: each stops within its calls in flight of its share
    assert 600 <= r.usage.total_tokens <= 600 + 2 * 2 * 12, r.usage.total_tokens
    assert r.requests < 100

def test_stages(agentperf):
    r = agentperf.run(busy, ["a"], rate=0, stages=[(0.5, "100/s"), (0.5, "100/s")], workers=2)
    assert len(r.stages) == 2 and len(r.workers) == 2
    assert 50 <= r.requests <= 100, r.requests  # 25 on the ramp, 50 at 100/s
    assert r.stages[1].calls > r.stages[0].calls
"""
    )
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_split_runs_dollar_guard_prices_with_the_sessions_price_file(
    project: pytest.Pytester,
) -> None:
    """A model priced only in the user's price file: each worker gets the session's table, so
    its share of ``total_cost`` stops it (before, a worker knew only the bundled prices, the
    cost stayed unknown and the run spent on)."""
    project.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nagentperf_prices = prices.json\n"
    )
    project.path.joinpath("prices.json").write_text(
        json.dumps(
            {"in-house-model": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.001}}
        )
    )
    project.makepyfile(
        test_priced="""
import time
import pytest
from pytest_agentperf import record_usage

def agent(x):
    time.sleep(0.001)
    record_usage(input_tokens=10, output_tokens=2, model="in-house-model")  # $0.012 a call

@pytest.mark.agent_perf(requests=2000, concurrency=2, workers=2, warmup=0, total_cost=0.6)
def test_priced(agentperf):
    r = agentperf.run(agent, ["a"], check=False)
    assert r.aborted and "spend guard" in r.aborted, r.aborted
    # $0.30 a worker, 25 calls; each stops within its calls in flight of its share
    assert 0.6 <= r.cost.total <= 0.6 + 2 * 2 * 0.012 + 1e-9, r.cost.total
    assert r.requests < 100
"""
    )
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


def test_a_worker_that_dies_fails_the_run_and_the_others_are_stopped(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_crash="""
import os, time
import pytest
from pytest_agentperf.errors import WorkerError

def test_crash(agentperf, tmp_path):
    home, pids = os.getpid(), str(tmp_path / "pids")
    def agent(x):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\\n")
        if x == 1 and os.getpid() != home:
            os._exit(3)  # the worker process dies mid-run
        time.sleep(0.01)
        return x
    with pytest.raises(WorkerError, match=r"worker gw\\d \\(popen, pid \\d+\\) died") as info:
        agentperf.run(agent, [0, 1], requests=200, concurrency=2, workers=2, warmup=0)
    assert "not reported" in str(info.value)
    assert agentperf.results == []
    print("PIDS", sorted(set(open(pids).read().split())))
"""
    )
    result = project.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    _assert_gone(_pids(result))


def test_a_worker_that_hangs_fails_the_run_after_its_silence(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller, "HANG_AFTER", 3.0)
    project.makepyfile(
        test_hang="""
import os, signal, time
import pytest
from pytest_agentperf.errors import WorkerError

def test_hang(agentperf, tmp_path):
    home, pids = os.getpid(), str(tmp_path / "pids")
    def agent(x):
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\\n")
        if x == 1 and os.getpid() != home:
            os.kill(os.getpid(), signal.SIGSTOP)  # the whole worker stops: no heartbeat
        time.sleep(0.01)
        return x
    t = time.monotonic()
    with pytest.raises(WorkerError, match=r"sent nothing for 3 s \\(hung"):
        agentperf.run(agent, [0, 1], requests=100, concurrency=2, workers=2, warmup=0)
    assert time.monotonic() - t < 20
    print("PIDS", sorted(set(open(pids).read().split())))
"""
    )
    result = project.runpytest("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=1)
    _assert_gone(_pids(result))


def test_a_worker_that_is_not_ready_in_time_fails_the_run(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller, "ready_within", lambda settings: 1.0)
    project.makepyfile(
        test_slow_import="""
import os, time
import pytest
from pytest_agentperf.errors import WorkerError

SLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow")
if os.path.exists(SLOW):  # on the workers only: the file is made after collection
    time.sleep(60)

def agent():
    return 1

def test_slow(agentperf):
    open(SLOW, "w").close()
    with pytest.raises(WorkerError, match=r"gw\\d .* was not ready after 1 s"):
        agentperf.run(agent, requests=4, concurrency=2, workers=2, warmup=0)
"""
    )
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


def _pids(result: pytest.RunResult) -> list[int]:
    line = next(x for x in result.outlines if "PIDS" in x)
    pids = [int(p) for p in line.split("[", 1)[1].strip("]").replace("'", "").split(",") if p]
    return [p for p in pids if p != os.getpid()]


def _assert_gone(pids: list[int]) -> None:
    assert pids
    assert_processes_gone(pids)


def test_settings_errors_name_what_to_change(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_errors="""
import sys, threading
import pytest
from pytest_agentperf.errors import SettingsError, WorkerError

def test_zero(agentperf):
    with pytest.raises(SettingsError, match="workers=0: must be at least 1"):
        agentperf.run(lambda: None, workers=0)

def test_unsendable(agentperf):
    lock = threading.Lock()
    def agent():
        with lock:
            pass
    with pytest.raises(SettingsError, match="variable 'lock' is an object of type _thread.lock"):
        agentperf.run(agent, workers=2, concurrency=2)

def test_no_execnet(agentperf, monkeypatch):
    monkeypatch.setitem(sys.modules, "execnet", None)
    with pytest.raises(SettingsError, match="needs execnet"):
        agentperf.run(len, ["a"], workers=2, concurrency=2)

def test_iterator_inputs(agentperf):
    with pytest.raises(SettingsError, match="pass a list"):
        agentperf.run(len, iter(["a"]), workers=2, concurrency=2)
"""
    )
    project.runpytest("-p", "no:randomly").assert_outcomes(passed=4)
    bad = project.runpytest("-p", "no:randomly", "--agentperf-workers=bogus")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--agentperf-workers=bogus*not an execnet gateway spec*"])


def test_inside_pytest_xdist_with_the_baseline_gate(project: pytest.Pytester) -> None:
    """A perf test on an xdist worker opens its own gateways; the baseline is saved by the
    controller and compared in the next session, with the workers in every report."""
    project.makepyfile(
        test_xdist=AGENTS
        + """
@pytest.mark.agent_perf(requests=40, concurrency=2, workers=2, warmup=0)
def test_split(agentperf):
    assert len(agentperf.run(busy, ["a"]).workers) == 2

def test_other():
    pass
"""
    )
    # the baseline from an in-process run (its gateways are this process's pool)
    project.runpytest("-p", "no:randomly", "--agentperf-baseline").assert_outcomes(passed=2)
    result = project.runpytest(
        # warn: a noisy machine may make the xdist session slower than the baseline's
        "-n",
        "2",
        "--agentperf-json=out.json",
        "--agentperf-markdown=out.md",
        "--agentperf-regression=warn",
    )
    result.assert_outcomes(passed=2)
    runs = json.loads((project.path / "out.json").read_text())
    text = json.dumps(runs)
    assert '"workers"' in text and '"gw1"' in text and '"comparison"' in text
    assert "**1 run: 1 " in (project.path / "out.md").read_text()


def test_a_gateway_that_cannot_start_fails_the_run_naming_it() -> None:
    run = controller.WorkerRun(("popen", "popen//python=/nonexistent/python3"))
    settings_ = parse_settings({"requests": 4, "concurrency": 2, "warmup": 0})
    with pytest.raises(
        WorkerError,
        match=r"worker gw1 \(popen//python=/nonexistent/python3\) "
        r"could not be started: .*not reported",
    ) as info:
        run.run(module_level_agent, ["a"], settings_)
    assert info.value.worker == "gw1"
