"""The connection policy without sockets: targets, the balancer's decisions, the channel
core's ``_connection`` program (driven here by a fake driver that answers each command)."""

from __future__ import annotations

from typing import Any, Optional

import pytest

import rpc
from codec.http2_errors import ENHANCE_YOUR_CALM
from rpc._core.channel import WAIT_FOR_PICKER, ChannelCore
from rpc.client.balancer import CONNECT_TO, RESOLVE, TIMER, Balancer
from rpc.client.health import is_serving, watch_request
from rpc.client.target import parse_target
from transport import Address

IDLE = rpc.ChannelConnectivity.IDLE
CONNECTING = rpc.ChannelConnectivity.CONNECTING
READY = rpc.ChannelConnectivity.READY
TRANSIENT_FAILURE = rpc.ChannelConnectivity.TRANSIENT_FAILURE


class FakeConnection:
    def __init__(self, usable: bool = True, goaway: Optional[tuple[int, bytes]] = None) -> None:
        self.is_usable = usable
        self.goaway_error_code, self.goaway_debug_data = goaway or (None, b"")
        self.closed_when_idle = False
        self.closed = False

    def close_when_idle(self) -> None:
        self.closed_when_idle = True

    def close(self) -> None:
        self.closed = True


class FakeChannel(ChannelCore):
    """A channel core whose commands are kept for the test to answer."""

    def _setup(self) -> None:
        self.performed: list[tuple[Any, ...]] = []
        self.timers: list[tuple[Any, ...]] = []

    def _perform(self, command: tuple[Any, ...]) -> None:
        self.performed.append(command)


def connection(channel: FakeChannel, wait_for_ready: bool, *answers: Any) -> Any:
    """Drive ``_connection``: each connection attempt takes the next answer (a connection or an
    error); with nothing to answer, the earliest timer fires ("PAUSE": the clock moved on) or
    a queued TimeoutError (a deadline) reaches the program."""
    queue = list(answers)
    log: list[str] = []
    program = channel._connection(wait_for_ready)
    error: Optional[BaseException] = None
    while True:
        try:
            command = program.send(None) if error is None else program.throw(error)
        except StopIteration as stop:
            channel._perform_commands()
            return stop.value, log
        error = None
        assert command == (WAIT_FOR_PICKER,)
        channel._perform_commands()
        while True:
            commands, channel.performed = channel.performed, []
            channel.timers += [c for c in commands if c[0] == TIMER]
            connects = [c for c in commands if c[0] == CONNECT_TO]
            if not connects:
                break
            for _, subchannel in connects:
                log.append("CONNECT")
                answer = queue.pop(0)
                if isinstance(answer, Exception):
                    channel._connect_failed(subchannel, answer)
                else:
                    channel._connected(subchannel, answer)
        if channel._balancer.state is READY:
            continue
        if queue and isinstance(queue[0], TimeoutError):
            log.append("PAUSE")
            error = queue.pop(0)
            continue
        if channel.timers and wait_for_ready:  # (a fail-fast call fails on the next pick)
            log.append("PAUSE")
            channel.timers.sort(key=lambda c: c[1])
            channel._balance(channel._balancer.timer_fired, channel.timers.pop(0)[2])


def test_a_usable_connection_is_reused_and_one_after_goaway_is_retired() -> None:
    channel = FakeChannel("127.0.0.1:1", keepalive_time=10.0)
    first = FakeConnection()
    assert connection(channel, False, first) == (first, ["CONNECT"])
    assert channel._conn is first  # the hot path needs no program
    assert connection(channel, False) == (first, [])
    first.is_usable = False
    first.goaway_error_code, first.goaway_debug_data = ENHANCE_YOUR_CALM, b"too_many_pings"
    second = FakeConnection()
    assert connection(channel, False, second) == (second, ["CONNECT"])
    assert first.closed_when_idle  # its in-flight calls may finish
    assert channel._connection_options.keepalive_time == 20.0  # told we ping too much


def test_while_backing_off_fail_fast_gets_the_last_failure_and_wait_for_ready_waits() -> None:
    channel = FakeChannel("127.0.0.1:1")
    with pytest.raises(rpc.RpcError) as info:
        connection(channel, False, OSError("refused"))
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE and "refused" in info.value.details()
    assert channel.get_state() is TRANSIENT_FAILURE
    with pytest.raises(rpc.RpcError):  # backing off: no new attempt for a fail-fast call
        connection(channel, False)
    conn = FakeConnection()
    assert connection(channel, True, conn) == (conn, ["PAUSE", "CONNECT"])
    assert channel.get_state() is READY


