from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import InvalidTimeoutError, encode_timeout, parse_timeout

UNIT_SECONDS = {b"n": 1e-9, b"u": 1e-6, b"m": 1e-3, b"S": 1.0, b"M": 60.0, b"H": 3600.0}


@pytest.mark.parametrize(
    ("seconds", "encoded"),
    [
        (1e-9, b"1n"),
        (0.099999999, b"99999999n"),
        (0.1, b"100000u"),
        (0.3, b"300000u"),
        (1.1, b"1100000u"),
        (5, b"5000000u"),
        (99.999999, b"99999999u"),
        (100.0, b"100000m"),
        (100.0001, b"100001m"),  # rounded up, never shortened
        (99_999.999, b"99999999m"),
        (100_000.0, b"100000S"),
        (99_999_999.0, b"99999999S"),
        (100_000_000.0, b"1666667M"),
        (99_999_999 * 60.0, b"99999999M"),
        (99_999_999 * 60.0 + 1, b"1666667H"),
    ],
)
def test_encode_uses_most_precise_unit_that_fits_8_digits(seconds: float, encoded: bytes) -> None:
    assert encode_timeout(seconds) == encoded


@pytest.mark.parametrize("seconds", [0, 0.0, -1.0, -math.inf])
def test_non_positive_timeout_encodes_as_1n(seconds: float) -> None:
    assert encode_timeout(seconds) == b"1n"


def test_tiny_positive_timeout_rounds_up_to_1n() -> None:
    assert encode_timeout(1e-15) == b"1n"


@pytest.mark.parametrize("seconds", [99_999_999 * 3600.0, 1e300, math.inf])
def test_huge_timeout_is_capped(seconds: float) -> None:
    assert encode_timeout(seconds) == b"99999999H"


def test_nan_timeout_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        encode_timeout(math.nan)


@given(st.floats(min_value=1e-9, max_value=99_999_999 * 3600.0 * 0.999, allow_nan=False))
def test_round_trip_is_within_one_unit_and_never_shorter(seconds: float) -> None:
    encoded = encode_timeout(seconds)
    digits, unit = encoded[:-1], encoded[-1:]
    assert 1 <= len(digits) <= 8
    parsed = parse_timeout(encoded)
    assert parsed >= seconds * (1 - 1e-12)
    assert parsed - seconds <= UNIT_SECONDS[unit] * (1 + 1e-9)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"1H", 3600.0),
        (b"2M", 120.0),
        (b"3S", 3.0),
        (b"4m", 0.004),
        (b"5u", 5e-6),
        (b"6n", 6e-9),
        (b"0S", 0.0),
        (b"99999999H", 99_999_999 * 3600.0),
        (b"00000001m", 0.001),
    ],
)
def test_parse_every_unit(value: bytes, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"S",
        b"1",
        b"10",
        b"123456789S",  # 9 digits
        b"1s",
        b"1h",
        b"1x",
        b"-1S",
        b"+1S",
        b" 1S",
        b"1 S",
        b"1S ",
        b"1.5S",
        "\u0661S".encode(),  # a non-ASCII digit
    ],
)
def test_invalid_values_are_rejected(value: bytes) -> None:
    with pytest.raises(InvalidTimeoutError):
        parse_timeout(value)
