"""max_connection_idle, max_connection_age and max_connection_age_grace, frame by frame, on the
in-memory session pair and a clock moved by hand (no sockets, no sleeps)."""

from __future__ import annotations

import struct

import pytest

from tests.transport.pair import REQUEST, RESPONSE, TRAILERS
from tests.transport.session_pair import ACK, Frame, SessionPair
from transport import ConnectionClosedError, ConnectionOptions
from transport.lifetime import ConnectionLifetime, LifetimeAction

pytestmark = pytest.mark.time_limit(10)

MAX_STREAM_ID = 2**31 - 1


def goaway(frame: Frame) -> tuple[int, int, bytes]:
    """(last-stream-id, error code, debug data) of a GOAWAY frame."""
    last, code = struct.unpack(">II", frame.payload[:8])
    return last & MAX_STREAM_ID, code, frame.payload[8:]


def serve_one(pair: SessionPair) -> None:
    """Answer the request that came in, and pump."""
    (handler,) = pair.take_requests()
    handler.send_headers(RESPONSE)
    handler.send_trailers(TRAILERS)
    pair.pump()


# ------------------------------------------------------------------ the policy alone


def test_the_age_is_jittered_by_ten_percent_each_way() -> None:
    options = ConnectionOptions(max_connection_age=100)
    bounds = []
    for pick in (min, max):
        lifetime = ConnectionLifetime(options, 0.0, uniform=lambda a, b, pick=pick: pick(a, b))
        bounds.append(lifetime.deadline())
    assert bounds == [pytest.approx(90.0), pytest.approx(110.0)]


def test_the_policy_drains_on_age_then_closes_after_the_grace() -> None:
    options = ConnectionOptions(max_connection_age=10, max_connection_age_grace=5)
    lifetime = ConnectionLifetime(options, 0.0, uniform=lambda a, b: 1.0)
    lifetime.busy()
    assert lifetime.on_timer(9.9) is LifetimeAction.NOTHING
    assert lifetime.on_timer(10.0) is LifetimeAction.DRAIN_AGE
    assert lifetime.deadline() == 15.0
    assert lifetime.on_timer(14.9) is LifetimeAction.NOTHING
    assert lifetime.on_timer(15.0) is LifetimeAction.CLOSE
    assert lifetime.deadline() is None


def test_the_age_clock_runs_on_after_an_idle_drain() -> None:
    options = ConnectionOptions(
        max_connection_idle=1, max_connection_age=10, max_connection_age_grace=0
    )
    lifetime = ConnectionLifetime(options, 0.0, uniform=lambda a, b: 1.0)
    assert lifetime.on_timer(1.0) is LifetimeAction.DRAIN_IDLE
    lifetime.busy()  # a call that was on its way before the client read the GOAWAY
    assert lifetime.deadline() == 10.0
    assert lifetime.on_timer(10.0) is LifetimeAction.DRAIN_AGE
    assert lifetime.on_timer(10.0) is LifetimeAction.CLOSE


