"""Interop cases driven by h2rpc's async client against an EchoTest server.

The same cases as grpcio_client_cases.py, for the other direction: each coroutine takes a target
(``"host:port"``) of a server implementing tests/protos/h2rpc_test.proto and raises
AssertionError on a mismatch. ``run(coro)`` runs one with an overall time limit.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
from compile import ensure_proto_path

ensure_proto_path()
import h2rpc_test_pb2 as pb  # noqa: E402
from echo_cases_common import (  # noqa: E402
    CALL_TIMEOUT_SECONDS,
    ECHO_METADATA,
    EXPECTED_ECHO,
    MAX_MESSAGE_LENGTH,
    MiB,
    assert_bytes_equal,
    echoed,
    patterned_bytes,
    status_details,
)

import rpc  # noqa: E402

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]
NON_OK_STATUS_CODES = tuple(code for code in rpc.StatusCode if code != rpc.StatusCode.OK)


def run(coro: Coroutine[Any, Any, Any], timeout: float = 50.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def channel(target: str) -> rpc.Channel:
    return rpc.Channel(
        target,
        max_receive_message_length=MAX_MESSAGE_LENGTH,
        max_send_message_length=MAX_MESSAGE_LENGTH,
    )


# --- happy paths ------------------------------------------------------------------------


async def unary_echo(target: str) -> None:
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        response = await stub.Unary(pb.EchoRequest(payload=b"hello"), timeout=CALL_TIMEOUT_SECONDS)
        assert (response.payload, response.index) == (b"hello", 0)
        response = await stub.Unary(pb.EchoRequest(response_size=5))
        assert response.payload == bytes(5)


async def server_stream(target: str) -> None:
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        call = stub.ServerStream(pb.EchoRequest(payload=b"abc", response_count=5))
        responses = [r async for r in call]
        assert [r.index for r in responses] == [0, 1, 2, 3, 4]
        assert [r.payload for r in responses] == [b"abc"] * 5
        assert await call.code() == rpc.StatusCode.OK
        empty = [r async for r in stub.ServerStream(pb.EchoRequest())]
        assert empty == []


async def client_stream(target: str) -> None:
    sizes = [0, 1, 10, 1000, 70_000]
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        requests = (pb.EchoRequest(payload=patterned_bytes(n, seed=n)) for n in sizes)
        response = await stub.ClientStream(requests, timeout=CALL_TIMEOUT_SECONDS)
        assert (response.received_count, response.received_bytes) == (len(sizes), sum(sizes))

        async def none() -> AsyncIterator[pb.EchoRequest]:
            return
            yield

        response = await stub.ClientStream(none())
        assert (response.received_count, response.received_bytes) == (0, 0)

        call = stub.ClientStream()
        for n in sizes:
            await call.write(pb.EchoRequest(payload=bytes(n)))
        await call.done_writing()
        response = await call
        assert (response.received_count, response.received_bytes) == (len(sizes), sum(sizes))


async def bidi(target: str) -> None:
    """Ping-pong: each response arrives before the next request is written."""
    payloads = [f"message {i}".encode() * (i + 1) for i in range(10)]
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        call = stub.Bidi(timeout=CALL_TIMEOUT_SECONDS)
        for index, payload in enumerate(payloads):
            await call.write(pb.EchoRequest(payload=payload))
            response = await call.read()
            assert (response.index, response.payload) == (index, payload)
        await call.done_writing()
        assert await call.read() is rpc.EOF
        assert await call.code() == rpc.StatusCode.OK

        # And with a request iterator, read as an async iterator.
        requests = [pb.EchoRequest(payload=p) for p in payloads]
        got = [r.payload async for r in stub.Bidi(iter(requests))]
        assert got == payloads


# --- metadata ---------------------------------------------------------------------------


async def unary_metadata_echo(target: str) -> None:
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        call = stub.Unary(pb.EchoRequest(payload=b"md"), metadata=ECHO_METADATA)
        response = await call
        assert response.payload == b"md"
        assert echoed(await call.initial_metadata()) == EXPECTED_ECHO
        assert echoed(await call.trailing_metadata()) == EXPECTED_ECHO


async def bidi_metadata_echo(target: str) -> None:
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        requests = [pb.EchoRequest(payload=b"one"), pb.EchoRequest(payload=b"two")]
        call = stub.Bidi(iter(requests), metadata=ECHO_METADATA)
        assert echoed(await call.initial_metadata()) == EXPECTED_ECHO
        assert [r.payload async for r in call] == [b"one", b"two"]
        assert echoed(await call.trailing_metadata()) == EXPECTED_ECHO
        assert await call.code() == rpc.StatusCode.OK


# --- status codes -----------------------------------------------------------------------


async def unary_status(target: str, code: rpc.StatusCode) -> None:
    details = status_details(int(code))
    request = pb.EchoRequest(payload=b"x", status_code=int(code), status_message=details)
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        try:
            await stub.Unary(request, metadata=ECHO_METADATA)
        except rpc.RpcError as error:
            assert error.code() == code, error
            assert error.details() == details
            assert echoed(error.trailing_metadata()) == EXPECTED_ECHO
        else:
            raise AssertionError(f"expected {code}, the call succeeded")


async def server_stream_status(target: str, code: rpc.StatusCode) -> None:
    details = status_details(int(code))
    request = pb.EchoRequest(
        payload=b"y", response_count=3, status_code=int(code), status_message=details
    )
    received = []
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        try:
            async for response in stub.ServerStream(request):
                received.append((response.index, response.payload))
        except rpc.RpcError as error:
            assert error.code() == code, error
            assert error.details() == details
        else:
            raise AssertionError(f"expected {code}, the stream ended OK")
    assert received == [(0, b"y"), (1, b"y"), (2, b"y")]


# --- message sizes ----------------------------------------------------------------------


async def unary_message_size(target: str, size: int) -> None:
    payload = patterned_bytes(size)
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        response = await stub.Unary(pb.EchoRequest(payload=payload))
        assert_bytes_equal(response.payload, payload, f"{size}-byte echo")
        if size > 0:
            response = await stub.Unary(pb.EchoRequest(response_size=size))
            assert_bytes_equal(response.payload, bytes(size), f"{size}-byte response")


async def server_stream_large_messages(target: str, count: int = 3, size: int = 8 * MiB) -> None:
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        indexes = []
        async for response in stub.ServerStream(
            pb.EchoRequest(response_size=size, response_count=count)
        ):
            assert_bytes_equal(response.payload, bytes(size), f"response {response.index}")
            indexes.append(response.index)
        assert indexes == list(range(count))


# --- concurrency ------------------------------------------------------------------------


async def concurrent_unary(target: str, calls: int = 200) -> None:
    async with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        payloads = [f"call {i}:".encode() + patterned_bytes(i * 13, seed=i) for i in range(calls)]
        responses = await asyncio.gather(*(stub.Unary(pb.EchoRequest(payload=p)) for p in payloads))
        for i, (response, payload) in enumerate(zip(responses, payloads)):
            assert_bytes_equal(response.payload, payload, f"call {i}")
        assert ch._conn is not None and ch._conn.active_streams == 0


# --- unknown methods --------------------------------------------------------------------


async def _assert_unimplemented(target: str, method: str) -> None:
    async with channel(target) as ch:
        try:
            await ch.unary_unary(method)(b"")
        except rpc.RpcError as error:
            assert error.code() == rpc.StatusCode.UNIMPLEMENTED, error
        else:
            raise AssertionError(f"calling {method} succeeded")


async def unknown_method(target: str) -> None:
    await _assert_unimplemented(target, "/h2rpc.test.EchoTest/Nope")


async def unknown_service(target: str) -> None:
    await _assert_unimplemented(target, "/h2rpc.test.NoSuchService/X")
