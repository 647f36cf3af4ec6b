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


COMPARE_MODES = ("baseline", "history")
"""``--agentperf-compare``: judge each run against the baseline file, or the run history."""
DEFAULT_HISTORY_KEEP = 500
"""Sessions the history folder keeps per machine (ini ``agentperf_history_keep``)."""
DEFAULT_HISTORY_SESSIONS = 20
"""Past sessions the history gate judges a run against (``--agentperf-history-sessions``)."""
MIN_HISTORY_SESSIONS = 5
"""Fewest past sessions the history gate can judge with (``history.gate.MIN_SESSIONS``)."""


def parse_count(value: object, name: str, *, minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` given as an option or ini value."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise SettingsError(f"{name}={value!r}: must be a whole number of at least {minimum}")
    return number


def parse_probability(value: object, name: str) -> float:
    """A significance level: a number strictly between 0 and 1 ("0.001")."""
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not 0.0 < number < 1.0:
        raise SettingsError(f"{name}={value!r}: must be a number between 0 and 1, e.g. 0.001")
    return number
