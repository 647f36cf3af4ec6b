"""Names, defaults and cheap checks of the plugin's options: all that loading the plugin needs.

Nothing here (nor in what it imports) loads numpy, the engine or an integration, so a pytest
session without perf tests pays almost nothing for the plugin; the heavy modules load when the
first perf test runs.
"""

from __future__ import annotations

import math

from .errors import SettingsError

MARKER = "agent_perf"
"""The marker's name: ``@pytest.mark.agent_perf(**settings)``."""

DEFAULT_BASELINE_PATH = ".agentperf/baseline.json"
"""Where the baseline is saved and read, relative to the rootdir, unless configured."""

REGRESSION_MODES = ("fail", "warn")
"""``--agentperf-regression``: a regression fails its test, or is only reported."""


MAX_SCALE = 1e6
"""Upper bound of ``--agentperf-scale``."""


def parse_scale(value: float) -> float:
    """The ``--agentperf-scale`` factor: a finite number above zero, at most ``MAX_SCALE``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise SettingsError(f"--agentperf-scale={value}: must be a finite number greater than 0")
    if value > MAX_SCALE:
        raise SettingsError(
            f"--agentperf-scale={value:g}: must be at most {MAX_SCALE:g} "
            "(it multiplies requests= and duration=)"
        )
    return float(value)
