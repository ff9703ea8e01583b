"""Session decisions over the in-memory link, on a clock moved by hand (no sockets, no sleeps)."""

from __future__ import annotations

import pytest

from codec.http2_errors import SETTINGS_TIMEOUT
from tests.transport.pair import REQUEST, RESPONSE, TRAILERS
from tests.transport.session_pair import ACK, SessionPair
from transport import ConnectionClosedError, ConnectionOptions, StreamResetError

pytestmark = pytest.mark.time_limit(10)


def test_a_unary_exchange_at_the_stream_level() -> None:
    pair = SessionPair()
    call = pair.open(REQUEST)
    call.send_data(b"hello", end_stream=True)
    pair.pump()
    (handler,) = pair.take_requests()
    assert handler.request_headers == REQUEST
    assert handler.read_available() == b"hello"
    assert handler.read() == b""  # the client half-closed

    handler.send_headers(RESPONSE)
    handler.send_data(b"world")
    handler.send_trailers(TRAILERS)
    pair.pump()
    assert call.response_head() == RESPONSE
    assert call.read_available() == b"world"
    assert call.trailers == TRAILERS
    # Both ends are done with the stream: forgotten on both sides, the connection idle.
    assert not pair.client.streams and not pair.server.streams
    assert pair.client.is_usable and pair.server.error is None
    # The only open stream ended: the server asked for its write at once.
    assert pair.server_driver.urgent_flushes == 1


def test_a_reader_that_does_not_read_holds_the_sender_at_its_window() -> None:
    small = ConnectionOptions(initial_window_size=65_535, connection_window_size=65_535)
    client = ConnectionOptions(send_buffer_high_water=16 * 1024)
    pair = SessionPair(client, small)
    call = pair.open(REQUEST)
    call.send_data(bytes(200_000), end_stream=True)
    pair.pump()
    (handler,) = pair.take_requests()
    assert handler.unread == 65_535  # one window's worth, the rest waits in the client
    assert call.write_blocked
    received = b""
    while len(received) < 200_000:
        received += handler.read_available()  # reading hands the credit back
        pair.pump()
    assert not call.write_blocked
    assert handler.read() == b""


def test_keepalive_pings_once_the_peer_has_been_silent_for_keepalive_time() -> None:
    pair = SessionPair(ConnectionOptions(keepalive_time=10, keepalive_timeout=5))
    pair.open(REQUEST)  # pings go out only while a call is active
    pair.advance(9.9)
    assert pair.frames("client", "PING") == []
    pair.advance(0.1)
    (ping,) = pair.frames("client", "PING")
    assert [f.flags & ACK for f in pair.frames("server", "PING")] == [ACK]
    assert pair.frames("server", "PING")[0].payload == ping.payload
    # Answered: the watchdog is off and the next ping comes one interval after the answer.
    pair.advance(9.9)
    assert len(pair.frames("client", "PING")) == 1
    pair.advance(0.1)
    assert len(pair.frames("client", "PING")) == 2
    assert pair.client.error is None


def test_an_unanswered_keepalive_ping_fails_the_connection_and_its_calls() -> None:
    pair = SessionPair(ConnectionOptions(keepalive_time=10, keepalive_timeout=5))
    call = pair.open(REQUEST)
    pair.hold("server")  # the server's answers no longer get through
    pair.advance(10)
    assert len(pair.frames("client", "PING")) == 1
    pair.advance(4.9)
    assert pair.client.error is None
    pair.advance(0.1)
    assert isinstance(pair.client.error, ConnectionClosedError)
    assert "keepalive" in str(pair.client.error)
    assert pair.client_driver.aborted and pair.link_closed
    with pytest.raises(ConnectionClosedError):
        call.read()


def test_a_client_that_never_completes_the_handshake_is_cut_off() -> None:
    pair = SessionPair(server_options=ConnectionOptions(handshake_timeout=5), connect=False)
    pair.hold("client")  # a client whose bytes never come: not even the preface
    pair.connect()
    pair.advance(4.9)
    assert pair.server.error is None and not pair.server_driver.closing
    pair.advance(0.1)
    assert pair.server_driver.closing  # a GOAWAY first, saying why (then the close)
    assert "handshake" in str(pair.server.error)
    assert pair.client.goaway_error_code == SETTINGS_TIMEOUT


def test_a_client_that_completed_the_handshake_in_time_stays() -> None:
    pair = SessionPair(server_options=ConnectionOptions(handshake_timeout=5))
    pair.advance(3600)
    assert pair.server.error is None and not pair.link_closed


def test_a_client_pinging_too_often_gets_goaway_too_many_pings() -> None:
    client = ConnectionOptions(keepalive_time=1, keepalive_permit_without_calls=True)
    server = ConnectionOptions(min_ping_interval=300, max_ping_strikes=2)
    pair = SessionPair(client, server)
    pair.advance(3)
    assert len(pair.frames("client", "PING")) == 3  # first, then two strikes: still tolerated
    assert pair.frames("server", "GOAWAY") == []
    pair.advance(1)  # the third strike
    (goaway,) = pair.frames("server", "GOAWAY")
    assert goaway.payload.endswith(b"too_many_pings")
    assert pair.client.goaway_received


def test_a_blocking_end_serves_a_unary_call_without_its_reader_thread() -> None:
    pair = SessionPair(blocking_server=True)
    call = pair.open(REQUEST)
    call.send_data(b"hello", end_stream=True)
    pair.pump()
    (handler,) = pair.take_requests()
    assert handler.read(timeout=0) == b"hello"  # timeout=0: it is there, nothing to wait for
    assert handler.read(timeout=0) == b""
    handler.send_headers(RESPONSE)
    handler.send_data(b"world", timeout=0)
    handler.send_trailers(TRAILERS)
    pair.pump()
    assert call.response_head() == RESPONSE
    assert call.read_available() == b"world"
    assert call.trailers == TRAILERS
    assert not pair.client.streams and not pair.server.streams


def test_a_blocking_end_makes_a_unary_call_without_its_reader_thread() -> None:
    pair = SessionPair(blocking_client=True)
    call = pair.open(REQUEST)
    call.send_data(b"hello", end_stream=True, timeout=0)
    pair.pump()
    (handler,) = pair.take_requests()
    assert handler.read_available() == b"hello"
    handler.send_headers(RESPONSE)
    handler.send_data(b"world")
    handler.send_trailers(TRAILERS)
    pair.pump()
    assert call.receive_response_headers(timeout=0) == RESPONSE
    assert call.read(timeout=0) == b"world"
    assert call.read(timeout=0) == b""
    assert call.trailers == TRAILERS
    assert not pair.client.streams and not pair.server.streams


def test_a_stream_error_raised_again_and_again_keeps_no_traceback() -> None:
    # A reset stream raises its error on every later operation. Each raise is a fresh copy: the
    # kept error gets no traceback, whose frames (a handler's locals: its response generator,
    # the message being sent) it would otherwise keep alive for as long as the stream is kept.
    pair = SessionPair()
    call = pair.open(REQUEST)
    pair.pump()
    (handler,) = pair.take_requests()
    call.reset()
    pair.pump()
    raised = []
    for _ in range(3):
        with pytest.raises(StreamResetError) as info:
            handler.send_data(b"after the reset")
        raised.append(info.value)
    kept = handler.error
    assert isinstance(kept, StreamResetError) and kept.__traceback__ is None
    assert all(error is not kept for error in raised)
    assert len({id(error) for error in raised}) == 3
    assert {(str(e), e.error_code, e.remote) for e in raised} == {
        (str(kept), kept.error_code, kept.remote)
    }
