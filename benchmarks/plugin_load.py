"""What the plugin costs a pytest session that runs no perf test (issue targets in brackets).

Run: .venv/bin/python benchmarks/plugin_load.py [--repeats 3] [--tests 1000]
(with PYTHONPATH=<another checkout> it measures that checkout's plugin instead)

1. ``python -X importtime``: cumulative time of importing pytest_agentperf.plugin after pytest
   (median of 5 fresh interpreters)                                                   [<= 30 ms]
2. wall time of a generated suite of 1000 trivial tests, plugin on / ``-p no:agentperf``
   (median of the repeats, on and off interleaved so a noisy neighbour hurts both)    [<= 1.03x]
   and, for information, the same ratio of CPU time (user + system), which a busy
   neighbour disturbs less than wall time
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORT_TARGET_MS = 30.0
RATIO_TARGET = 1.03


def import_ms() -> float:
    """Cumulative import time of the plugin module, pytest already loaded (as in a session)."""
    code = "import pytest; import pytest_agentperf.plugin"
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    ).stderr
    for line in err.splitlines():
        # "import time: self [us] | cumulative | imported package"; top level has no indent
        _, cumulative, name = line.rsplit("|", 2) if line.count("|") == 2 else ("", "", "")
        if name.strip() == "pytest_agentperf.plugin" and not name[1:].startswith(" "):
            return int(cumulative) / 1000
    raise RuntimeError(f"pytest_agentperf.plugin not in the -X importtime output:\n{err}")


def make_suite(root: Path, tests: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    per_file = 100
    for f in range(max(1, tests // per_file)):
        body = "".join(f"def test_{i}():\n    pass\n\n\n" for i in range(per_file))
        (root / f"test_trivial_{f}.py").write_text(body)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_suite(root: Path, *extra: str) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest run of the suite."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}")
    return elapsed, _children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tests", type=int, default=1000)
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}"
    )

    imports = [import_ms() for _ in range(5)]
    ms = statistics.median(imports)
    verdict = "ok" if ms <= IMPORT_TARGET_MS else "MISSED"
    print(
        f"plugin import (-X importtime, median of 5): {ms:.1f} ms "
        f"[target <= {IMPORT_TARGET_MS:.0f} ms] {verdict}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_suite(root, args.tests)
        run_suite(root)  # warm the .pyc files of both sides
        run_suite(root, "-p", "no:agentperf")
        on: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        for _ in range(args.repeats):
            on.append(run_suite(root))
            off.append(run_suite(root, "-p", "no:agentperf"))
    for kind, i in (("wall", 0), ("CPU", 1)):
        a = statistics.median(r[i] for r in on)
        b = statistics.median(r[i] for r in off)
        target = f"[target <= {RATIO_TARGET}x] {'ok' if a / b <= RATIO_TARGET else 'MISSED'}"
        print(
            f"{args.tests} trivial tests, plugin on / off, {kind} time (median of "
            f"{args.repeats}): {a:.2f} s / {b:.2f} s = {a / b:.3f}x "
            f"{target if kind == 'wall' else '(information)'}"
        )
        print(f"  on:  {', '.join(f'{r[i]:.2f}' for r in on)} s")
        print(f"  off: {', '.join(f'{r[i]:.2f}' for r in off)} s")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
