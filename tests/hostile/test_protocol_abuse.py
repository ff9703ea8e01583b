"""Header abuse, oversized frames, malformed gRPC, protocol violations, slow and idle peers, and
connection churn: each gets its RFC 9113 or gRPC answer within a bounded time, nothing piles up,
and other clients keep being served."""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import time
from collections.abc import Iterator

import h2rpc_test_pb2 as pb
import hpack
import pytest
from hyperframe.frame import DataFrame, HeadersFrame, PingFrame, RstStreamFrame

import rpc
from codec.http2_errors import (
    COMPRESSION_ERROR,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
)
from tests.hostile.attacker import Attacker, grpc_headers, message
from tests.hostile.harness import GoodClient, count_live, serve
from tests.interop.echo_servicer import SERVICE
from tests.rpc.server_thread import ServerThread
from transport import ConnectionOptions
from transport.session import SessionStream

pytestmark = pytest.mark.time_limit(60)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    thread = serve()
    with thread:
        yield thread


def answer_of(
    attacker: Attacker, stream_id: int, timeout: float = 3.0, table_size: int = 4096
) -> dict[str, str]:
    """The response and trailer fields of a stream, or ``{"reset": code}``; fails after
    ``timeout`` without a definite answer."""
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = table_size
    fields: dict[str, str] = {}
    end = time.monotonic() + timeout
    seen = 0
    while True:
        frames = attacker.frames
        for frame in frames[seen:]:
            if isinstance(frame, HeadersFrame):
                block = decoder.decode(frame.data)  # keep the HPACK table in step
                if frame.stream_id == stream_id:
                    fields.update({k.decode() if isinstance(k, bytes) else k: v for k, v in block})
                    if "END_STREAM" in frame.flags:
                        return {
                            k: (v.decode() if isinstance(v, bytes) else v)
                            for k, v in fields.items()
                        }
            elif isinstance(frame, RstStreamFrame) and frame.stream_id == stream_id:
                return {"reset": str(frame.error_code)}
            elif (
                isinstance(frame, DataFrame)
                and frame.stream_id == stream_id
                and ("END_STREAM" in frame.flags)
            ):
                return fields
        seen = len(frames)
        assert time.monotonic() < end, f"stream {stream_id} got no answer: {frames[-5:]}"
        assert not attacker.seen.closed, "the server closed the connection instead"
        attacker.read(0.05)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def goaway_of(attacker: Attacker) -> tuple[int, bytes]:
    attacker.wait_closed()
    goaway = attacker.seen.goaway
    assert goaway is not None, "no GOAWAY before the close"
    return goaway.error_code, goaway.additional_data


def still_serving(target: str) -> None:
    async def call() -> None:
        async with rpc.Channel(target) as channel:
            reply = await rpc.Stub(channel, SERVICE).Unary(pb.EchoRequest(payload=b"ok"), timeout=5)
            assert reply.payload == b"ok"

    asyncio.run(call())


# --- 4. header abuse ----------------------------------------------------------------------


def test_endless_continuation_frames_are_cut_off_before_buffering(server: ServerThread):
    with Attacker(server.port) as attacker:
        block = attacker.encoder.encode(grpc_headers())
        attacker.send(attacker.headers(1, end_headers=False, block=block))
        sent = 0
        filler = b"\x00" * 16_000  # CONTINUATION after CONTINUATION, never END_HEADERS
        for _ in range(1000):
            if not attacker.send(attacker.continuation(1, filler)):
                break
            sent += len(filler)
        code, reason = goaway_of(attacker)
        assert code == ENHANCE_YOUR_CALM and b"header block" in reason
    still_serving(server.target)


def test_oversized_header_list_fails_only_its_stream(server: ServerThread):
    with Attacker(server.port) as attacker:
        big = grpc_headers() + [(f"x-big-{i}", "v" * 1000) for i in range(20)]  # ~21 KB > 16 KiB
        attacker.send(attacker.headers(1, big, end_stream=True))
        assert answer_of(attacker, 1) == {"reset": str(ENHANCE_YOUR_CALM)}
        attacker.send(
            attacker.headers(3) + attacker.data(3, message(b""), end_stream=True)
        )  # the connection is still fine
        assert answer_of(attacker, 3)["grpc-status"] == "0"


