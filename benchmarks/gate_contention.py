"""The gate on a shared machine: unchanged and slowed-down sessions beside 0, 1 or 2 busy processes.

Creates a throwaway project with four perf tests (a sync agent sleeping 20 ms at concurrency 4,
an async agent sleeping 10 ms at concurrency 50, a ~1 ms pure-Python CPU-bound agent at
concurrency 1, and the bundled simulated agent), saves a baseline with no busy process, then
runs sessions in a seeded random order: unchanged code, a +25 % slowdown and a 2x slowdown, each
beside 0, 1 or 2 busy-loop processes that this script starts before the session and stops after
it. Prints, per test and condition, how often unchanged code was falsely REGRESSED and how often
each slowdown was caught (REGRESSED), plus how often the run was flagged busy.

    python benchmarks/gate_contention.py            # 12 unchanged, 6 +25 %, 6 2x per condition
    python benchmarks/gate_contention.py --quick    # a smoke run: a couple of minutes

Run it on an otherwise quiet machine: the busy processes are the only load it should see.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

TESTS = """
import asyncio
import os
import time

import pytest
from pytest_agentperf.sim import SimulatedAgent

SLOW = float(os.environ.get("SLOW", "1"))
SEED = int(os.environ.get("AGENT_SEED", "0"))
WORK = int(os.environ.get("CPU_WORK", "2000"))


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@pytest.mark.agent_perf(requests=200, concurrency=4)
def test_sync_sleep(agentperf):
    agentperf.run(lambda: time.sleep(0.020 * SLOW))


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=2000, concurrency=50)
async def test_async_sleep(agentperf):
    async def agent():
        await asyncio.sleep(0.010 * SLOW)

    await agentperf.arun(agent)


@pytest.mark.agent_perf(requests=300, concurrency=1)
def test_cpu_bound(agentperf):
    work = int(WORK * SLOW)
    agentperf.run(lambda: spin(work))


@pytest.mark.agent_perf(requests=500, concurrency=4)
def test_simulated_agent(agentperf):
    agent = SimulatedAgent(median=f"{20 * SLOW:.3f}ms", spread=0.4, seed=SEED)
    agentperf.run(agent.call_sync, ["What is the weather?", "Book a table"])
