"""Run by ``ci/tty-smoke`` under a pseudo-terminal: a perf test run from a terminal draws its
live progress line (under pytest 7.4 and 8.0 this once failed every perf test)."""

import time
from typing import Any

import pytest


@pytest.mark.agent_perf(duration="2.5s", warmup=0)
def test_line(agentperf: Any) -> None:
    agentperf.run(lambda: time.sleep(0.01))
