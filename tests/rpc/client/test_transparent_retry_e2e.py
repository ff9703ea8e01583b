"""Transparent retries on real sockets: a stream the server never processed is sent again,
whatever the retry policy (gRFC A6), on both APIs, for a unary call and a client stream.

The server is a raw h2 one so that it can do what gRPC servers do rarely: refuse the first
stream (RST_STREAM REFUSED_STREAM) or GOAWAY it (last-stream-id 0) after reading the request.
It answers every other stream with the number of request messages it received.
"""

from __future__ import annotations

import threading
from typing import Any

import h2.connection
import pytest

import rpc
from codec.http2_errors import REFUSED_STREAM
from tests.rpc.helpers import run
from tests.scripted_h2_server import ScriptedH2Server


class RawServer(ScriptedH2Server):
    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode  # "refuse" or "goaway": what happens to the very first stream
        self.first_done = False
        self.requests: list[int] = []  # messages received by each stream answered
        self.lock = threading.Lock()

    def answer(self, conn: h2.connection.H2Connection, stream_id: int, body: bytes) -> bool:
        with self.lock:
            first, self.first_done = not self.first_done, True
        if first and self.mode == "refuse":
            conn.reset_stream(stream_id, REFUSED_STREAM)
            return False
        if first and self.mode == "goaway":
            conn.close_connection(last_stream_id=0)
            return True
        count = 0
        while body:
            size = int.from_bytes(body[1:5], "big")
            body = body[5 + size :]
            count += 1
        self.requests.append(count)
        reply = str(count).encode()
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(stream_id, b"\x00" + len(reply).to_bytes(4, "big") + reply)
        conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
        return False


def call(api: str, target: str, method: str, request: Any) -> Any:
    if api == "async":

        async def main() -> Any:
            async with rpc.Channel(target) as channel:
                if method == "unary":
                    return await channel.unary_unary("/t.T/M")(request, timeout=10)
                return await channel.stream_unary("/t.T/M")(iter(request), timeout=10)

        return run(main())
    with rpc.sync.Channel(target) as channel:
        if method == "unary":
            if api == "future":
                return channel.unary_unary("/t.T/M").future(request, timeout=10).result(10)
            return channel.unary_unary("/t.T/M")(request, timeout=10)
        if api == "future":
            future = channel.stream_unary("/t.T/M").future(iter(request), timeout=10)
            return future.result(10)
        return channel.stream_unary("/t.T/M")(iter(request), timeout=10)


@pytest.mark.parametrize("api", ["async", "sync", "future"])
@pytest.mark.parametrize("mode", ["refuse", "goaway"])
@pytest.mark.parametrize("method", ["unary", "client_stream"])
def test_a_stream_the_server_never_processed_is_sent_again(
    api: str, mode: str, method: str
) -> None:
    with RawServer(mode) as server:
        request: Any = b"ping" if method == "unary" else [b"a", b"b", b"c"]
        answer = call(api, f"127.0.0.1:{server.port}", method, request)
        expected = 1 if method == "unary" else 3
        assert answer == str(expected).encode()
        assert server.requests == [expected]  # the second stream had every request
