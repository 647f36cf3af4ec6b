"""``--agentperf-json``: every run of every test, machine-readable."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from ..atomic import FileKind, json_kind, write_atomic
from ..baseline.environment import machine_info
from ..record import RunRecord
from ..redact import redact
from .protocol import ReportContext

FORMAT = "pytest-agentperf-results"
REPORT_SCHEMA_VERSION = 2
"""Version of the JSON report's layout (its own format, versioned apart from the baseline file).

2: runs are ``RunRecord.to_dict()``: ``nodeid`` (was ``test``), ``status`` one word with the
broken budgets in ``result.budgets``, comparison metrics under ``comparison.metrics``."""

KIND: FileKind = json_kind(
    "pytest-agentperf JSON report",
    FORMAT,
    legacy_keys=("schema_version", "plugin_version", "runs"),  # reports from before the marker
)
"""What a JSON report looks like: only such a file (or none, or an empty one) is replaced."""


def document(records: Sequence[RunRecord], plugin_version: str) -> dict[str, Any]:
    """The report's JSON document; every string in it has passed through ``redact``."""
    doc = {
        "format": FORMAT,
        "schema_version": REPORT_SCHEMA_VERSION,
        "plugin_version": plugin_version,
        "machine": asdict(machine_info()),
        "runs": [r.to_dict() for r in records],
    }
    return cast(dict[str, Any], redact_strings(doc))


def redact_strings(value: Any) -> Any:
    """``value`` (JSON-like) with ``redact`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_strings(k): redact_strings(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_strings(v) for v in value]
    return value


def write(
    path: str | Path,
    records: Sequence[RunRecord],
    plugin_version: str,
    *,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report atomically; returns the path written.

    Raises ``OutputPathError`` when ``path`` is not ours to replace (see ``check_target``),
    ``OSError`` when it cannot be written, ``ValueError`` when a record cannot be encoded.
    """
    target = Path(path)
    text = json.dumps(document(records, plugin_version), indent=1, allow_nan=False)
    write_atomic(target, text + "\n", kind=KIND, root=root)
    return target


class JsonWriter:
    """``--agentperf-json=PATH``: the ``ReportWriter`` of the JSON report."""

    label = "JSON report"

    def __init__(self, path: str) -> None:
        self.target = path

    def write(self, records: Sequence[RunRecord], context: ReportContext) -> str:
        written = write(self.target, records, context.plugin_version, root=context.root)
        return f"{self.label} written to {written}"


def create(value: str | None, options: Mapping[str, Any]) -> JsonWriter:
    """The writer of ``--agentperf-json=value``."""
    if not value:
        raise ValueError("the JSON report needs a path")
    return JsonWriter(value)
