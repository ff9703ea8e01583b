"""Wire tracing against grpcio, on both sides of a call: our client traced against grpcio's
server, and our server traced under grpcio's client. grpcio's frames and HPACK choices are not
ours (BDP PINGs, its own indexing decisions), so these check that the tracer decodes a foreign
peer completely: no error event, every message typed, windows that agree with h2's own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
import h2rpc_test_pb2 as pb
from echo_servicer_sync import make_sync_server

import rpc
from tests.rpc.helpers import eventually, wait_until

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]
UNARY = "/h2rpc.test.EchoTest/Unary"
STREAM = "/h2rpc.test.EchoTest/ServerStream"


def _check_complete(tracer: rpc.Tracer, side: str) -> None:
    assert not tracer.select("error"), tracer.select("error")
    types = {e["type"] for e in tracer.frames(side=side)}
    assert {"SETTINGS", "HEADERS", "DATA"} <= types
    for message in tracer.messages(side=side):
        assert message["type"] in ("h2rpc.test.EchoRequest", "h2rpc.test.EchoResponse")
        assert message["text"] is not None and "error" not in message.detail
    for block in tracer.header_blocks(side=side):
        for field in block["fields"]:
            assert field["rep"] in (
                "indexed",
                "literal-incremental",
                "literal-without-indexing",
                "literal-never-indexed",
            )


def _late_ping_in(tracer: rpc.Tracer) -> bool:
    """grpcio's PING after the last request or response (its BDP probe, ~0.1 s after the data)
    has been traced: the frames it sends late are in the trace too."""
    frames = tracer.frames(direction="in")
    heads = [i for i, e in enumerate(frames) if e["type"] == "HEADERS"]
    return bool(heads) and any(e["type"] == "PING" for e in frames[heads[-1] + 1 :])


def _assert_connection_windows_match_h2(core: Any) -> None:
    trace = core._tracer
    conn = core._h2
    assert trace.connection_window["out"] == conn.outbound_flow_control_window
    assert (
        trace.connection_window["in"]
        == conn._inbound_flow_control_window_manager.current_window_size
    )


def test_h2rpc_client_traced_against_grpcio_server(grpcio_server_target: str) -> None:
    tracer = rpc.Tracer()

    async def main() -> None:
        async with rpc.Channel(grpcio_server_target, trace=tracer) as channel:
            stub = rpc.Stub(channel, SERVICE)
            reply = await stub.Unary(pb.EchoRequest(payload=b"ping"), timeout=10)
            assert reply.payload == b"ping"
            big = await stub.Unary(pb.EchoRequest(response_size=200_000), timeout=10)
            assert len(big.payload) == 200_000
            replies = [r async for r in stub.ServerStream(pb.EchoRequest(response_count=3))]
            assert [r.index for r in replies] == [0, 1, 2]
            with pytest.raises(rpc.RpcError):
                await stub.Unary(pb.EchoRequest(status_code=5, status_message="nope"))
            await eventually(lambda: _late_ping_in(tracer))  # grpcio's late frames land
            conn = channel._conn
            assert conn is not None
            _assert_connection_windows_match_h2(conn.session.core)
            tracer.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
    _check_complete(tracer, "client")
    # grpcio's response heads and trailers, decoded from its HPACK encoder.
    blocks = tracer.header_blocks(direction="in")
    heads = [b for b in blocks if b["block"] == "response"]
    assert heads and all(b["fields"][0]["name"] == ":status" for b in heads)
    trailers = [b for b in blocks if b["block"] == "trailers"]
    statuses = [f["value"] for b in blocks for f in b["fields"] if f["name"] == "grpc-status"]
    assert "0" in statuses and "5" in statuses
    assert trailers
    # The stream of 3 responses, in order, typed.
    stream_id = tracer.messages(direction="out")[2].stream_id
    responses = tracer.messages(direction="in", stream_id=stream_id)
    assert [m["index"] for m in responses] == [1, 2, 3]
    assert responses[1]["text"].startswith("index: 1 ")
    # A 200 kB response spans several DATA frames and is still one message.
    big = [m for m in tracer.messages(direction="in") if m["length"] > 100_000]
    assert len(big) == 1
    data_frames = [
        e for e in tracer.frames(direction="in", stream_id=big[0].stream_id) if e["type"] == "DATA"
    ]
    assert len(data_frames) > 1
    assert sum(e["data_length"] for e in data_frames) == 5 + big[0]["length"]


def test_h2rpc_server_traced_under_grpcio_client() -> None:
    tracer = rpc.Tracer()
    server = make_sync_server(trace=tracer)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            unary = channel.unary_unary(
                UNARY,
                request_serializer=pb.EchoRequest.SerializeToString,
                response_deserializer=pb.EchoResponse.FromString,
            )
            stream = channel.unary_stream(
                STREAM,
                request_serializer=pb.EchoRequest.SerializeToString,
                response_deserializer=pb.EchoResponse.FromString,
            )
            assert unary(pb.EchoRequest(payload=b"hi"), timeout=10).payload == b"hi"
            compressed = unary(
                pb.EchoRequest(payload=b"z" * 1000),
                timeout=10,
                compression=grpc.Compression.Gzip,
            )
            assert compressed.payload == b"z" * 1000
            assert [r.index for r in stream(pb.EchoRequest(response_count=2), timeout=10)] == [
                0,
                1,
            ]
            [conn] = server._listeners[0].snapshot()

            def late_ping() -> bool:
                with conn.cond:
                    return _late_ping_in(tracer)

            wait_until(late_ping)  # grpcio's late frames land
            with conn.cond:
                _assert_connection_windows_match_h2(conn.session.core)
                tracer.stop()
    finally:
        server.stop(1)
    _check_complete(tracer, "server")
    requests = tracer.header_blocks(direction="in")
    first = next(b for b in requests if b["block"] == "request")
    fields = {f["name"]: f["value"] for f in first["fields"]}
    assert fields[":path"] == UNARY
    assert fields["te"] == "trailers"
    assert "grpc-c" in fields["user-agent"]  # it really was grpcio's encoder
    messages = tracer.messages(direction="in")
    assert [m["type"] for m in messages] == ["h2rpc.test.EchoRequest"] * 3
    gzip = [m for m in messages if m["compressed"]]
    assert gzip and gzip[0]["encoding"] == "gzip"
    assert gzip[0]["text"] == 'payload: "' + "z" * 1000 + '"'
    assert gzip[0]["length"] < 1000 < gzip[0]["decompressed_length"]
    # Our answers, seen going out.
    outgoing = tracer.messages(direction="out")
    assert outgoing[0]["text"].startswith('payload: "hi"')
