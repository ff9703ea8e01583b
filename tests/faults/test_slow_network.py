"""A slow network: latency and jitter, a bandwidth cap, stalls. Calls finish (OK) when their
deadline allows it and fail DEADLINE_EXCEEDED on time when it does not; the connection survives.

Each test runs on every (client, server) pair of conftest.PAIRS and ends with the leak check.
"""

from __future__ import annotations

import threading

import pytest

#: How late a call may end after its deadline on a busy 2-core machine (it must not hang).
SLACK = 1.0

pytestmark = pytest.mark.time_limit(30)


def test_latency_and_jitter_slow_calls_down_but_they_finish(rig):
    proxy = rig.proxy
    client = rig.client()
    assert client.unary(5, payload=b"warm").code == "OK"
    proxy.up.latency = proxy.down.latency = 0.05
    proxy.up.jitter = proxy.down.jitter = 0.03
    outcome = client.unary(5, payload=b"x" * 1000)
    assert outcome.code == "OK" and outcome.responses[0].payload == b"x" * 1000
    assert outcome.seconds >= 0.1  # a round trip
    outcome = client.server_stream(5, response_count=20, response_size=10_000)
    assert outcome.code == "OK"
    assert [r.index for r in outcome.responses] == list(range(20))  # in order despite jitter
    # A deadline shorter than the round trip.
    outcome = client.unary(0.06, payload=b"late")
    assert outcome.code == "DEADLINE_EXCEEDED"
    assert outcome.seconds < 0.06 + SLACK
    proxy.clear()
    assert client.unary(5, payload=b"again").code == "OK"


def test_a_deadline_shorter_than_the_connection_setup_is_deadline_exceeded(rig):
    # The first call of a channel waits for the connection: when its deadline ends that wait,
    # the call is DEADLINE_EXCEEDED (not UNAVAILABLE), and the next call does not find the
    # channel backing off as if the server were down.
    rig.proxy.down.latency = 0.3  # the server's SETTINGS come late
    client = rig.client()
    outcome = client.unary(0.1, payload=b"early")
    assert outcome.code == "DEADLINE_EXCEEDED", outcome
    assert outcome.seconds < 0.1 + SLACK
    outcome = client.unary(5, payload=b"patient")
    assert outcome.code == "OK", outcome


def test_a_bandwidth_cap_paces_a_stream_and_a_tight_deadline_ends_it(rig):
    proxy = rig.proxy
    client = rig.client()
    assert client.unary(5, payload=b"warm").code == "OK"
    proxy.down.bandwidth = 1024 * 1024  # 1 MiB/s
    outcome = client.server_stream(10, response_count=8, response_size=64 * 1024)
    assert outcome.code == "OK" and len(outcome.responses) == 8
    assert outcome.seconds >= 0.3  # 512 KiB at 1 MiB/s
    outcome = client.server_stream(0.4, response_count=64, response_size=64 * 1024)  # 4 MiB
    assert outcome.code == "DEADLINE_EXCEEDED"
    assert outcome.seconds < 0.4 + SLACK
    proxy.clear()
    assert client.unary(5, payload=b"after").code == "OK"


def test_a_stall_in_the_middle_of_a_stream_delays_it_only(rig):
    proxy = rig.proxy
    client = rig.client()
    resumed = []

    def stall_after_first(count):
        if count == 1:
            proxy.up.paused = proxy.down.paused = True
            timer = threading.Timer(
                0.5,
                lambda: (setattr(proxy.up, "paused", False), setattr(proxy.down, "paused", False)),
            )
            timer.start()
            resumed.append(timer)

    outcome = client.server_stream(
        10, stall_after_first, response_count=10, response_size=100, sleep_ms=20
    )
    assert outcome.code == "OK" and len(outcome.responses) == 10
    assert outcome.seconds >= 0.5
    resumed[0].join()


def test_a_call_whose_deadline_passes_in_a_stall_ends_on_time(rig):
    proxy = rig.proxy
    client = rig.client()
    assert client.unary(5, payload=b"warm").code == "OK"
    proxy.up.paused = proxy.down.paused = True
    outcome = client.unary(0.3, payload=b"stalled")
    assert outcome.code == "DEADLINE_EXCEEDED"
    assert outcome.seconds < 0.3 + SLACK
    proxy.clear()
    # The stall is over: the same connection (or a new one) serves the next call.
    assert client.unary(5, payload=b"after").code == "OK"
