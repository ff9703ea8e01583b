"""Keepalive policies, as pure functions of time (no sockets, no sleeping)."""

from __future__ import annotations

from transport import ConnectionOptions
from transport.keepalive import KeepaliveAction, KeepaliveTimer, PingPolicy


def test_keepalive_off_by_default() -> None:
    timer = KeepaliveTimer(ConnectionOptions(), now=0.0)
    assert timer.deadline() is None
    assert timer.on_timer(1e9, active_streams=5) is KeepaliveAction.NOTHING


def test_pings_after_silence_and_declares_death_without_ack() -> None:
    timer = KeepaliveTimer(ConnectionOptions(keepalive_time=10, keepalive_timeout=2), now=0.0)
    assert timer.deadline() == 10.0
    timer.heard_from_peer(5.0)
    assert timer.on_timer(10.0, active_streams=1) is KeepaliveAction.NOTHING
    assert timer.deadline() == 15.0
    assert timer.on_timer(15.0, active_streams=1) is KeepaliveAction.SEND_PING
    payload = timer.ping_payload(15.0)
    assert len(payload) == 8
    assert timer.deadline() == 17.0
    assert timer.on_timer(16.0, active_streams=1) is KeepaliveAction.NOTHING
    assert timer.on_timer(17.0, active_streams=1) is KeepaliveAction.CONNECTION_DEAD


def test_ack_keeps_the_connection_alive() -> None:
    timer = KeepaliveTimer(ConnectionOptions(keepalive_time=10, keepalive_timeout=2), now=0.0)
    assert timer.on_timer(10.0, active_streams=1) is KeepaliveAction.SEND_PING
    payload = timer.ping_payload(10.0)
    timer.on_ping_ack(b"other!!!", 11.0)  # not ours: still waiting... but peer is alive
    timer.on_ping_ack(payload, 11.0)
    assert timer.deadline() == 21.0
    assert timer.on_timer(12.5, active_streams=1) is KeepaliveAction.NOTHING


def test_no_pings_without_calls_unless_permitted() -> None:
    options = ConnectionOptions(keepalive_time=10)
    timer = KeepaliveTimer(options, now=0.0)
    assert timer.on_timer(10.0, active_streams=0) is KeepaliveAction.NOTHING
    permitted = KeepaliveTimer(
        ConnectionOptions(keepalive_time=10, keepalive_permit_without_calls=True), now=0.0
    )
    assert permitted.on_timer(10.0, active_streams=0) is KeepaliveAction.SEND_PING


def test_server_strikes_out_a_client_pinging_too_often() -> None:
    policy = PingPolicy(ConnectionOptions(min_ping_interval=5, max_ping_strikes=2))
    assert not policy.ping_received(0.0, active_streams=1)
    assert not policy.ping_received(1.0, active_streams=1)  # strike 1
    assert not policy.ping_received(2.0, active_streams=1)  # strike 2
    assert policy.ping_received(3.0, active_streams=1)  # strike 3: too many


def test_pings_spaced_out_enough_are_fine() -> None:
    policy = PingPolicy(ConnectionOptions(min_ping_interval=5, max_ping_strikes=2))
    for i in range(100):
        assert not policy.ping_received(i * 5.0, active_streams=1)


def test_sending_data_resets_the_strikes() -> None:
    policy = PingPolicy(ConnectionOptions(min_ping_interval=5, max_ping_strikes=1))
    for i in range(50):
        policy.data_sent()
        assert not policy.ping_received(i * 0.1, active_streams=1)


def test_idle_connection_pings_need_two_hours_unless_permitted() -> None:
    policy = PingPolicy(ConnectionOptions(min_ping_interval=5, max_ping_strikes=0))
    assert policy.max_strikes == 0  # 0: unlimited
    assert not any(policy.ping_received(i * 10.0, active_streams=0) for i in range(20))
    strict = PingPolicy(ConnectionOptions(min_ping_interval=5, max_ping_strikes=1))
    strict.ping_received(0.0, active_streams=0)
    strict.ping_received(600.0, active_streams=0)  # 10 min apart, but no calls: a strike
    assert strict.strikes == 1