def test_bad_values_are_refused() -> None:
    for bad in (
        {"max_connection_idle": 0},
        {"max_connection_age": -1},
        {"max_connection_age_grace": -1},
    ):
        with pytest.raises(ValueError):
            ConnectionOptions(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ on the wire


def test_an_idle_connection_is_drained_with_two_goaways_then_closed() -> None:
    pair = SessionPair(server_options=ConnectionOptions(max_connection_idle=30))
    call = pair.open(REQUEST, end_stream=True)
    pair.advance(100)  # a call is open: never idle
    assert pair.frames("server", "GOAWAY") == []
    serve_one(pair)
    assert call.trailers == TRAILERS
    pair.advance(29.9)
    assert pair.frames("server", "GOAWAY") == []
    pair.advance(0.1)
    first, final = pair.frames("server", "GOAWAY")
    # The two-step shutdown: 2^31-1 and a PING first, the last stream really seen once the
    # client's ACK proves it read the first one; both NO_ERROR, both saying why.
    assert goaway(first) == (MAX_STREAM_ID, 0, b"max_idle")
    assert goaway(final) == (1, 0, b"max_idle")
    assert [f.flags & ACK for f in pair.frames("client", "PING")] == [ACK]
    assert pair.client.goaway_received and not pair.client.is_usable
    assert pair.link_closed


def test_a_call_sent_before_the_client_read_the_idle_goaway_is_served() -> None:
    pair = SessionPair(server_options=ConnectionOptions(max_connection_idle=5))
    pair.hold("server")  # the client does not see the first GOAWAY yet
    pair.advance(5)
    assert len(pair.frames("server", "GOAWAY")) == 1
    call = pair.open(REQUEST, end_stream=True)  # crosses the GOAWAY on the wire
    pair.release("server")
    assert not pair.link_closed  # the call is being served: no close under it
    serve_one(pair)
    assert call.trailers == TRAILERS and call.error is None
    _, final = pair.frames("server", "GOAWAY")
    assert goaway(final) == (1, 0, b"max_idle")
    assert pair.link_closed  # and closed as soon as it was done


def test_the_age_goaway_comes_within_ten_percent_of_max_connection_age() -> None:
    pair = SessionPair(server_options=ConnectionOptions(max_connection_age=100))
    call = pair.open(REQUEST, end_stream=True)
    pair.advance(89.9)
    assert pair.frames("server", "GOAWAY") == []
    pair.advance(20.2)
    first, final = pair.frames("server", "GOAWAY")
    assert goaway(first) == (MAX_STREAM_ID, 0, b"max_age")
    assert goaway(final) == (1, 0, b"max_age")
    assert not pair.client.is_usable  # the client's next call goes to a new connection
    # No grace set: the call in flight may run as long as it likes, then the connection goes.
    pair.advance(1000)
    assert not pair.link_closed
    serve_one(pair)
    assert call.trailers == TRAILERS
    assert pair.link_closed


def test_calls_still_running_after_the_grace_are_cancelled_and_the_connection_closed() -> None:
    options = ConnectionOptions(max_connection_age=10, max_connection_age_grace=3)
    pair = SessionPair(server_options=options)
    call = pair.open(REQUEST, end_stream=True)
    (handler,) = pair.take_requests()
    cancelled: list[bool] = []
    handler.on_failed = lambda: cancelled.append(True)  # what a server call's shell registers
    pair.advance(11)  # the GOAWAYs are out (at 9 .. 11 s, with the jitter)
    assert len(pair.frames("server", "GOAWAY")) == 2
    pair.advance(0.9)  # the grace ends 12 .. 14 s after the connection began
    assert not pair.link_closed and not cancelled
    pair.advance(2.2)
    assert pair.link_closed
    assert cancelled == [True]  # the handler's call is cancelled
    assert isinstance(pair.server.error, ConnectionClosedError)
    assert "max_connection_age_grace" in str(pair.server.error)
    assert call.error is not None and call.trailers is None  # the client sees it fail


def test_a_finished_call_before_the_age_leaves_nothing_open() -> None:
    options = ConnectionOptions(max_connection_age=10, max_connection_age_grace=30)
    pair = SessionPair(server_options=options)
    call = pair.open(REQUEST, end_stream=True)
    serve_one(pair)
    assert call.trailers == TRAILERS
    pair.advance(11)
    assert len(pair.frames("server", "GOAWAY")) == 2
    assert pair.link_closed  # idle once drained: closed at once, not after the grace


def test_a_client_that_never_answers_the_ping_still_gets_the_final_goaway() -> None:
    options = ConnectionOptions(max_connection_idle=5, shutdown_ping_timeout=1)
    pair = SessionPair(server_options=options)
    pair.hold("client")  # the client's ACK never arrives
    pair.advance(5)
    assert len(pair.frames("server", "GOAWAY")) == 1
    pair.advance(1)
    _, final = pair.frames("server", "GOAWAY")
    assert goaway(final) == (0, 0, b"max_idle")
    assert pair.server_end.closed_by_us
