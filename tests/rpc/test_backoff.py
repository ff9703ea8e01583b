"""gRPC connection backoff parameters and growth."""

from __future__ import annotations

import pytest

from rpc._core.backoff import Backoff, BackoffOptions


def test_defaults_are_grpcs() -> None:
    options = BackoffOptions()
    assert (options.initial_backoff, options.multiplier, options.jitter) == (1.0, 1.6, 0.2)
    assert (options.max_backoff, options.min_connect_timeout) == (120.0, 20.0)


def test_grows_by_the_multiplier_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(BackoffOptions(), rand=lambda lo, hi: 0.0)
    delays = [backoff.next_delay() for _ in range(15)]
    assert delays[:3] == pytest.approx([1.0, 1.6, 2.56])
    assert max(delays) == 120.0
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_jitter_stays_within_twenty_percent() -> None:
    low = Backoff(BackoffOptions(), rand=lambda lo, hi: lo).next_delay()
    high = Backoff(BackoffOptions(), rand=lambda lo, hi: hi).next_delay()
    assert (low, high) == pytest.approx((0.8, 1.2))


def test_connect_timeout_is_at_least_the_minimum() -> None:
    backoff = Backoff(BackoffOptions(initial_backoff=1, max_backoff=200), rand=lambda a, b: 0)
    assert backoff.connect_timeout() == 20.0
    for _ in range(20):
        backoff.next_delay()
    assert backoff.connect_timeout() == 200.0


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        BackoffOptions(initial_backoff=0)
    with pytest.raises(ValueError):
        BackoffOptions(multiplier=0.5)
