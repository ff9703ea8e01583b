"""Handler mistakes give a clear status and a log line that says what to fix: a response of the
wrong type, an ``async def`` server-streaming handler that returns a value, a ``def`` one that
returns something not iterable. Both servers, real calls on loopback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import h2rpc_test_pb2 as pb
import pytest
from google.protobuf import descriptor_pool, message_factory

import rpc
from tests.interop.echo_servicer import SERVICE
from tests.rpc.helpers import generic_server, run, serving

RESPONSE_TYPE = "h2rpc.test.EchoResponse"
UNARY = "/h2rpc.test.EchoTest/Unary"
SERVER_STREAM = "/h2rpc.test.EchoTest/ServerStream"


def _echo_response_class_of_another_pool() -> Any:
    """The same message type (same full name) as a class of its own, as a second copy of a
    generated module would give."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(pb.DESCRIPTOR.serialized_pb)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(RESPONSE_TYPE))


def _reply(kind: str) -> Any:
    if kind == "other-message":
        return pb.EchoRequest(payload=b"not a response")  # serializes fine: caught by type
    if kind == "dict":
        return {"payload": b"x"}
    return _echo_response_class_of_another_pool()(payload=b"same type")


class AsyncServicer:
    async def Unary(self, request: pb.EchoRequest, context: Any) -> Any:
        return _reply(request.payload.decode())

    async def ServerStream(self, request: pb.EchoRequest, context: Any) -> Any:
        await context.write(pb.EchoResponse(index=0))
        return [pb.EchoResponse(index=1)]  # a mistake: returned, not yielded


class SyncServicer:
    def Unary(self, request: pb.EchoRequest, context: Any) -> Any:
        return _reply(request.payload.decode())

    def ServerStream(self, request: pb.EchoRequest, context: Any) -> Any:
        return pb.EchoResponse(index=0)  # a mistake: one message, not an iterable of them


@contextlib.contextmanager
def sync_serving(servicer: object) -> Iterator[str]:
    server = rpc.sync.Server(max_workers=4)
    server.add_service(SERVICE, servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0.5)


def _unary_blocking(target: str, kind: str) -> Any:
    with rpc.sync.Channel(target) as channel:
        return rpc.Stub(channel, SERVICE).Unary(pb.EchoRequest(payload=kind.encode()), timeout=5)


def _serve_async_then(servicer: object, call: Any) -> Any:
    async def main() -> Any:
        server = rpc.Server()
        server.add_service(SERVICE, servicer)
        async with serving(server) as target:
            return await call(target)

    return run(main())


