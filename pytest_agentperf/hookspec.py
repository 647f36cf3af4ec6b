"""Hooks pytest-agentperf adds to pytest, for a ``conftest.py`` or a plugin to implement.

Both are called on the controlling process only: in a plain run that is the one process;
under pytest-xdist it is the controller, with the records the workers sent (each crossed the
process boundary once, as JSON, and was rebuilt once). The built-in outputs (the terminal
table, ``--agentperf-json``) are implementations of ``pytest_agentperf_session_finished``
registered the same way, so a conftest sees exactly what they see.

Example, a ``conftest.py`` that posts each test's p95 somewhere::

    def pytest_agentperf_session_finished(config, records):
        for record in records:
            print(record.nodeid, record.name, record.status, record.result.latency.p95)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .record import RunRecord


@pytest.hookspec()
def pytest_agentperf_run_finished(config: pytest.Config, record: RunRecord) -> None:
    """Called once per finished run, as soon as its record reaches the controlling process.

    :param config: The pytest config object.
    :param record: The run's ``pytest_agentperf.RunRecord``: node id, run name, status, the
        ``PerfResult`` with its comparison against the baseline, warnings and findings.

    Called after the test's phase (setup, call or teardown) that made the run is reported,
    under xdist when the worker's report arrives. The record is frozen: read it, do not change
    it. An exception raised here stops the session as in any pytest hook.
    """


@pytest.hookspec()
def pytest_agentperf_session_finished(config: pytest.Config, records: Sequence[RunRecord]) -> None:
    """Called once at the end of the session with every run record, in the order they arrived.

    :param config: The pytest config object.
    :param records: Every ``pytest_agentperf.RunRecord`` of the session (empty when no perf
        test ran).

    Called from ``pytest_sessionfinish`` after the baseline was saved (when asked) and before
    the terminal summary is written, also with ``-p no:terminal``. The report writers
    (``--agentperf-json`` and the terminal table) are implementations of this hook.
    """