"""

INI = """[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""

KINDS = {"unchanged": 1.0, "+25%": 1.25, "2x": 2.0}
SHORT = {
    "test_sync_sleep": "sync sleep 20 ms, c=4",
    "test_async_sleep": "async sleep 10 ms, c=50",
    "test_cpu_bound": "CPU-bound ~1 ms, c=1",
    "test_simulated_agent": "simulated agent, c=4",
}


def calibrate_work() -> int:
    """Loop iterations of ``spin`` that take about 1 ms of CPU on this machine."""
    n = 20_000
    start = time.thread_time()
    total = 0
    for i in range(n):
        total += i * i % 7
    per = (time.thread_time() - start) / n
    return max(100, int(0.001 / max(per, 1e-9)))


def start_busy(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` processes spinning a CPU each (our own children, stopped by ``stop_busy``)."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]


def stop_busy(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def session(
    folder: Path, env: dict[str, str], args: list[str]
) -> tuple[int, list[dict[str, object]]]:
    report = folder / "perf.json"
    report.unlink(missing_ok=True)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"),
            f"--agentperf-json={report}",
            *args,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1) or not report.exists():
        sys.exit(f"pytest exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, json.loads(report.read_text(encoding="utf-8"))["runs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer sessions/calls")
    parser.add_argument("--unchanged", type=int, default=12, help="unchanged sessions/condition")
    parser.add_argument("--slower", type=int, default=6, help="+25 %% and 2x sessions/condition")
    parser.add_argument("--busy", default="0,1,2", help="busy-process counts (conditions)")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--out", type=Path, help="write every session's statuses as JSON here")
    opts = parser.parse_args()
    unchanged, slower, scale = opts.unchanged, opts.slower, "1"
    if opts.quick:
        unchanged, slower, scale = 2, 1, "0.5"
    busy_levels = [int(x) for x in opts.busy.split(",")]

    rng = random.Random(opts.seed)
    plan = [
        (kind, busy)
        for busy in busy_levels
        for kind, count in (("unchanged", unchanged), ("+25%", slower), ("2x", slower))
        for _ in range(count)
    ]
    rng.shuffle(plan)

    work = calibrate_work()
    base_env = dict(os.environ, CI="1", CPU_WORK=str(work), PYTHONHASHSEED="0")
    args = [f"--agentperf-scale={scale}"]
    counts: dict[tuple[str, str, int], Counter[str]] = defaultdict(Counter)
    busy_flags: dict[tuple[str, str, int], int] = defaultdict(int)
    sessions: list[dict[str, object]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_perf.py").write_text(TESTS, encoding="utf-8")
        (folder / "pytest.ini").write_text(INI, encoding="utf-8")
        code, _ = session(folder, dict(base_env, AGENT_SEED="1"), ["--agentperf-baseline", *args])
        if code:
            sys.exit("saving the baseline failed")
        print(f"baseline saved (CPU work {work} iterations ~ 1 ms); {len(plan)} sessions")
        for i, (kind, busy) in enumerate(plan):
            env = dict(base_env, SLOW=str(KINDS[kind]), AGENT_SEED=str(100 + i))
            procs = start_busy(busy)
            try:
                time.sleep(0.5 if busy else 0.0)  # let the busy processes get going
                code, runs = session(folder, env, args)
            finally:
                stop_busy(procs)
            statuses = {}
            for r in runs:
                test = str(r["test"]).split("::")[-1]
                comp = r["result"].get("comparison") or {}  # type: ignore[attr-defined]
                status = str(comp.get("status"))
                counts[(test, kind, busy)][status] += 1
                busy_flags[(test, kind, busy)] += bool(comp.get("busy"))
                statuses[test] = {"status": status, "busy": comp.get("busy")}
            sessions.append({"kind": kind, "busy": busy, "exit": code, "runs": statuses})
            print(
                f"[{i + 1}/{len(plan)}] {kind:9} busy={busy} exit={code} "
                + " ".join(f"{t.split('_', 1)[1]}={s['status']}" for t, s in statuses.items()),
                flush=True,
            )
    elapsed = time.perf_counter() - t0

    def cell(test: str, kind: str, busy: int, want: str) -> str:
        c = counts[(test, kind, busy)]
        n = sum(c.values())
        return f"{c[want]}/{n}" if n else "-"

    head = " | ".join(f"{b} busy" for b in busy_levels)
    for title, kind in (
        ("unchanged runs falsely REGRESSED", "unchanged"),
        ("+25 % caught (REGRESSED)", "+25%"),
        ("2x caught (REGRESSED)", "2x"),
    ):
        print(f"\n| {title} | {head} |")
        print("|---" * (len(busy_levels) + 1) + "|")
        for test, label in SHORT.items():
            cells = " | ".join(cell(test, kind, b, "REGRESSED") for b in busy_levels)
            print(f"| {label} | {cells} |")
    print("\n| flagged busy (all sessions) | " + head + " |")
    print("|---" * (len(busy_levels) + 1) + "|")
    for test, label in SHORT.items():
        cells = []
        for b in busy_levels:
            n = sum(sum(counts[(test, k, b)].values()) for k in KINDS)
            flagged = sum(busy_flags[(test, k, b)] for k in KINDS)
            cells.append(f"{flagged}/{n}" if n else "-")
        print(f"| {label} | {' | '.join(cells)} |")
    inconclusive = sum(c["INCONCLUSIVE"] for (t, k, b), c in counts.items() if k == "unchanged")
    total = sum(sum(c.values()) for (t, k, b), c in counts.items() if k == "unchanged")
    failed = sum(1 for s in sessions if s["kind"] == "unchanged" and s["exit"])
    n_unchanged = sum(1 for s in sessions if s["kind"] == "unchanged")
    print(
        f"\nunchanged: {failed}/{n_unchanged} sessions exited non-zero; "
        f"{inconclusive}/{total} test-runs INCONCLUSIVE; {elapsed:.0f} s in all"
    )
    if opts.out:
        opts.out.write_text(json.dumps(sessions, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