@pytest.mark.parametrize(
    ("kind", "given"), [("other-message", "h2rpc.test.EchoRequest"), ("dict", "dict")]
)
@pytest.mark.parametrize("server_kind", ["async", "sync"])
def test_a_response_of_the_wrong_type_fails_internal_and_the_log_names_method_and_type(
    caplog: pytest.LogCaptureFixture, server_kind: str, kind: str, given: str
) -> None:
    if server_kind == "sync":
        with sync_serving(SyncServicer()) as target, pytest.raises(rpc.RpcError) as info:
            _unary_blocking(target, kind)
    else:

        async def call(target: str) -> None:
            async with rpc.Channel(target) as channel:
                with pytest.raises(rpc.RpcError) as caught:
                    await rpc.Stub(channel, SERVICE).Unary(pb.EchoRequest(payload=kind.encode()))
                raise caught.value

        with pytest.raises(rpc.RpcError) as info:
            _serve_async_then(AsyncServicer(), call)
    assert info.value.code() == rpc.StatusCode.INTERNAL
    assert info.value.details() == "Failed to serialize response!"
    [record] = [r for r in caplog.records if "wrong response" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert UNARY in record.getMessage()
    assert f"must be a {RESPONSE_TYPE} message, not {given}" in record.getMessage()


def test_the_same_message_type_from_another_generated_class_is_sent() -> None:
    with sync_serving(SyncServicer()) as target:
        assert _unary_blocking(target, "same-type").payload == b"same type"


def test_a_generic_handler_whose_serializer_fails_is_internal_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(request: bytes, context: Any) -> str:
        return "text"  # the method's serializer takes only bytes

    def serialize(message: Any) -> bytes:
        if not isinstance(message, bytes):
            raise TypeError(f"expected bytes, got {type(message).__name__}")
        return message

    server = generic_server(
        {"M": rpc.unary_unary_rpc_method_handler(handler, response_serializer=serialize)}
    )

    async def main() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            with pytest.raises(rpc.RpcError) as info:
                await channel.unary_unary("/t.T/M")(b"")
            assert info.value.code() == rpc.StatusCode.INTERNAL

    run(main())
    [record] = [r for r in caplog.records if "could not serialize" in r.getMessage()]
    assert "/t.T/M" in record.getMessage() and "(a str)" in record.getMessage()
    assert record.exc_info is not None and "expected bytes, got str" in str(record.exc_info[1])


def test_an_async_def_server_stream_handler_returning_a_value_logs_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def call(target: str) -> list[int]:
        async with rpc.Channel(target) as channel:
            stream = rpc.Stub(channel, SERVICE).ServerStream(pb.EchoRequest(), timeout=5)
            indexes = [response.index async for response in stream]
            assert await stream.code() == rpc.StatusCode.OK
            return indexes

    assert _serve_async_then(AsyncServicer(), call) == [0]  # what it wrote; the return is ignored
    [record] = [r for r in caplog.records if "is an async def returning" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert SERVER_STREAM in record.getMessage()
    assert "returning a list, which is ignored" in record.getMessage()
    assert "context.write(response)" in record.getMessage()


def test_an_async_generator_handler_is_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    class Generating:
        async def ServerStream(self, request: Any, context: Any) -> AsyncIterator[Any]:
            yield pb.EchoResponse(index=0)

    async def call(target: str) -> None:
        async with rpc.Channel(target) as channel:
            stream = rpc.Stub(channel, SERVICE).ServerStream(pb.EchoRequest(), timeout=5)
            assert [r.index async for r in stream] == [0]

    _serve_async_then(Generating(), call)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("server_kind", ["async", "sync"])
def test_a_def_server_stream_handler_returning_a_non_iterable_fails_unknown_and_logs(
    caplog: pytest.LogCaptureFixture, server_kind: str
) -> None:
    def read(target: str) -> rpc.RpcError:
        with rpc.sync.Channel(target) as channel:
            stream = rpc.Stub(channel, SERVICE).ServerStream(pb.EchoRequest(), timeout=5)
            with pytest.raises(rpc.RpcError) as info:
                list(stream)
            return info.value

    if server_kind == "sync":
        with sync_serving(SyncServicer()) as target:
            error = read(target)
    else:

        async def call(target: str) -> rpc.RpcError:
            async with rpc.Channel(target) as channel:
                stream = rpc.Stub(channel, SERVICE).ServerStream(pb.EchoRequest(), timeout=5)
                with pytest.raises(rpc.RpcError) as info:
                    [r async for r in stream]
                return info.value

        # a plain def handler on the async server runs in its thread pool: the same rule
        error = _serve_async_then(SyncServicer(), call)
    assert error.code() == rpc.StatusCode.UNKNOWN
    assert error.details() == "Exception iterating responses"
    [record] = [r for r in caplog.records if "server-streaming def handler" in r.getMessage()]
    assert SERVER_STREAM in record.getMessage() and "returned a EchoResponse" in record.getMessage()


def test_iterables_other_than_generators_are_still_fine_from_def_handlers() -> None:
    class Listing:
        def ServerStream(self, request: Any, context: Any) -> list[Any]:
            return [pb.EchoResponse(index=i) for i in range(3)]

    with sync_serving(Listing()) as target, rpc.sync.Channel(target) as channel:
        stream = rpc.Stub(channel, SERVICE).ServerStream(pb.EchoRequest(), timeout=5)
        assert [r.index for r in stream] == [0, 1, 2]
