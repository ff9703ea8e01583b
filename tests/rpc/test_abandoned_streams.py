"""A caller that stops reading a finished response stream leaves the connection usable.

The server ends each stream (3 x 1 MiB, within the 4 MiB stream window) before the client has
read past the first message; the client then drops the call. Those unread bytes used to go on
counting against the 16 MiB connection window forever, so after a few such calls the server
could not send another byte on the connection: a full stream then ran into its deadline.
The same decision is pinned at the session level first, over the in-memory link (no sockets).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import rpc
from tests.rpc.helpers import eventually, generic_server, run, serving, wait_until
from tests.rpc.server_thread import ServerThread
from tests.transport.pair import REQUEST, RESPONSE, TRAILERS
from tests.transport.session_pair import SessionPair

MESSAGE = b"x" * (1 << 20)
COUNT = 3
ABANDONED = 12  # 12 x 2 MiB unread > the 16 MiB connection window


async def three_mib(request: bytes, context: rpc.ServicerContext) -> AsyncIterator[bytes]:
    for _ in range(COUNT):
        yield MESSAGE


def test_unread_bytes_of_a_finished_stream_go_back_to_the_connection_window() -> None:
    pair = SessionPair()  # 4 MiB stream windows, a 16 MiB connection window
    body = bytes(range(256)) * (2 << 12)  # 2 MiB
    for _ in range(ABANDONED):
        call = pair.open(REQUEST, end_stream=True)
        (handler,) = pair.take_requests()
        handler.send_headers(RESPONSE)
        handler.send_data(body)
        handler.send_trailers(TRAILERS)
        pair.pump()
        # Before the fix the ninth response stalled here: the connection window was full.
        assert call.trailers == TRAILERS, "the server could not finish the response"
        assert call.read()  # the caller reads a first chunk and drops the call
        assert call.unread > 0
    last = pair.open(REQUEST, end_stream=True)
    (handler,) = pair.take_requests()
    handler.send_headers(RESPONSE)
    handler.send_data(body)
    handler.send_trailers(TRAILERS)
    pair.pump()
    assert last.read_available() == body
    assert last.trailers == TRAILERS
    pair.pump()
    # Bytes left in an abandoned stream stay readable; reading them gives no credit twice.
    updates = len(pair.frames("client", "WINDOW_UPDATE"))
    unread = call.unread
    assert call.read_available() == body[-unread:]
    assert not pair.client_driver.flush_requested
    pair.pump()
    assert len(pair.frames("client", "WINDOW_UPDATE")) == updates


def make_server() -> rpc.Server:
    return generic_server({"Three": rpc.unary_stream_rpc_method_handler(three_mib)}, "a.A")


def server_finished(call: Any) -> bool:
    """The whole response stream is in (END_STREAM came): the call's stream is released."""
    stream = call._stream
    return stream is not None and stream.remote_ended


def test_async_client_abandoning_finished_streams() -> None:
    async def main() -> None:
        async with serving(make_server()) as target, rpc.Channel(target) as channel:
            three = channel.unary_stream("/a.A/Three")
            for _ in range(ABANDONED):
                call: Any = three(b"", timeout=10)
                async for message in call:
                    assert message == MESSAGE
                    break
                await eventually(partial(server_finished, call))
                del call
                gc.collect()
            received = [m async for m in three(b"", timeout=3)]
            assert len(received) == COUNT

    run(main(), 60)


def test_blocking_client_abandoning_finished_streams() -> None:
    with ServerThread(make_server) as target, rpc.sync.Channel(target) as channel:
        three = channel.unary_stream("/a.A/Three")
        for _ in range(ABANDONED):
            call: Any = three(b"", timeout=10)
            assert next(iter(call)) == MESSAGE
            wait_until(partial(server_finished, call))
            del call
        assert len(list(three(b"", timeout=3))) == COUNT
