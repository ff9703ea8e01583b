"""rpc.otel across implementations: a grpcio client instrumented by
``opentelemetry-instrumentation-grpc`` calling an h2rpc server with ``rpc.otel``'s interceptor,
and an h2rpc client with ``rpc.otel`` calling a grpcio server with that package's server
interceptor. Either way, one trace: the server span is the child of the client span."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent import futures
from typing import Any

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc

# grpcio (and so its instrumentation) is missing on PyPy only: there, this module skips.
if not GRPCIO_AVAILABLE:
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
from opentelemetry.instrumentation.grpc import client_interceptor, server_interceptor

# The package's own channel wrapper for its client interceptor (what GrpcInstrumentorClient uses).
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import rpc.otel

from ..rpc.helpers import run, serving, serving_blocking, wait_until

SERVICE = "otel.interop.Echo"


def echo(request: bytes, context: Any) -> bytes:
    return request.upper()


def stream(request: bytes, context: Any) -> Any:
    yield request
    yield request.upper()


HANDLERS = {
    "Echo": (rpc.unary_unary_rpc_method_handler(echo), grpc.unary_unary_rpc_method_handler(echo)),
    "Stream": (
        rpc.unary_stream_rpc_method_handler(stream),
        grpc.unary_stream_rpc_method_handler(stream),
    ),
}


@pytest.fixture
def spans() -> Any:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def finished(count: int) -> tuple[Any, Any]:
        wait_until(lambda: len(exporter.get_finished_spans()) >= count, 5)
        found = list(exporter.get_finished_spans())
        assert len(found) == count, found
        (client,) = [s for s in found if s.kind == SpanKind.CLIENT]
        (server,) = [s for s in found if s.kind == SpanKind.SERVER]
        return client, server

    finished.provider = provider  # type: ignore[attr-defined]
    return finished


def assert_one_trace(client: Any, server: Any, method: str) -> None:
    assert client.context.trace_id == server.context.trace_id
    assert server.parent is not None
    assert server.parent.span_id == client.context.span_id
    for span in (client, server):
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == SERVICE
        assert span.attributes["rpc.method"] == method
        assert span.attributes["rpc.grpc.status_code"] == 0


@pytest.mark.parametrize("method", ["Echo", "Stream"])
@pytest.mark.parametrize("server_api", ["async", "sync"])
def test_grpcio_instrumented_client_into_h2rpc_server(
    spans: Any, server_api: str, method: str
) -> None:
    provider = spans.provider
    otel = rpc.otel.interceptors(tracer_provider=provider)
    generic = rpc.method_handlers_generic_handler(
        SERVICE, {name: pair[0] for name, pair in HANDLERS.items()}
    )

    def call_with_grpcio(target: str) -> list[bytes]:
        with grpc.insecure_channel(target) as plain:
            channel = intercept_channel(plain, client_interceptor(tracer_provider=provider))
            if method == "Echo":
                return [channel.unary_unary(f"/{SERVICE}/Echo")(b"a", timeout=10)]
            return list(channel.unary_stream(f"/{SERVICE}/Stream")(b"a", timeout=10))

    if server_api == "sync":
        server = rpc.sync.Server([generic], interceptors=otel.server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            responses = call_with_grpcio(f"127.0.0.1:{port}")
        finally:
            server.stop(0.5)
    else:

        async def main() -> list[bytes]:
            async with serving(rpc.Server([generic], interceptors=otel.server)) as target:
                return await asyncio.get_running_loop().run_in_executor(
                    None, call_with_grpcio, target
                )

        responses = run(main())
    assert responses == ([b"A"] if method == "Echo" else [b"a", b"A"])
    client, server = spans(2)
    assert_one_trace(client, server, method)


@pytest.mark.parametrize("method", ["Echo", "Stream"])
@pytest.mark.parametrize("client_api", ["async", "sync"])
def test_h2rpc_client_into_instrumented_grpcio_server(
    spans: Any, client_api: str, method: str
) -> None:
    provider = spans.provider
    otel = rpc.otel.interceptors(tracer_provider=provider)
    server = grpc.server(
        futures.ThreadPoolExecutor(4), interceptors=[server_interceptor(tracer_provider=provider)]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {name: pair[1] for name, pair in HANDLERS.items()}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    target = f"127.0.0.1:{port}"
    try:
        if client_api == "sync":
            with rpc.sync.Channel(target, interceptors=otel.sync_client) as channel:
                if method == "Echo":
                    responses = [channel.unary_unary(f"/{SERVICE}/Echo")(b"a", timeout=10)]
                else:
                    responses = list(channel.unary_stream(f"/{SERVICE}/Stream")(b"a", timeout=10))
        else:

            async def main() -> list[bytes]:
                async with rpc.Channel(target, interceptors=otel.client) as channel:
                    if method == "Echo":
                        return [await channel.unary_unary(f"/{SERVICE}/Echo")(b"a", timeout=10)]
                    call = channel.unary_stream(f"/{SERVICE}/Stream")(b"a", timeout=10)
                    return [m async for m in call]

            responses = run(main())
    finally:
        server.stop(0.5).wait(5)
    assert responses == ([b"A"] if method == "Echo" else [b"a", b"A"])
    client, server_span = spans(2)
    assert_one_trace(client, server_span, method)


@pytest.mark.parametrize("server_api", ["async", "sync"])
def test_server_spans_say_what_the_instrumented_grpcio_servers_say(server_api: str) -> None:
    # The same grpcio client calls an h2rpc server with rpc.otel and a grpcio server with
    # opentelemetry-instrumentation-grpc's interceptor: the two server spans carry the same
    # attributes (rpc.*, the user agent, net.peer.*), the client's port aside.
    def server_span(serve: Any) -> Any:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with serve(provider) as target, grpc.insecure_channel(target) as channel:
            assert channel.unary_unary(f"/{SERVICE}/Echo")(b"a", timeout=10) == b"A"
        wait_until(lambda: len(exporter.get_finished_spans()) == 1, 5)
        (span,) = exporter.get_finished_spans()
        return span

    @contextlib.contextmanager
    def grpcio_server(provider: Any) -> Any:
        server = grpc.server(
            futures.ThreadPoolExecutor(4),
            interceptors=[server_interceptor(tracer_provider=provider)],
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Echo": HANDLERS["Echo"][1]}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(0.5).wait(5)

    @contextlib.contextmanager
    def h2rpc_server(provider: Any) -> Any:
        otel = rpc.otel.interceptors(tracer_provider=provider)
        generic = rpc.method_handlers_generic_handler(SERVICE, {"Echo": HANDLERS["Echo"][0]})
        server_class = rpc.sync.Server if server_api == "sync" else rpc.Server
        with serving_blocking(server_class([generic], interceptors=otel.server)) as target:
            yield target

    theirs = dict(server_span(grpcio_server).attributes)
    ours = dict(server_span(h2rpc_server).attributes)
    assert theirs["net.peer.ip"] == "127.0.0.1" and theirs["rpc.user_agent"].startswith("grpc-")
    assert ours["net.peer.port"].isdigit() and ours["net.peer.port"] != "0"
    for attributes in (theirs, ours):
        del attributes["net.peer.port"]
    assert ours == theirs
