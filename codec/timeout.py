"""The ``grpc-timeout`` header: a relative deadline as at most 8 digits and a unit.

The client sends how long the server may take; it rounds up, so that the server never gives up
before the client would (the client enforces its own deadline anyway).
"""

from __future__ import annotations

import math

from .errors import InvalidTimeoutError

__all__ = ["encode_timeout", "parse_timeout"]

_MAX_VALUE = 99_999_999  # 8 digits
# (nanoseconds per unit, unit), most precise first.
_COARSER_UNITS = (
    (1_000, b"u"),
    (1_000_000, b"m"),
    (1_000_000_000, b"S"),
    (60_000_000_000, b"M"),
    (3_600_000_000_000, b"H"),
)
_MAX_SECONDS = _MAX_VALUE * 3600.0
_MAX_TIMEOUT = b"99999999H"
# Multiply by a whole factor, or divide by one: both are exact for integer values of the digits.
_UNIT_FACTOR = {ord("H"): 3600, ord("M"): 60, ord("S"): 1}
_UNIT_DIVISOR = {ord("m"): 1e3, ord("u"): 1e6, ord("n"): 1e9}
# Float noise in ``seconds * 1e9`` (0.3 s -> 300000000.00000006 ns) is not a real nanosecond.
_NS_TOLERANCE = 1e-3


def encode_timeout(seconds: float) -> bytes:
    """``grpc-timeout`` value for ``seconds``: the most precise unit that fits in 8 digits.

    Rounds up to that unit; a non-positive timeout (already expired) is sent as ``1n`` so the
    server sees an expired deadline too, and absurdly long ones are capped at ``99999999H``.
    """
    if seconds <= 0:
        return b"1n"
    if seconds >= _MAX_SECONDS:
        return _MAX_TIMEOUT
    if math.isnan(seconds):
        raise ValueError("timeout is NaN")
    exact_ns = seconds * 1e9
    ns = int(exact_ns)
    if exact_ns - ns > _NS_TOLERANCE or ns == 0:
        ns += 1
    if ns <= _MAX_VALUE:
        return b"%dn" % ns
    for per_unit, unit in _COARSER_UNITS:
        value = -(-ns // per_unit)  # ceiling division
        if value <= _MAX_VALUE:
            return b"%d%s" % (value, unit)
    return _MAX_TIMEOUT  # pragma: no cover - excluded by the _MAX_SECONDS check


def parse_timeout(value: bytes) -> float:
    """Seconds from a ``grpc-timeout`` value; raises InvalidTimeoutError if it is malformed."""
    digits = value[:-1]
    if 1 <= len(digits) <= 8 and digits.isdigit():  # bytes.isdigit() is ASCII-only
        unit = value[-1]
        factor = _UNIT_FACTOR.get(unit)
        if factor is not None:
            return float(int(digits) * factor)
        divisor = _UNIT_DIVISOR.get(unit)
        if divisor is not None:
            return int(digits) / divisor
    raise InvalidTimeoutError(f"invalid grpc-timeout: {value!r}")
