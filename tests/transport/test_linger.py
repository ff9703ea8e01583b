"""The lingering close's bounds (transport.linger)."""

from __future__ import annotations

from transport.linger import LINGER_BYTES, LINGER_SECONDS, Linger


def test_the_drain_stops_after_its_bytes():
    linger = Linger(now=10.0)
    assert linger.discard(LINGER_BYTES - 1, 10.1)
    assert linger.discard(1, 10.1)
    assert not linger.discard(1, 10.1)


def test_the_drain_stops_after_its_time():
    linger = Linger(now=10.0)
    assert linger.discard(1, 10.0 + LINGER_SECONDS / 2)
    assert not linger.discard(1, 10.0 + LINGER_SECONDS)
