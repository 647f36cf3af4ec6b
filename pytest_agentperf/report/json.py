"""``--agentperf-json``: every run of every test, machine-readable."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..baseline import machine_info

SCHEMA_VERSION = 1


def document(records: Sequence[dict[str, Any]], plugin_version: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "plugin_version": plugin_version,
        "machine": asdict(machine_info()),
        "runs": list(records),
    }


def write(path: str | Path, records: Sequence[dict[str, Any]], plugin_version: str) -> Path:
    """Write the report atomically; returns the path written."""
    target = Path(path)
    text = json.dumps(document(records, plugin_version), indent=1, allow_nan=False)
    write_atomic(target, text + "\n")
    return target
