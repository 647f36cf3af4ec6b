"""The baseline: environment, the file store, the comparison of a run with it, and the gate.

Data flows environment -> store (save and load the file) -> comparison (one run against its
baseline run) -> gate (fail the regressed test, save at the end). This ``__init__`` only
re-exports the store and environment names, so ``pytest_agentperf.baseline`` keeps working
as the module it was before the package.
"""

from __future__ import annotations

from .environment import (
    Environment,
    Machine,
    current_environment,
    git_commit,
    machine_info,
    plugin_version,
)
from .store import (
    BASELINE_SCHEMA_VERSION,
    FORMAT,
    KIND,
    MAX_SAMPLES,
    Baseline,
    BaselineRun,
    RunKey,
    SaveResult,
    cap_samples,
    dumps,
    load,
    parse,
    run_from_result,
    save,
    thin_samples,
)

__all__ = [
    "BASELINE_SCHEMA_VERSION",
    "FORMAT",
    "KIND",
    "MAX_SAMPLES",
    "Baseline",
    "BaselineRun",
    "Environment",
    "Machine",
    "RunKey",
    "SaveResult",
    "cap_samples",
    "current_environment",
    "dumps",
    "git_commit",
    "load",
    "machine_info",
    "parse",
    "plugin_version",
    "run_from_result",
    "save",
    "thin_samples",
]
