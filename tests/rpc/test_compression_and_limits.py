"""Compression (negotiation, per-message flag) and size/stream limits, h2rpc to h2rpc."""

from __future__ import annotations

import asyncio
import gzip
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import h2.events
import pytest

import rpc
from tests.rpc.helpers import generic_server, run, serving
from tests.rpc.raw_h2 import GRPC_REQUEST, RawClient, headers_of
from tests.rpc.server_thread import ServerThread


async def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
    return request


async def echo_gzip(request: bytes, context: rpc.ServicerContext) -> bytes:
    context.set_compression("gzip")
    return request


async def mixed(request: bytes, context: rpc.ServicerContext) -> AsyncIterator[bytes]:
    context.set_compression("deflate")
    yield request
    context.disable_next_message_compression()
    yield request
    yield request


async def count(requests: AsyncIterator[bytes], context: rpc.ServicerContext) -> bytes:
    return b"".join([r async for r in requests])


HANDLERS = {
    "Echo": rpc.unary_unary_rpc_method_handler(echo),
    "EchoGzip": rpc.unary_unary_rpc_method_handler(echo_gzip),
    "Mixed": rpc.unary_stream_rpc_method_handler(mixed),
    "Join": rpc.stream_unary_rpc_method_handler(count),
}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_calls_round_trip_both_ways(encoding: str):
    payload = b"compress me " * 1000

    async def body() -> None:
        async with serving(generic_server(HANDLERS, compression=encoding)) as target:
            async with rpc.Channel(target, compression=encoding) as channel:
                assert await channel.unary_unary("/t.T/Echo")(payload) == payload
            async with rpc.Channel(target) as channel:  # per-call override
                echo_call = channel.unary_unary("/t.T/Echo")
                assert await echo_call(payload, compression=encoding) == payload
                got = [m async for m in channel.unary_stream("/t.T/Mixed")(payload)]
                assert got == [payload] * 3
                call = channel.stream_unary("/t.T/Join")(compression=encoding)
                await call.write(b"a")
                await call.write(b"b", compress=False)
                await call.write(b"c")
                await call.done_writing()
                assert await call == b"abc"

    run(body())


@pytest.fixture(scope="module")
def thread() -> Iterator[ServerThread]:
    server_thread = ServerThread(lambda: generic_server(HANDLERS))
    with server_thread:
        yield server_thread


def raw_call(
    thread: ServerThread, path: str, body: bytes, extra: list[tuple[str, str]] = ()
) -> tuple[dict[str, str], list[Any]]:
    client = RawClient(thread.port)
    try:
        headers = [(k, path if k == ":path" else v) for k, v in GRPC_REQUEST] + list(extra)
        stream_id = client.send_request(headers, body=body)
        events = client.wait_stream_done(stream_id)
        return headers_of(events), events
    finally:
        client.close()


def frames(events: list[Any]) -> list[tuple[int, bytes]]:
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    out = []
    while data:
        flag, length = struct.unpack(">BI", data[:5])
        out.append((flag, data[5 : 5 + length]))
        data = data[5 + length :]
    return out


def test_wire_compressed_request_is_decoded_and_accept_encoding_advertised(thread: ServerThread):
    blob = gzip.compress(b"hello")
    answer, events = raw_call(
        thread,
        "/t.T/Echo",
        struct.pack(">BI", 1, len(blob)) + blob,
        [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "identity")],
    )
    assert answer["grpc-status"] == "0"
    assert frames(events) == [(0, b"hello")]  # the client accepts only identity
    assert "gzip" in answer["grpc-accept-encoding"]


def test_wire_response_compressed_only_when_the_client_accepts_it(thread: ServerThread):
    answer, events = raw_call(
        thread,
        "/t.T/EchoGzip",
        struct.pack(">BI", 0, 5) + b"hello",
        [("grpc-accept-encoding", "identity,gzip")],
    )
    assert answer["grpc-encoding"] == "gzip"
    [(flag, data)] = frames(events)
    assert flag == 1 and gzip.decompress(data) == b"hello"


def test_wire_per_message_flag_in_a_compressed_stream(thread: ServerThread):
    answer, events = raw_call(
        thread,
        "/t.T/Mixed",
        struct.pack(">BI", 0, 2) + b"hi",
        [("grpc-accept-encoding", "deflate")],
    )
    assert answer["grpc-encoding"] == "deflate"
    assert [flag for flag, _ in frames(events)] == [1, 0, 1]


def test_unsupported_request_encoding_is_unimplemented_listing_ours(thread: ServerThread):
    answer, _ = raw_call(
        thread, "/t.T/Echo", struct.pack(">BI", 1, 3) + b"???", [("grpc-encoding", "snappy")]
    )
    assert answer["grpc-status"] == str(int(rpc.StatusCode.UNIMPLEMENTED))
    assert "gzip" in answer["grpc-message"] and "gzip" in answer["grpc-accept-encoding"]


def test_compressed_flag_without_encoding_is_internal(thread: ServerThread):
    answer, _ = raw_call(thread, "/t.T/Echo", struct.pack(">BI", 1, 3) + b"abc")
    assert answer["grpc-status"] == str(int(rpc.StatusCode.INTERNAL))


def test_gzip_bomb_is_resource_exhausted_at_the_receive_limit(thread: ServerThread):
    bomb = gzip.compress(bytes(64 * 1024 * 1024))
    answer, _ = raw_call(
        thread, "/t.T/Echo", struct.pack(">BI", 1, len(bomb)) + bomb, [("grpc-encoding", "gzip")]
    )
    assert answer["grpc-status"] == str(int(rpc.StatusCode.RESOURCE_EXHAUSTED))


def test_over_limit_messages_each_way_are_resource_exhausted():
    big = bytes(2 * 1024 * 1024)

    async def body() -> None:
        server = generic_server(HANDLERS, max_receive_message_length=1024 * 1024)
        async with serving(server) as target:
            async with rpc.Channel(target) as channel:
                with pytest.raises(rpc.RpcError) as info:
                    await channel.unary_unary("/t.T/Echo")(big)  # server receive limit
                assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED
            async with rpc.Channel(target, max_send_message_length=1000) as channel:
                with pytest.raises(rpc.RpcError) as info:
                    await channel.unary_unary("/t.T/Echo")(bytes(1001))  # client send limit
                assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED
        server = generic_server(HANDLERS, max_send_message_length=1000)
        async with serving(server) as target, rpc.Channel(target) as channel:
            with pytest.raises(rpc.RpcError) as info:
                await channel.unary_unary("/t.T/Echo")(bytes(1001))  # server send limit
            assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED
        async with serving(generic_server(HANDLERS)) as target:
            async with rpc.Channel(target, max_receive_message_length=1000) as channel:
                with pytest.raises(rpc.RpcError) as info:
                    await channel.unary_unary("/t.T/Echo")(bytes(1001))  # client receive limit
                assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED

    run(body())


def test_300_concurrent_calls_against_a_limit_of_100_all_succeed():
    active = 0
    peak = 0

    async def slowish(request: bytes, context: rpc.ServicerContext) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)  # long enough for the calls to pile up against the limit
        active -= 1
        return request

    server = generic_server(
        {"S": rpc.unary_unary_rpc_method_handler(slowish)}, max_concurrent_streams=100
    )

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            call = channel.unary_unary("/t.T/S")
            replies = await asyncio.gather(*(call(b"%d" % i) for i in range(300)))
            assert replies == [b"%d" % i for i in range(300)]

    run(body())
    assert peak <= 100
