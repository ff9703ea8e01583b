"""Interceptors across implementations: grpcio's own interceptor classes on h2rpc (client and
server, blocking and asyncio), h2rpc client interceptors against a grpcio server, and h2rpc
server interceptors under a grpcio client."""

from __future__ import annotations

import asyncio
from concurrent import futures
from typing import Any

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc

pytestmark = pytest.mark.skipif(not GRPCIO_AVAILABLE, reason=GRPCIO_UNAVAILABLE_REASON)

if GRPCIO_AVAILABLE:
    import grpc
    import grpc.aio

PATH = "/t.T/Echo"
STREAM_PATH = "/t.T/Stream"


def _tags(metadata: Any) -> bytes:
    return ",".join(str(v) for k, v in metadata if k == "x-tag").encode()


def echo_def(request: bytes, context: Any) -> bytes:
    return request + b"|" + _tags(context.invocation_metadata())


def stream_def(request: bytes, context: Any) -> Any:
    yield request
    yield _tags(context.invocation_metadata())


async def echo_async(request: bytes, context: Any) -> bytes:
    return echo_def(request, context)


# ---------------------------------------------------------------------- peers in this process


class GrpcioServer:
    def __enter__(self) -> str:
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "t.T",
                    {
                        "Echo": grpc.unary_unary_rpc_method_handler(echo_def),
                        "Stream": grpc.unary_stream_rpc_method_handler(stream_def),
                    },
                ),
            )
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return f"127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.stop(0).wait(5)


def h2rpc_sync_server(interceptors: Any) -> tuple[rpc.sync.Server, str]:
    server = rpc.sync.Server(
        [
            rpc.method_handlers_generic_handler(
                "t.T",
                {
                    "Echo": rpc.unary_unary_rpc_method_handler(echo_def),
                    "Stream": rpc.unary_stream_rpc_method_handler(stream_def),
                },
            )
        ],
        interceptors=interceptors,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


# ---------------------------------------------------------------------- grpcio's classes


if GRPCIO_AVAILABLE:

    class GrpcioTagger(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
        """A grpcio blocking client interceptor, unchanged."""

        def _tag(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
            metadata = [*(client_call_details.metadata or ()), ("x-tag", "grpcio-sync")]
            return continuation(client_call_details._replace(metadata=metadata), request)

        intercept_unary_unary = _tag
        intercept_unary_stream = _tag

    class GrpcioAioTagger(grpc.aio.UnaryUnaryClientInterceptor):
        """A grpc.aio client interceptor, unchanged."""

        async def intercept_unary_unary(
            self, continuation: Any, client_call_details: Any, request: Any
        ) -> Any:
            client_call_details.metadata.add("x-tag", "grpcio-aio")
            return await continuation(client_call_details, request)

    class GrpcioAuth(grpc.ServerInterceptor):
        """grpcio's auth pattern: a handler that aborts when the token is missing."""

        def __init__(self) -> None:
            def deny(request: Any, context: Any) -> Any:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "token required")

            self._deny = grpc.unary_unary_rpc_method_handler(deny)

        def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            if ("authorization", "Bearer ok") in tuple(handler_call_details.invocation_metadata):
                return continuation(handler_call_details)
            return self._deny

    class GrpcioAioAuth(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            if ("authorization", "Bearer ok") in tuple(handler_call_details.invocation_metadata):
                return await continuation(handler_call_details)
            raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "token required")


# ---------------------------------------------------------------------- tests


def test_grpcio_client_interceptor_on_h2rpc_sync_channel_against_grpcio_server() -> None:
    with GrpcioServer() as target, rpc.sync.Channel(target, interceptors=[GrpcioTagger()]) as ch:
        assert ch.unary_unary(PATH)(b"hi", timeout=10) == b"hi|grpcio-sync"
        response, call = ch.unary_unary(PATH).with_call(b"hi", timeout=10)
        assert response == b"hi|grpcio-sync"
        assert call.code() == rpc.StatusCode.OK
        assert list(ch.unary_stream(STREAM_PATH)(b"s", timeout=10)) == [b"s", b"grpcio-sync"]


def test_grpcio_aio_client_interceptor_on_h2rpc_channel_against_grpcio_server() -> None:
    async def main(target: str) -> Any:
        async with rpc.Channel(target, interceptors=[GrpcioAioTagger()]) as channel:
            return await asyncio.wait_for(channel.unary_unary(PATH)(b"hi"), 10)

    with GrpcioServer() as target:
        assert asyncio.run(main(target)) == b"hi|grpcio-aio"


def test_grpcio_server_interceptor_on_h2rpc_sync_server_with_grpcio_client() -> None:
    server, target = h2rpc_sync_server([GrpcioAuth()])
    try:
        with grpc.insecure_channel(target) as channel:
            echo = channel.unary_unary(PATH)
            with pytest.raises(grpc.RpcError) as caught:
                echo(b"x", timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert caught.value.details() == "token required"
            assert echo(b"x", timeout=10, metadata=[("authorization", "Bearer ok")]) == b"x|"
    finally:
        server.stop(0.5)


def test_grpcio_aio_server_interceptor_on_h2rpc_server_with_grpcio_client() -> None:
    async def main() -> None:
        server = rpc.Server(
            [
                rpc.method_handlers_generic_handler(
                    "t.T", {"Echo": rpc.unary_unary_rpc_method_handler(echo_async)}
                )
            ],
            interceptors=[GrpcioAioAuth()],
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                echo = channel.unary_unary(PATH)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await echo(b"x", timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
                reply = await echo(b"x", timeout=10, metadata=[("authorization", "Bearer ok")])
                assert reply == b"x|"
        finally:
            await server.stop(0.5)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_h2rpc_interceptors_both_sides_with_grpcio_peers() -> None:
    """h2rpc server interceptors (rpc.Interceptor) see the calls of a grpcio client that has
    grpcio's own client interceptor."""
    seen: list[Any] = []

    class Log(rpc.Interceptor):
        def intercept(self, details: Any, request: Any, context: Any) -> Any:
            status = yield request
            seen.append((details.method, status.code))

    server, target = h2rpc_sync_server([Log()])
    try:
        with grpc.insecure_channel(target) as plain:
            channel = grpc.intercept_channel(plain, GrpcioTagger())
            assert channel.unary_unary(PATH)(b"y", timeout=10) == b"y|grpcio-sync"
    finally:
        server.stop(0.5)
    assert seen == [(PATH, rpc.StatusCode.OK)]
