"""``--agentperf-pushgateway=URL``: the session's runs pushed once to a Prometheus Pushgateway.

The same families as the OpenMetrics file (``report.openmetrics``), sent with
``prometheus_client.push_to_gateway`` (an HTTP PUT) under job ``agentperf``
(``--agentperf-pushgateway-job=NAME``) and the grouping key ``session`` = the project folder's
name (pytest's rootdir). A PUT replaces every metric of its group, so a rerun of the same
project replaces what the last session pushed instead of piling up beside it. A session without
a perf run pushes nothing (an empty PUT would wipe the last push).

A push that fails (no gateway, a refused request) is a warning line naming the URL, not a
failed session: the runs were measured and judged, and the other reports are written; a
monitoring outage must not turn a CI job red.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping, Sequence
from typing import Any

from ..record import RunRecord
from ..redact import redact
from .openmetrics import registry, require_client
from .protocol import ReportContext

DEFAULT_JOB = "agentperf"
SESSION_LABEL = "session"
"""The grouping key's label: which test session (project) the pushed metrics belong to."""
TIMEOUT = 10.0
"""Seconds the push may take before it is given up (the session waits that long at most)."""


def session_name(context: ReportContext) -> str:
    """The grouping key's value: the project folder's name ("pytest" without a root)."""
    name = context.root.name if context.root is not None else ""
    return redact(name) or "pytest"


class PushgatewayWriter:
    """``--agentperf-pushgateway=URL``: the ``ReportWriter`` that pushes the metrics."""

    label = "Pushgateway push"

    def __init__(self, url: str, job: str = DEFAULT_JOB, timeout: float = TIMEOUT) -> None:
        self.target = url
        self.job = job
        self.timeout = timeout

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        if not records:  # an empty PUT would wipe what the last session pushed
            return (
                f"{self.label}: no perf run in this session, nothing sent to {redact(self.target)}"
            )
        require_client(self.label)
        from prometheus_client.exposition import push_to_gateway

        url = redact(self.target)  # a URL may carry a password
        session = session_name(context)
        try:
            push_to_gateway(
                self.target,
                job=self.job,
                registry=registry(records),
                grouping_key={SESSION_LABEL: session},
                timeout=self.timeout,
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = redact(str(exc)) or type(exc).__name__
            return (
                f"WARNING: the {self.label} to {url} failed ({reason}); nothing was pushed, "
                "the session's outcome and its other reports are unchanged"
            )
        return (
            f"{self.label}: {len(records)} run(s) sent to {url} "
            f"(job={self.job}, {SESSION_LABEL}={session})"
        )


def create(value: str | None, options: Mapping[str, Any]) -> PushgatewayWriter:
    """The writer of ``--agentperf-pushgateway=value``."""
    if not value:
        raise ValueError("the Pushgateway push needs a URL")
    job = options.get("agentperf_pushgateway_job") or DEFAULT_JOB
    return PushgatewayWriter(value, str(job))
