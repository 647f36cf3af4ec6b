"""Parsing of unit strings used in budgets: "800ms", "1%", "$0.002", "50MB", "20/s", "1.2x"."""

from __future__ import annotations

import math
import re
from enum import Enum

from .errors import SettingsError


class Unit(Enum):
    """The kind of quantity a setting holds; decides accepted suffixes and the base unit."""

    SECONDS = "seconds"
    FRACTION = "fraction"
    USD = "usd"
    MEGABYTES = "megabytes"
    PER_SECOND = "per_second"
    RATIO = "ratio"
    COUNT = "count"


_NUMBER = r"(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_DURATION_FACTORS = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
}
_SIZE_FACTORS = {
    "b": 1e-6,
    "kb": 1e-3,
    "mb": 1.0,
    "gb": 1e3,
    "kib": 1024 / 1e6,
    "mib": 1024**2 / 1e6,
    "gib": 1024**3 / 1e6,
}
_RATE_FACTORS = {"/s": 1.0, "/sec": 1.0, "/m": 1 / 60, "/min": 1 / 60, "/h": 1 / 3600}

_EXAMPLES = {
    Unit.SECONDS: '"800ms", "1.5s", "2m" or a number of seconds',
    Unit.FRACTION: '"1%", "0.5%" or a fraction between 0 and 1',
    Unit.USD: '"$0.002" or a number of dollars',
    Unit.MEGABYTES: '"50MB", "1.5GB", "512KiB" or a number of megabytes',
    Unit.PER_SECOND: '"20/s", "600/min" or a number per second',
    Unit.RATIO: '"1.2x" or a number',
    Unit.COUNT: "a number",
}


def describe(unit: Unit) -> str:
    """Examples of accepted values, for error messages."""
    return _EXAMPLES[unit]


def parse(value: object, unit: Unit, *, key: str) -> float:
    """Return ``value`` in the base unit of ``unit``; raise SettingsError naming ``key``."""
    if isinstance(value, bool):
        raise SettingsError(f"{key}={value!r}: expected {describe(unit)}, not a bool", key=key)
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float (10**400)
            raise SettingsError(f"{key}={value!r}: must be a finite number", key=key) from None
    elif isinstance(value, str):
        number = _parse_string(value.strip(), unit, key)
    else:
        raise SettingsError(
            f"{key}={value!r}: expected {describe(unit)}, got {type(value).__name__}", key=key
        )
    if math.isnan(number) or math.isinf(number):
        raise SettingsError(f"{key}={value!r}: must be a finite number", key=key)
    if number < 0:
        raise SettingsError(f"{key}={value!r}: must not be negative", key=key)
    if unit is Unit.FRACTION and number > 1:
        raise SettingsError(
            f"{key}={value!r}: must be a fraction between 0 and 1 or a percentage "
            f'("10%" or 0.1){_percent_hint(value)}',
            key=key,
        )
    return number


def _percent_hint(value: object) -> str:
    """ "; did you mean "5%"?" for a bare number above 1 (5 or "5"), which most likely meant
    percent; nothing for a value that already says "%"."""
    text = str(value).strip()
    if isinstance(value, (int, float)) or re.fullmatch(_NUMBER, text):
        return f'; did you mean "{text}%"?'
    return ""


def _parse_string(text: str, unit: Unit, key: str) -> float:
    bad = SettingsError(f"{key}={text!r}: malformed value; expected {describe(unit)}", key=key)
    if unit is Unit.USD:
        m = re.fullmatch(r"\$?\s*" + _NUMBER + r"\s*(?:usd|USD)?", text)
        if not m:
            raise bad
        return float(m.group(1))
    if unit is Unit.FRACTION:
        m = re.fullmatch(_NUMBER + r"\s*(%?)", text)
        if not m:
            raise bad
        return float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if unit is Unit.RATIO:
        m = re.fullmatch(_NUMBER + r"\s*[xX×]?", text)
        if not m:
            raise bad
        return float(m.group(1))
    if unit is Unit.COUNT:
        m = re.fullmatch(_NUMBER, text.replace("_", ""))
        if not m:
            raise bad
        return float(m.group(1))
    factors = {
        Unit.SECONDS: _DURATION_FACTORS,
        Unit.MEGABYTES: _SIZE_FACTORS,
        Unit.PER_SECOND: _RATE_FACTORS,
    }[unit]
    m = re.fullmatch(_NUMBER + r"\s*([a-zA-Zµ/]*)", text)
    if not m:
        raise bad
    suffix = m.group(2)
    lookup = suffix if unit is Unit.SECONDS else suffix.lower()
    if suffix == "":
        return float(m.group(1))
    if lookup not in factors:
        raise bad
    return float(m.group(1)) * factors[lookup]


def format_seconds(value: float | None) -> str:
    """Human-readable duration: "850 µs", "12.3 ms", "1.23 s"."""
    if value is None or math.isnan(value):
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1.0:
        return f"{value * 1e3:.3g} ms"
    if value < 100:
        return f"{value:.3g} s"
    return f"{value:.0f} s"


def format_usd(value: float | None) -> str:
    """Dollars, three significant digits and never an exponent: "$0.0000745", "$0.50",
    "$1,234.50". The one money format of tables, budget messages and baseline changes."""
    if value is None or math.isnan(value):
        return "-"
    if value < 0:
        return "-" + format_usd(-value)
    if value == 0 or math.isinf(value):
        return f"${value:g}"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(value)))  # three significant digits
    whole, _, frac = f"{value:.{decimals}f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def format_value(value: float | None, unit: Unit) -> str:
    """Human-readable value of ``unit``, for tables and failure messages."""
    if value is None or math.isnan(value):
        return "-"
    if unit is Unit.SECONDS:
        return format_seconds(value)
    if unit is Unit.FRACTION:
        return f"{value * 100:.3g}%"
    if unit is Unit.USD:
        return format_usd(value)
    if unit is Unit.MEGABYTES:
        return f"{value:.3g} MB"
    if unit is Unit.PER_SECOND:
        return f"{value:.3g}/s"
    if unit is Unit.RATIO:
        return f"{value:.3g}x"
    return f"{value:.4g}"