def test_client_sees_resource_exhausted_for_metadata_over_the_server_limit(server: ServerThread):
    async def call() -> None:
        async with rpc.Channel(server.target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            with pytest.raises(rpc.RpcError) as info:
                await stub.Unary(pb.EchoRequest(), metadata=[("x-big", "v" * 20_000)], timeout=5)
            assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await stub.Unary(pb.EchoRequest(payload=b"fine"))).payload == b"fine"

    asyncio.run(call())


def test_hpack_table_size_update_beyond_our_setting_is_a_compression_error(server: ServerThread):
    with Attacker(server.port) as attacker:
        # A dynamic table size update to 2**20 (we allow 4096): 0x3f then the varint 2**20 - 31.
        update = bytes([0x3F]) + bytes([0xE1, 0xFF, 0x3F])
        block = update + attacker.encoder.encode(grpc_headers())
        attacker.send(attacker.headers(1, block=block, end_stream=True))
        code, _ = goaway_of(attacker)
        assert code == COMPRESSION_ERROR
    still_serving(server.target)


def test_huge_header_table_size_setting_does_not_grow_our_encoder(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.settings(HEADER_TABLE_SIZE=2**30))
        for i in range(50):
            stream_id = 1 + 2 * i
            attacker.send(
                attacker.headers(stream_id)
                + attacker.data(stream_id, message(b""), end_stream=True)
            )
            assert answer_of(attacker, stream_id, table_size=2**30)["grpc-status"] == "0"

        def table_sizes() -> list[int]:
            connections = server.server._listeners[0].connections
            return [c.session.core._h2.encoder.header_table_size for c in connections]

        assert max(server.call(table_sizes)) <= 16 * 1024


# --- 5. oversized frames and messages ---------------------------------------------------------


def test_frame_above_max_frame_size_is_frame_size_error_without_buffering(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.headers(1))
        # Declares 1 MiB (our SETTINGS_MAX_FRAME_SIZE is 64 KiB) but sends only the header.
        attacker.send(
            attacker.raw(0x0, 0, 1, b"")[:0]
            + (1 << 20).to_bytes(3, "big")
            + b"\x00\x00\x00\x00\x00\x01"
        )
        code, _ = goaway_of(attacker)
        assert code == FRAME_SIZE_ERROR


def test_message_prefix_above_the_receive_limit_is_answered_before_the_body(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(
            attacker.headers(1)
            + attacker.data(1, (0).to_bytes(1, "big") + (100 << 20).to_bytes(4, "big"))
        )
        answer = answer_of(attacker, 1)
        assert answer["grpc-status"] == str(int(rpc.StatusCode.RESOURCE_EXHAUSTED))


# --- 6. malformed gRPC --------------------------------------------------------------------


def without(name: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in grpc_headers() if k != name]


def replaced(name: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == name else v) for k, v in grpc_headers()]


MALFORMED = {
    "missing :path": without(":path"),
    "missing :method": without(":method"),
    "unknown pseudo-header": [*grpc_headers(), (":foo", "bar")],
    "uppercase header name": [*grpc_headers(), ("X-Upper", "v")],
    "wrong content-type": replaced("content-type", "application/json"),
    "missing te": without("te"),
    "bad grpc-timeout": [*grpc_headers(), ("grpc-timeout", "soon")],
    "bad -bin base64": [*grpc_headers(), ("x-echo-blob-bin", "!!not base64!!")],
    "bad path": replaced(":path", "no-slash"),
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_gets_a_definite_answer(headers, server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(
            attacker.headers(1, headers) + attacker.data(1, message(b""), end_stream=True)
        )
        answer = answer_of(attacker, 1)
        assert "reset" in answer or answer.get(":status") != "200" or answer["grpc-status"] != "0"
    still_serving(server.target)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (message(b"\xff\xff\xff"), rpc.StatusCode.INTERNAL),  # invalid protobuf
        (message(b"\x0a\x05hello")[:-2], rpc.StatusCode.INTERNAL),  # truncated before END_STREAM
        (b"\x02" + message(b"")[1:], rpc.StatusCode.INTERNAL),  # invalid compressed flag
    ],
    ids=["invalid protobuf", "truncated message", "bad flag"],
)
def test_malformed_body_gets_a_status(body: bytes, status: rpc.StatusCode, server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.headers(1) + attacker.data(1, body, end_stream=True))
        assert answer_of(attacker, 1)["grpc-status"] == str(int(status))


