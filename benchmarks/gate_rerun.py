"""The gate for real: save a baseline once, rerun the same unchanged tests N times, count failures.

Creates a throwaway project with three perf tests of the embedded simulated agent (sync closed
loop, async closed loop, open loop), each run drawing fresh random latencies and token counts
(a new seed per session), so every rerun differs the way real runs do. Unchanged code must
never fail the gate.

    python benchmarks/gate_rerun.py              # 20 reruns
    python benchmarks/gate_rerun.py --reruns 5 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TESTS = """
import os
import pytest
from pytest_agentperf.sim import SimulatedAgent

SEED = int(os.environ["AGENT_SEED"])


@pytest.mark.agent_perf(requests=200, concurrency=4)
def test_sync_agent(agentperf):
    agent = SimulatedAgent(median="20ms", spread=0.4, seed=SEED)
    agentperf.run(agent.call_sync, ["What is the weather?", "Book a table"])


@pytest.mark.asyncio
@pytest.mark.agent_perf(requests=200, concurrency=8)
async def test_async_agent(agentperf):
    agent = SimulatedAgent(median="20ms", spread=0.4, seed=SEED + 1)
    await agentperf.arun(agent, ["Summarise this"])


@pytest.mark.agent_perf(requests=200, rate="100/s")
def test_open_loop(agentperf):
    agent = SimulatedAgent(median="20ms", spread=0.4, seed=SEED + 2)
    agentperf.run(agent.call_sync)
"""

INI = """[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
"""


def _pytest(folder: Path, seed: int, *args: str) -> tuple[int, list[dict[str, object]]]:
    env = dict(os.environ, AGENT_SEED=str(seed), CI="1")
    report = folder / "perf.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--agentperf-json={report}",
            *args,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode not in (0, 1):
        sys.exit(f"pytest exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    runs = json.loads(report.read_text(encoding="utf-8"))["runs"]
    return proc.returncode, runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reruns", type=int, default=20)
    p.add_argument("--workers", type=int, default=0, help="run under pytest-xdist -n N")
    a = p.parse_args()
    extra = ["-n", str(a.workers)] if a.workers else []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_agents.py").write_text(TESTS, encoding="utf-8")
        (folder / "pytest.ini").write_text(INI, encoding="utf-8")
        code, _ = _pytest(folder, 1000, "--agentperf-baseline", *extra)
        assert code == 0, "the baseline session failed"
        failures = 0
        statuses: Counter[str] = Counter()
        worst: dict[str, float] = {}
        for i in range(a.reruns):
            code, runs = _pytest(folder, 2000 + i, *extra)
            failures += code != 0
            for run in runs:
                comp = run["result"]["comparison"]
                statuses[comp["status"]] += 1
                for key in ("p50", "p95"):
                    change = comp[key]["change"]
                    name = f"{run['test'].split('::')[-1]} {key}"
                    worst[name] = max(worst.get(name, 0.0), change)
            print(
                f"rerun {i + 1:2}: exit {code}  "
                + "  ".join(
                    f"{r['test'].split('::')[-1]}={r['result']['comparison']['status']}"
                    for r in runs
                ),
                flush=True,
            )
    print(f"\n{a.reruns} reruns x 3 tests: {failures} failed sessions; statuses {dict(statuses)}")
    print(
        "largest ratio now/baseline seen: "
        + ", ".join(f"{k} x{v:.3f}" for k, v in sorted(worst.items()))
    )
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
