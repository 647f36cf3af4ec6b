"""``--agentperf-json``: every run of every test, machine-readable."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def document(records: Sequence[dict[str, Any]], plugin_version: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "plugin_version": plugin_version,
        "machine": machine_info(),
        "runs": list(records),
    }


def write(path: str | Path, records: Sequence[dict[str, Any]], plugin_version: str) -> Path:
    """Write the report atomically (temp file, then rename); returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document(records, plugin_version), f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
