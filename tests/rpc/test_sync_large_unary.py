"""A blocking server's unary response larger than the client's window goes out without a stall.

The handler thread holds a unary response back ("corked") so that headers, message and trailers
leave in one send. A response above the stream window (4 MiB) made that thread wait for window
while still holding back the bytes the client needed before it could give any: the response sat
until the connection's reader thread next woke on its own (its idle poll, 1 s), for every window's
worth. The reader's idle poll is made very long here, so the stall would be a deadline.

The socket-free tests come first: the session-level shape of the stall, then the blocking driver's
own send path (a ``BlockingConnection`` on an in-memory socket, no reader thread).
"""

from __future__ import annotations

import pytest

import rpc
import transport.blocking
from tests.transport.pair import REQUEST, RESPONSE, TRAILERS
from tests.transport.session_pair import SessionPair

BIG = 9 * 1024 * 1024  # above the 4 MiB stream window, twice


def test_a_sender_held_back_while_it_waits_for_window_stalls_the_stream() -> None:
    """Why a sender must write what it queued before it waits for window: nobody else will."""
    pair = SessionPair()
    pair.client_driver.auto_read = True  # a client that reads all it gets, handing credit back
    call = pair.open(REQUEST, end_stream=True)
    (handler,) = pair.take_requests()
    pair.server_driver.corked = True  # the server's writes are held back
    handler.send_headers(RESPONSE)
    handler.send_data(b"y" * BIG)
    assert handler.write_blocked  # its sender would wait for window now...
    pair.pump()
    assert call.response_head() is None  # ... for a client that has nothing to answer
    assert handler.write_blocked
    pair.server_driver.corked = False  # the fix: write before waiting
    pair.pump()
    assert not handler.write_blocked
    handler.send_trailers(TRAILERS)
    pair.pump()
    assert len(call.received) == BIG and call.trailers == TRAILERS


def test_a_corked_send_above_the_window_writes_before_it_waits() -> None:
    # The client answers inside every write (instant link): its WINDOW_UPDATEs are in before
    # sendall returns, so a sender that writes what it holds never needs to wait. timeout=0
    # makes any wait a TimeoutError: the bytes the client needed were held back.
    pair = SessionPair(blocking_server=True, instant=True)
    pair.client_driver.auto_read = True
    call = pair.open(REQUEST, end_stream=True)
    (handler,) = pair.take_requests()
    conn = pair.server_end.conn
    conn.cork()  # as rpc.sync sends a unary response: headers, message, trailers in one write
    handler.send_headers(RESPONSE)
    handler.send_data(b"y" * BIG, timeout=0)
    handler.send_trailers(TRAILERS)
    conn.uncork()
    pair.pump()
    assert len(call.received) == BIG and call.trailers == TRAILERS


def big_reply(request: bytes, context: rpc.sync.ServicerContext) -> bytes:
    return b"y" * BIG


def test_a_response_above_the_window_is_not_held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport.blocking, "_IDLE_POLL", 60.0)
    handler = rpc.unary_unary_rpc_method_handler(big_reply)
    server = rpc.sync.Server(
        [rpc.method_handlers_generic_handler("b.B", {"Big": handler})],
        max_send_message_length=16 * 1024 * 1024,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        with rpc.sync.Channel(target, max_receive_message_length=16 * 1024 * 1024) as channel:
            call = channel.unary_unary("/b.B/Big")
            for _ in range(3):
                assert len(call(b"", timeout=5)) == BIG
    finally:
        server.stop(0)