def test_a_deadline_while_waiting_is_deadline_exceeded() -> None:
    channel = FakeChannel("127.0.0.1:1")
    with pytest.raises(rpc.RpcError):
        connection(channel, False, OSError("refused"))
    with pytest.raises(rpc.RpcError) as info:
        connection(channel, True, TimeoutError())
    assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED


def test_a_closed_channel_gives_cancelled() -> None:
    channel = FakeChannel("127.0.0.1:1")
    channel._balance(channel._balancer.shutdown)
    assert channel.get_state() is rpc.ChannelConnectivity.SHUTDOWN
    with pytest.raises(rpc.RpcError) as info:
        connection(channel, True)
    assert info.value.code() == rpc.StatusCode.CANCELLED


def test_pick_first_tries_each_address_in_order_and_keeps_the_first_that_connects() -> None:
    channel = FakeChannel("ipv4:10.0.0.1:1,10.0.0.2:1,10.0.0.3:1")
    conn = FakeConnection()
    got = connection(channel, False, OSError("refused"), conn)
    assert got == (conn, ["CONNECT", "CONNECT"])
    states = [sc.state for sc in channel._balancer.subchannels]
    assert states == [IDLE, READY, IDLE]  # the others are left alone


def test_pick_first_goes_idle_when_its_connection_is_lost_and_reconnects_on_the_next_call() -> None:
    channel = FakeChannel("ipv4:10.0.0.1:1,10.0.0.2:1")
    first = FakeConnection()
    connection(channel, False, first)
    sc = channel._balancer.subchannels[0]
    channel._connection_closed(sc, first)
    assert channel.get_state() is IDLE and channel._conn is None
    second = FakeConnection()
    assert connection(channel, False, second) == (second, ["CONNECT"])


def test_pick_first_every_address_failing_is_transient_failure_with_the_last_error() -> None:
    channel = FakeChannel("ipv4:10.0.0.1:1,10.0.0.2:2")
    with pytest.raises(rpc.RpcError) as info:
        connection(channel, False, OSError("refused one"), OSError("refused two"))
    assert "10.0.0.2:2" in info.value.details() and "refused two" in info.value.details()
    assert channel.get_state() is TRANSIENT_FAILURE
    # Each address is retried after its own backoff.
    assert sorted(key[1].address.host for _, _, key in channel.timers) == [
        "10.0.0.1",
        "10.0.0.2",
    ]


def test_round_robin_connects_every_address_and_rotates_over_the_ready_ones() -> None:
    channel = FakeChannel("ipv4:10.0.0.1:1,10.0.0.2:1,10.0.0.3:1", lb_policy_name="round_robin")
    conns = [FakeConnection() for _ in range(3)]
    _, log = connection(channel, False, *conns)
    assert log == ["CONNECT"] * 3 and channel._conn is None  # no fast path: every call picks
    picks = [connection(channel, False)[0] for _ in range(6)]
    assert [conns.index(c) for c in picks] == [1, 2, 0, 1, 2, 0]
    # One of them lost: round robin reconnects it at once, the others take the calls.
    conns[1].is_usable = False
    picks = [connection(channel, False)[0] for _ in range(4)]
    assert conns[1] not in picks
    assert [c for c in channel.performed if c[0] == CONNECT_TO]


def test_round_robin_health_only_serving_backends_are_ready() -> None:
    channel = FakeChannel(
        "ipv4:10.0.0.1:1,10.0.0.2:1", lb_policy_name="round_robin", _health_check_service_name="s"
    )
    balancer = channel._balancer
    channel.get_state(try_to_connect=True)
    conns = [FakeConnection(), FakeConnection()]
    for (_, sc), conn in zip(channel.performed, conns):
        channel._connected(sc, conn)
    watches = [c for c in channel.performed if c[0] == "watch_health"]
    assert len(watches) == 2 and channel.get_state() is CONNECTING  # until SERVING
    one, two = balancer.subchannels
    serving, not_serving = b"\x08\x01", b"\x08\x02"
    channel._health_answer(one, conns[0], serving)
    channel._health_answer(two, conns[1], not_serving)
    assert channel.get_state() is READY
    assert {connection(channel, False)[0] for _ in range(4)} == {conns[0]}
    channel._health_answer(one, conns[0], not_serving)
    assert channel.get_state() is TRANSIENT_FAILURE
    with pytest.raises(rpc.RpcError) as info:
        connection(channel, False)
    assert "not serving" in info.value.details()
    # A server without the health service: health checking off for it (gRFC A17).
    channel._health_ended(two, conns[1], rpc.StatusCode.UNIMPLEMENTED, "no such service")
    assert channel.get_state() is READY


