from __future__ import annotations

import pytest

from pytest_agentperf.errors import SettingsError
from pytest_agentperf.units import Unit, format_seconds, format_value, parse


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        ("800ms", Unit.SECONDS, 0.8),
        ("1.5s", Unit.SECONDS, 1.5),
        ("2m", Unit.SECONDS, 120.0),
        ("250us", Unit.SECONDS, 250e-6),
        (" 3 s ", Unit.SECONDS, 3.0),
        (2, Unit.SECONDS, 2.0),
        ("1%", Unit.FRACTION, 0.01),
        ("0.5%", Unit.FRACTION, 0.005),
        (0.02, Unit.FRACTION, 0.02),
        ("$0.002", Unit.USD, 0.002),
        ("0.5", Unit.USD, 0.5),
        ("50MB", Unit.MEGABYTES, 50.0),
        ("1.5GB", Unit.MEGABYTES, 1500.0),
        ("512KiB", Unit.MEGABYTES, 512 * 1024 / 1e6),
        ("20/s", Unit.PER_SECOND, 20.0),
        ("600/min", Unit.PER_SECOND, 10.0),
        ("1.2x", Unit.RATIO, 1.2),
        ("1_000", Unit.COUNT, 1000.0),
    ],
)
def test_parse_accepts_units(text: object, unit: Unit, expected: float) -> None:
    assert parse(text, unit, key="k") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "unit", "fragment"),
    [
        ("8oo ms", Unit.SECONDS, "malformed"),
        ("5 parsecs", Unit.SECONDS, "malformed"),
        ("1.5kg", Unit.MEGABYTES, "malformed"),
        (-1, Unit.SECONDS, "negative"),
        (True, Unit.SECONDS, "bool"),
        ([1], Unit.SECONDS, "list"),
        (5, Unit.FRACTION, 'did you mean "5%"'),
        ("150%", Unit.FRACTION, "between 0 and 1"),
        (float("nan"), Unit.SECONDS, "finite"),
    ],
)
def test_parse_rejects_with_the_key_named(value: object, unit: Unit, fragment: str) -> None:
    with pytest.raises(SettingsError, match=r"^mykey") as info:
        parse(value, unit, key="mykey")
    assert fragment in str(info.value)
    assert info.value.key == "mykey"


def test_formatting_is_human() -> None:
    assert format_seconds(0.0008) == "800 µs"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(1.234) == "1.23 s"
    assert format_seconds(None) == "-"
    assert format_value(0.012, Unit.FRACTION) == "1.2%"
    assert format_value(0.0021, Unit.USD) == "$0.0021"
    assert format_value(20, Unit.PER_SECOND) == "20/s"


@pytest.mark.parametrize(
    ("value", "hint"),
    [(5, 'did you mean "5%"?'), ("5", 'did you mean "5%"?'), (" 12.5 ", 'did you mean "12.5%"?')],
)
def test_a_fraction_above_one_names_the_setting_and_suggests_percent(
    value: object, hint: str
) -> None:
    with pytest.raises(SettingsError) as info:
        parse(value, Unit.FRACTION, key="tolerance")
    message = str(info.value)
    assert message.startswith("tolerance=") and hint in message
    assert "a rate" not in message


def test_a_percentage_above_100_gets_no_percent_hint() -> None:
    with pytest.raises(SettingsError) as info:
        parse("150%", Unit.FRACTION, key="tolerance")
    assert "did you mean" not in str(info.value)


def test_an_integer_too_large_for_a_float_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match=r"^p95=1000.*must be a finite number"):
        parse(10**400, Unit.SECONDS, key="p95")
