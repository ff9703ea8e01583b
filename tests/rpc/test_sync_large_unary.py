"""A blocking server's unary response larger than the client's window goes out without a stall.

The handler thread holds a unary response back ("corked") so that headers, message and trailers
leave in one send. A response above the stream window (4 MiB) made that thread wait for window
while still holding back the bytes the client needed before it could give any: the response sat
until the connection's reader thread next woke on its own (its idle poll, 1 s), for every window's
worth. The reader's idle poll is made very long here, so the stall would be a deadline.
"""

from __future__ import annotations

import pytest

import rpc
import transport.blocking

BIG = 9 * 1024 * 1024  # above the 4 MiB stream window, twice


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
