"""Bad input never hangs or crashes the server, and other calls keep working.

Each case sends something a well-behaved client would not, with a raw HTTP/2 client, then checks
the answer (a status, an HTTP error or a reset) and that a normal call still succeeds.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterator

import h2.events
import h2rpc_test_pb2 as pb
import pytest

import rpc
from tests.interop.echo_servicer import SERVICE, make_server
from tests.rpc.helpers import wait_until
from tests.rpc.raw_h2 import GRPC_REQUEST, RawClient, headers_of
from tests.rpc.server_thread import ServerThread


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    thread = ServerThread(make_server)
    with thread:
        yield thread


@pytest.fixture
def raw(server: ServerThread) -> Iterator[RawClient]:
    client = RawClient(server.port)
    yield client
    client.close()


def normal_call_succeeds(target: str) -> None:
    async def call() -> None:
        async with rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            reply = await stub.Unary(pb.EchoRequest(payload=b"still alive"), timeout=5)
            assert reply.payload == b"still alive"

    asyncio.run(call())


def framed(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def test_truncated_message_before_end_stream_is_internal(raw: RawClient, server: ServerThread):
    request = pb.EchoRequest(payload=b"x" * 100).SerializeToString()
    stream_id = raw.send_request(body=framed(request)[:-10])
    answer = headers_of(raw.wait_stream_done(stream_id))
    assert answer["grpc-status"] == str(int(rpc.StatusCode.INTERNAL))
    normal_call_succeeds(server.target)


def test_truncated_prefix_before_end_stream_is_internal(raw: RawClient, server: ServerThread):
    stream_id = raw.send_request(body=b"\x00\x00\x00")
    answer = headers_of(raw.wait_stream_done(stream_id))
    assert answer["grpc-status"] == str(int(rpc.StatusCode.INTERNAL))
    normal_call_succeeds(server.target)


def test_oversized_prefix_is_resource_exhausted_without_sending_the_body(
    raw: RawClient, server: ServerThread
):
    # Declares 100 MiB (above the 4 MiB default) but sends only the prefix and keeps the
    # stream open: the server must answer from the prefix alone.
    stream_id = raw.send_request(body=struct.pack(">BI", 0, 100 * 1024 * 1024), end=False)
    answer = headers_of(raw.wait_stream_done(stream_id))
    assert answer["grpc-status"] == str(int(rpc.StatusCode.RESOURCE_EXHAUSTED))
    normal_call_succeeds(server.target)


def test_wrong_content_type_gets_http_415(raw: RawClient, server: ServerThread):
    headers = [(k, "text/plain" if k == "content-type" else v) for k, v in GRPC_REQUEST]
    stream_id = raw.send_request(headers, body=b"hello")
    answer = headers_of(raw.wait_stream_done(stream_id))
    assert answer[":status"] == "415"
    normal_call_succeeds(server.target)


def test_plain_http_get_is_rejected_not_hung(raw: RawClient, server: ServerThread):
    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "localhost"),
    ]
    stream_id = raw.send_request(headers)
    answer = headers_of(raw.wait_stream_done(stream_id))
    assert answer[":status"] != "200" or answer.get("grpc-status", "0") != "0"
    normal_call_succeeds(server.target)


def test_unknown_method_is_unimplemented_trailers_only(raw: RawClient, server: ServerThread):
    headers = [(k, "/h2rpc.test.EchoTest/Nope" if k == ":path" else v) for k, v in GRPC_REQUEST]
    stream_id = raw.send_request(headers, body=framed(b""))
    events = raw.wait_stream_done(stream_id)
    responses = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert len(responses) == 1  # Trailers-Only: one HEADERS frame with END_STREAM
    answer = dict(responses[0].headers)
    assert answer["grpc-status"] == str(int(rpc.StatusCode.UNIMPLEMENTED))
    assert "Nope" in answer["grpc-message"]


def test_invalid_protobuf_is_internal(raw: RawClient, server: ServerThread):
    stream_id = raw.send_request(body=framed(b"\xff\xff\xff"))
    answer = headers_of(raw.wait_stream_done(stream_id))
    assert answer["grpc-status"] == str(int(rpc.StatusCode.INTERNAL))


def test_client_vanishing_mid_stream_frees_the_call(server: ServerThread):
    raw = RawClient(server.port)
    bidi = [(k, "/h2rpc.test.EchoTest/Bidi" if k == ":path" else v) for k, v in GRPC_REQUEST]
    stream_id = raw.send_request(bidi, body=framed(b"\x0a\x01a"), end=False)
    # Wait for the echo, so the handler is surely running, then drop the socket.
    deadline = time.monotonic() + 5
    while not any(isinstance(e, h2.events.DataReceived) for e in raw.events):
        assert time.monotonic() < deadline, "no echo"
        data = raw.sock.recv(65536)
        raw.events += raw.conn.receive_data(data)
    raw.sock.close()
    wait_until(lambda: server.call(lambda: len(server.server._calls)) == 0)
    assert stream_id == 1
    normal_call_succeeds(server.target)


def test_client_reset_cancels_the_handler(server: ServerThread):
    raw = RawClient(server.port)
    bidi = [(k, "/h2rpc.test.EchoTest/Bidi" if k == ":path" else v) for k, v in GRPC_REQUEST]
    stream_id = raw.send_request(bidi, end=False)
    wait_until(lambda: server.call(lambda: len(server.server._calls)) == 1)  # the handler runs
    raw.conn.reset_stream(stream_id, 8)
    raw.flush()
    wait_until(lambda: server.call(lambda: len(server.server._calls)) == 0)
    raw.close()