# --- 7. protocol violations ---------------------------------------------------------------


def test_data_on_stream_zero_is_a_protocol_error(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.raw(0x0, 0, 0, b"hello"))
        assert goaway_of(attacker)[0] == PROTOCOL_ERROR


def test_data_on_an_idle_stream_is_a_protocol_error(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.data(7, b"hello"))
        assert goaway_of(attacker)[0] == PROTOCOL_ERROR


def test_connection_window_overflow_is_a_flow_control_error(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.window_update(0, 2**31 - 1))
        assert goaway_of(attacker)[0] == FLOW_CONTROL_ERROR


def test_stream_window_overflow_resets_the_stream(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.headers(1, grpc_headers("/h2rpc.test.EchoTest/Bidi")))
        attacker.send(attacker.window_update(1, 2**31 - 1))
        answer = answer_of(attacker, 1)
        assert answer == {"reset": str(FLOW_CONTROL_ERROR)}


def test_headers_on_an_even_stream_id_is_a_protocol_error(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.headers(2))
        assert goaway_of(attacker)[0] == PROTOCOL_ERROR


def test_unknown_frame_types_are_ignored(server: ServerThread):
    with Attacker(server.port) as attacker:
        attacker.send(attacker.raw(0x42, 0xFF, 0, b"whatever this is") + attacker.ping(b"stillok!"))
        assert attacker.wait_for(PingFrame).opaque_data == b"stillok!"
        attacker.send(attacker.headers(1) + attacker.data(1, message(b""), end_stream=True))
        assert answer_of(attacker, 1)["grpc-status"] == "0"


# --- 8. slow and idle peers ---------------------------------------------------------------


def still_open_after(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Read each socket until the peer closes it (EOF or reset); those still open at ``timeout``.

    What the server wrote first (its SETTINGS) is read and dropped on the way.
    """
    still_open = set(socks)
    end = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:  # epoll/kqueue: no FD_SETSIZE limit
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while still_open:
            left = end - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if sock.recv(65536):
                        continue
                except BlockingIOError:
                    continue
                except OSError:  # ECONNRESET: closed too, just less politely
                    pass
                selector.unregister(sock)
                still_open.discard(sock)
    return list(still_open)


def test_unfinished_handshakes_and_idle_connections_are_closed_and_others_served():
    options = ConnectionOptions(handshake_timeout=1.0, max_connection_idle=1.0)
    thread = serve(connection_options=options)
    with thread as target, GoodClient(target) as good:
        silent = [socket.create_connection(("127.0.0.1", thread.port)) for _ in range(500)]
        idle = Attacker(thread.port)
        try:
            good.check()  # 500 sockets that never say a word do not get in the way
            # Each is closed by the server (handshake_timeout 1 s), well within the bound.
            left_open = still_open_after(silent, timeout=15)
            assert len(left_open) == 0, "silent connections the server left open"
            code, reason = goaway_of(idle)
            assert code == 0 and reason == b"max_idle"
        finally:
            for sock in silent:
                sock.close()
            idle.close()
        good.check()


# --- 10. connection churn -----------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count descriptors")
def test_thousands_of_connections_aborted_mid_call_leak_nothing(server: ServerThread):
    fds_before = open_fds()
    streams_before = count_live(SessionStream)
    for i in range(2000):
        with Attacker(server.port) as attacker:
            attacker.send(attacker.headers(1, grpc_headers("/h2rpc.test.EchoTest/Bidi")))
            attacker.send(attacker.data(1, message(b"\x0a\x01x")))
            if i % 100 == 0:
                attacker.wait_for(DataFrame)  # really mid-call: the handler is running
            attacker.sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
    # The server may still be accepting the last connections from its listen backlog, so "no
    # call, no connection" must hold for a while, not once.
    deadline = time.monotonic() + 10
    quiet_since = None
    while time.monotonic() < deadline:
        busy = server.call(
            lambda: len(server.server._calls) + len(server.server._listeners[0].connections)
        )
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:
            break
        time.sleep(0.05)
    assert server.call(lambda: len(server.server._calls)) == 0
    leftover = server.call(
        lambda: [repr(c._transport) for c in server.server._listeners[0].connections]
    )
    assert not leftover, leftover
    assert count_live(SessionStream) <= streams_before
    assert open_fds() <= fds_before + 5
    still_serving(server.target)
