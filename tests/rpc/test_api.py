"""The public API end to end, h2rpc to h2rpc in one event loop."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h2rpc_test_pb2 as pb
import pytest

import rpc
from tests.interop.echo_servicer import SERVICE, make_server
from tests.rpc.helpers import eventually


def run(coro: Awaitable[Any], timeout: float = 20) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def with_server(
    server: rpc.Server, body: Callable[[str], Awaitable[Any]], address: str = "127.0.0.1:0"
) -> Any:
    port = server.add_insecure_port(address)
    await server.start()
    try:
        return await body(address if address.startswith("unix") else f"127.0.0.1:{port}")
    finally:
        await server.stop(0.5)


# --- services without a .proto ----------------------------------------------------------


async def upper(request: bytes, context: rpc.ServicerContext) -> bytes:
    return request.upper()


async def repeat(request: bytes, context: rpc.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(3):
        yield request + str(i).encode()


async def join(requests: AsyncIterator[bytes], context: rpc.ServicerContext) -> bytes:
    return b"+".join([r async for r in requests])


async def echo_each(requests: AsyncIterator[bytes], context: rpc.ServicerContext) -> None:
    async for r in requests:
        await context.write(r[::-1])


def generic_server() -> rpc.Server:
    handlers = rpc.method_handlers_generic_handler(
        "raw.Bytes",
        {
            "Upper": rpc.unary_unary_rpc_method_handler(upper),
            "Repeat": rpc.unary_stream_rpc_method_handler(repeat),
            "Join": rpc.stream_unary_rpc_method_handler(join),
            "Reverse": rpc.stream_stream_rpc_method_handler(echo_each),
        },
    )
    return rpc.Server([handlers])


def test_generic_handlers_serve_all_four_kinds_without_protobuf():
    async def body(target: str) -> None:
        async with rpc.Channel(target) as ch:
            assert await ch.unary_unary("/raw.Bytes/Upper")(b"abc") == b"ABC"
            got = [m async for m in ch.unary_stream("/raw.Bytes/Repeat")(b"x")]
            assert got == [b"x0", b"x1", b"x2"]
            assert await ch.stream_unary("/raw.Bytes/Join")(iter([b"a", b"b", b"c"])) == b"a+b+c"
            got = [m async for m in ch.stream_stream("/raw.Bytes/Reverse")(iter([b"ab", b"cd"]))]
            assert got == [b"ba", b"dc"]

    run(with_server(generic_server(), body))


# --- errors -----------------------------------------------------------------------------


class Failing:
    async def Unary(self, request: pb.EchoRequest, context: rpc.ServicerContext) -> Any:
        if request.payload == b"raise":
            raise ValueError("secret internal detail")
        if request.payload == b"rpcerror":
            raise rpc.RpcError(
                rpc.StatusCode.NOT_FOUND, "no such thing", rpc.Metadata(("why-bin", b"\x01"))
            )
        if request.payload == b"set_code":
            context.set_code(rpc.StatusCode.FAILED_PRECONDITION)
            context.set_details("not now")
            return None
        return pb.EchoResponse(payload=request.payload)


def failing_server() -> rpc.Server:
    server = rpc.Server()
    server.add_service(SERVICE, Failing())  # the other three methods answer UNIMPLEMENTED
    return server


async def unary_error(target: str, payload: bytes) -> rpc.RpcError:
    async with rpc.Channel(target) as ch:
        with pytest.raises(rpc.RpcError) as info:
            await rpc.Stub(ch, SERVICE).Unary(pb.EchoRequest(payload=payload))
        return info.value


def test_handler_exception_is_unknown_without_leaking_its_text():
    error = run(with_server(failing_server(), lambda t: unary_error(t, b"raise")))
    assert error.code() == rpc.StatusCode.UNKNOWN
    assert "secret" not in error.details()
    assert "Traceback" not in error.details()
    assert "ValueError" in error.details()


def test_handler_raising_rpc_error_sends_its_status_and_trailers():
    error = run(with_server(failing_server(), lambda t: unary_error(t, b"rpcerror")))
    assert error.code() == rpc.StatusCode.NOT_FOUND
    assert error.details() == "no such thing"
    assert error.trailing_metadata()["why-bin"] == b"\x01"


def test_set_code_and_details_without_an_exception():
    error = run(with_server(failing_server(), lambda t: unary_error(t, b"set_code")))
    assert error.code() == rpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "not now"


def test_servicer_missing_a_method_answers_unimplemented():
    async def body(target: str) -> None:
        async with rpc.Channel(target) as ch:
            with pytest.raises(rpc.RpcError) as info:
                async for _ in rpc.Stub(ch, SERVICE).ServerStream(pb.EchoRequest()):
                    pass
            assert info.value.code() == rpc.StatusCode.UNIMPLEMENTED

    run(with_server(failing_server(), body))


def test_unreachable_target_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused

        async def body() -> None:
            async with rpc.Channel(f"127.0.0.1:{port}") as ch:
                with pytest.raises(rpc.RpcError) as info:
                    await ch.unary_unary("/x.Y/Z")(b"")
                assert info.value.code() == rpc.StatusCode.UNAVAILABLE

        run(body())


def test_invalid_metadata_is_rejected_before_sending():
    async def body(target: str) -> None:
        async with rpc.Channel(target) as ch:
            with pytest.raises(rpc.UsageError, match="Bad Key"):
                await rpc.Stub(ch, SERVICE).Unary(pb.EchoRequest(), metadata=[("Bad Key", "v")])

    run(with_server(make_server(), body))


def test_stub_has_one_attribute_per_rpc():
    async def body() -> None:
        stub = rpc.Stub(rpc.Channel("127.0.0.1:1"), SERVICE)
        assert {"Unary", "ServerStream", "ClientStream", "Bidi"} <= set(vars(stub))
        with pytest.raises(AttributeError, match="no method"):
            stub.Nope  # noqa: B018

    run(body())


# --- transports -------------------------------------------------------------------------


async def one_echo(target: str) -> None:
    async with rpc.Channel(target) as ch:
        reply = await rpc.Stub(ch, SERVICE).Unary(pb.EchoRequest(payload=b"hi"))
        assert reply.payload == b"hi"


def test_unix_socket_target():
    with tempfile.TemporaryDirectory() as tmp:
        address = f"unix:{os.path.join(tmp, 's.sock')}"
        run(with_server(make_server(), one_echo, address))


def test_ipv6_loopback_target():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("IPv6 loopback unavailable")

    async def body() -> None:
        server = make_server()
        port = server.add_insecure_port("[::1]:0")
        await server.start()
        try:
            await one_echo(f"[::1]:{port}")
        finally:
            await server.stop(0.5)

    run(body())


# --- cancellation and deadlines (basic; the full protocol is tested with grpcio) ---------


def test_client_cancel_is_cancelled_and_stops_the_handler():
    observed: list[str] = []

    async def slow(request: bytes, context: rpc.ServicerContext) -> AsyncIterator[bytes]:
        try:
            yield b"first"
            await asyncio.sleep(30)
            yield b"never"
        except asyncio.CancelledError:
            observed.append("cancelled")
            raise

    server = rpc.Server(
        [
            rpc.method_handlers_generic_handler(
                "s.S", {"Slow": rpc.unary_stream_rpc_method_handler(slow)}
            )
        ]
    )

    async def body(target: str) -> None:
        async with rpc.Channel(target) as ch:
            call = ch.unary_stream("/s.S/Slow")(b"")
            assert await call.read() == b"first"
            assert call.cancel()
            with pytest.raises(rpc.RpcError) as info:
                await call.read()
            assert info.value.code() == rpc.StatusCode.CANCELLED
            await eventually(lambda: bool(observed))
            assert observed == ["cancelled"]

    run(with_server(server, body))


def test_timeout_is_deadline_exceeded_even_if_the_server_never_answers():
    async def never(request: bytes, context: rpc.ServicerContext) -> bytes:
        await asyncio.sleep(30)
        return b""

    server = rpc.Server(
        [
            rpc.method_handlers_generic_handler(
                "s.S", {"Never": rpc.unary_unary_rpc_method_handler(never)}
            )
        ]
    )

    async def body(target: str) -> None:
        async with rpc.Channel(target) as ch:
            with pytest.raises(rpc.RpcError) as info:
                await ch.unary_unary("/s.S/Never")(b"", timeout=0.2)
            assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED

    run(with_server(server, body))
