"""A proxy's own answer (HTTP 502, no gRPC response headers: the server never answered) leaves a
call uncommitted (gRFC A6 commits on the *server's* response headers): a retry policy on
UNAVAILABLE sends it again, as grpcio does. Without a policy the call fails ``UNAVAILABLE``.

The server is a raw h2 one that answers its first stream as nginx does when its backend died
(``:status 502``, an HTML body) and every later stream as a gRPC server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import h2.connection
import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc
from tests.rpc.helpers import run
from tests.scripted_h2_server import ScriptedH2Server

pytestmark = pytest.mark.time_limit(30)

PATH = "/t.Proxied/Echo"
RETRY = {
    "methodConfig": [
        {
            "name": [{"service": "t.Proxied"}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


class BadGatewayFirst(ScriptedH2Server):
    """Answers the first stream with a proxy's 502, the others with the request echoed."""

    def __init__(self) -> None:
        super().__init__()
        self.streams = 0

    def answer(self, conn: h2.connection.H2Connection, stream_id: int, body: bytes) -> bool:
        self.streams += 1
        if self.streams == 1:
            conn.send_headers(stream_id, [(":status", "502"), ("content-type", "text/html")])
            conn.send_data(stream_id, b"<html>502 Bad Gateway</html>", end_stream=True)
            return False
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(stream_id, body)  # the request's framed message, echoed
        conn.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
        return False


@pytest.fixture
def server() -> Iterator[BadGatewayFirst]:
    with BadGatewayFirst() as backend:
        yield backend


def call_async(target: str, **options: Any) -> bytes:
    async def go() -> bytes:
        async with rpc.Channel(target, **options) as channel:
            return await channel.unary_unary(PATH)(b"hello", timeout=10)  # type: ignore[no-any-return]

    return run(go())  # type: ignore[no-any-return]


def call_sync(target: str, **options: Any) -> bytes:
    with rpc.sync.Channel(target, **options) as channel:
        return channel.unary_unary(PATH)(b"hello", timeout=10)  # type: ignore[no-any-return]


CALLERS = {"async": call_async, "sync": call_sync}


@pytest.mark.parametrize("client", sorted(CALLERS))
def test_a_proxy_502_is_retried_under_a_policy_on_unavailable(
    server: BadGatewayFirst, client: str
) -> None:
    target = f"127.0.0.1:{server.port}"
    assert CALLERS[client](target, service_config=RETRY) == b"hello"
    assert server.streams == 2  # the 502, then the answer


@pytest.mark.parametrize("client", sorted(CALLERS))
def test_without_a_policy_a_proxy_502_is_unavailable(server: BadGatewayFirst, client: str) -> None:
    with pytest.raises(rpc.RpcError) as caught:
        CALLERS[client](f"127.0.0.1:{server.port}")
    assert caught.value.code() == rpc.StatusCode.UNAVAILABLE
    assert "HTTP status 502" in caught.value.details()
    assert server.streams == 1


@pytest.mark.skipif(not GRPCIO_AVAILABLE, reason=GRPCIO_UNAVAILABLE_REASON)
def test_grpcio_retries_the_same_502(server: BadGatewayFirst) -> None:
    import grpc

    options = [("grpc.service_config", json.dumps(RETRY))]
    with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=options) as channel:
        assert channel.unary_unary(PATH)(b"hello", timeout=10) == b"hello"
    assert server.streams == 2