def test_re_resolution_is_at_most_once_per_minimum_interval() -> None:
    balancer = Balancer("dns:///example.test:1", None, min_resolution_interval=30.0)
    balancer.exit_idle()
    assert balancer.take_commands() == [(RESOLVE,)]
    balancer.resolved([Address(host="10.0.0.1", port=1)])
    balancer.take_commands()
    balancer.request_resolution()
    (command,) = balancer.take_commands()
    assert command[0] == TIMER and command[2] == ("resolve",)  # not now: when 30 s have passed
    balancer.request_resolution()
    assert balancer.take_commands() == []  # already scheduled


def test_a_resolution_failure_without_addresses_fails_fast_calls_with_the_reason() -> None:
    balancer = Balancer("dns:///nowhere.test:1", None)
    balancer.exit_idle()
    balancer.take_commands()
    balancer.resolve_failed(OSError("Name or service not known"))
    assert balancer.state is TRANSIENT_FAILURE
    with pytest.raises(rpc.RpcError) as info:
        balancer.pick(False)
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE
    assert "name resolution failed for dns:///nowhere.test:1" in info.value.details()
    assert balancer.pick(True) is None  # wait-for-ready waits


@pytest.mark.parametrize(
    ("target", "scheme", "addresses", "authority"),
    [
        ("localhost:50051", "dns", None, "localhost:50051"),
        ("dns:///example.com", "dns", None, "example.com"),
        ("127.0.0.1:5", "dns", [("127.0.0.1", 5)], "127.0.0.1:5"),
        ("[::1]:5", "dns", [("::1", 5)], "[::1]:5"),
        ("ipv4:10.0.0.1:5,10.0.0.2:6", "ipv4", [("10.0.0.1", 5), ("10.0.0.2", 6)], None),
        ("ipv6:[::1]:5,[fe80::1]:6", "ipv6", [("::1", 5), ("fe80::1", 6)], None),
        ("unix:/tmp/a.sock", "unix", "/tmp/a.sock", "tmp%2Fa.sock"),
        ("unix:///tmp/a.sock", "unix", "/tmp/a.sock", "tmp%2Fa.sock"),
        ("unix:rel.sock", "unix", "rel.sock", "rel.sock"),
        ("unix-abstract:name", "unix-abstract", "\0name", "name"),
    ],
)
def test_target_forms(target: str, scheme: str, addresses: Any, authority: Optional[str]) -> None:
    parsed, _ = parse_target(target)
    assert parsed.scheme == scheme
    channel = FakeChannel(target)
    got = channel._fixed_addresses()
    if isinstance(addresses, str):
        assert got == [Address(path=addresses)]
    elif addresses is None:
        assert got is None  # a name: resolved when the channel connects
    else:
        assert got == [Address(host=h, port=p) for h, p in addresses]
    # The :authority grpcio sends for the target (the endpoint as written; for unix, the
    # path percent-encoded).
    assert channel.settings.authority == (authority or parsed.endpoint)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("", "empty target"),
        ("ipv4:", "empty address list"),
        ("ipv4:127.0.0.1", "no port"),
        ("ipv4:1.2.3.4:99999", "bad port"),
        ("ipv4:example.com:1", "not an IPv4 address"),
        ("ipv6:::1:5", "[addr]:port"),
        ("ipv6:[1.2.3.4]:5", "not an IPv6 address"),
        ("unix:", "empty unix socket path"),
        ("unix://host/tmp/x", "names a host"),
        ("xds:///service", "unknown scheme 'xds'"),
        ("dns://8.8.8.8/example.com:443", "names a DNS server"),
        ("dns:///:443", "empty host name"),
        ("localhost:http", "bad port"),
    ],
)
def test_a_target_that_cannot_work_is_a_clear_error(target: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        rpc.Channel(target)
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        rpc.sync.Channel(target)


def test_an_unknown_policy_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown load balancing policy 'ring_hash'"):
        rpc.Channel("127.0.0.1:1", options=[("grpc.lb_policy_name", "ring_hash")])


def test_health_messages() -> None:
    assert watch_request("") == b""
    assert watch_request("a.B") == b"\x0a\x03a.B"
    assert is_serving(b"\x08\x01") and not is_serving(b"\x08\x02") and not is_serving(b"")
    with pytest.raises(ValueError):
        is_serving(b"\x08")


def test_the_service_config_chooses_the_policy_and_the_health_service() -> None:
    from rpc.client.service_config import parse_service_config

    config = parse_service_config(
        '{"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": "s"}}'
    )
    # It wins over the lb_policy_name option, as in grpcio.
    assert ChannelCore._balancing("pick_first", None, config) == ("round_robin", "s")
    assert ChannelCore._balancing("round_robin", None, parse_service_config("{}")) == (
        "round_robin",
        None,
    )
    assert ChannelCore._balancing(None, None) == ("pick_first", None)
