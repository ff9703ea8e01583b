"""OpenTelemetry (rpc.otel): spans, propagation, message events and duration histograms, with the
SDK's in-memory exporter and metric reader; h2rpc to h2rpc, all four call kinds, both APIs."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

import rpc

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace import StatusCode as SpanStatusCode

import rpc.otel

from .helpers import run, serving, wait_until

SERVICE = "otel.test.Echo"
KINDS = {
    "UU": rpc.Cardinality.UNARY_UNARY,
    "US": rpc.Cardinality.UNARY_STREAM,
    "SU": rpc.Cardinality.STREAM_UNARY,
    "SS": rpc.Cardinality.STREAM_STREAM,
}
APIS = ["async", "async-def", "sync"]


class Telemetry:
    """SDK providers of one test, exporting to memory (no global state)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def interceptors(self, message_events: bool = False) -> rpc.otel.Interceptors:
        return rpc.otel.interceptors(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            message_events=message_events,
        )

    def spans(self, count: int) -> list[Any]:
        wait_until(lambda: len(self.exporter.get_finished_spans()) >= count, 5)
        spans = list(self.exporter.get_finished_spans())
        assert len(spans) == count, spans
        return spans

    def histogram(self, name: str) -> list[Any]:
        """The data points of a histogram (one per attribute set)."""
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        assert metric.unit == "ms"
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def telemetry(caplog: pytest.LogCaptureFixture) -> Any:
    yield Telemetry()
    # e.g. opentelemetry's "Failed to detach context": the server span's context is attached and
    # detached in one context, whichever server and handler kind.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


# ---------------------------------------------------------------------- handlers

#: The span current in each handler, by method (the server span, if it is made current).
SEEN: dict[str, Any] = {}


def _seen(name: str) -> None:
    SEEN[name] = trace.get_current_span().get_span_context()


def _fail(request: bytes, context: Any) -> None:
    if request == b"invalid":
        raise rpc.RpcError(rpc.StatusCode.INVALID_ARGUMENT, "no good")
    if request == b"crash":
        raise RuntimeError("boom")


async def _uu(request: bytes, context: Any) -> bytes:
    _seen("UU")
    _fail(request, context)
    return request.upper()


async def _us(request: bytes, context: Any) -> Any:
    _seen("US")
    _fail(request, context)
    yield request
    yield request.upper()


async def _su(requests: Any, context: Any) -> bytes:
    _seen("SU")
    received = [r async for r in requests]
    _fail(received[0], context)
    return b"+".join(received)


async def _ss(requests: Any, context: Any) -> Any:
    _seen("SS")
    async for request in requests:
        _fail(request, context)
        yield request


def _uu_def(request: bytes, context: Any) -> bytes:
    _seen("UU")
    _fail(request, context)
    return request.upper()


def _us_def(request: bytes, context: Any) -> Any:
    _seen("US")
    _fail(request, context)
    yield request
    yield request.upper()


def _su_def(requests: Any, context: Any) -> bytes:
    _seen("SU")
    received = list(requests)
    _fail(received[0], context)
    return b"+".join(received)


def _ss_def(requests: Any, context: Any) -> Any:
    _seen("SS")
    for request in requests:
        _fail(request, context)
        yield request


ASYNC_HANDLERS = {
    "UU": rpc.unary_unary_rpc_method_handler(_uu),
    "US": rpc.unary_stream_rpc_method_handler(_us),
    "SU": rpc.stream_unary_rpc_method_handler(_su),
    "SS": rpc.stream_stream_rpc_method_handler(_ss),
}
DEF_HANDLERS = {
    "UU": rpc.unary_unary_rpc_method_handler(_uu_def),
    "US": rpc.unary_stream_rpc_method_handler(_us_def),
    "SU": rpc.stream_unary_rpc_method_handler(_su_def),
    "SS": rpc.stream_stream_rpc_method_handler(_ss_def),
}
#: Responses to the requests [b"a", b"b"] (or b"a" alone for unary requests).
EXPECTED = {"UU": [b"A"], "US": [b"a", b"A"], "SU": [b"a+b"], "SS": [b"a", b"b"]}
#: How many messages each side sends for those.
REQUESTS = {"UU": 1, "US": 1, "SU": 2, "SS": 2}


# ---------------------------------------------------------------------- calling


async def _call_async(channel: rpc.Channel, kind: str, first: bytes, read: bool) -> list[bytes]:
    method = getattr(channel, KINDS[kind].name.lower())(f"/{SERVICE}/{kind}")
    requests = [first, b"b"]
    if kind == "UU":
        return [await method(first, timeout=10)]
    if kind == "US":
        call = method(first, timeout=10)
        if read:  # the read() API instead of async iteration
            got = []
            while (message := await call.read()) is not rpc.EOF:
                got.append(message)
            return got
        return [m async for m in call]
    if kind == "SU":
        if read:  # the write() API instead of a request iterator
            call = method(timeout=10)
            for request in requests:
                await call.write(request)
            await call.done_writing()
            return [await call]
        return [await method(iter(requests), timeout=10)]
    return [m async for m in method(iter(requests), timeout=10)]


def _call_sync(channel: rpc.sync.Channel, kind: str, first: bytes, future: bool) -> list[bytes]:
    method = getattr(channel, KINDS[kind].name.lower())(f"/{SERVICE}/{kind}")
    request: Any = first if kind in ("UU", "US") else iter([first, b"b"])
    if kind in ("US", "SS"):
        return list(method(request, timeout=10))
    if future:
        return [method.future(request, timeout=10).result(10)]
    return [method(request, timeout=10)]


def call(
    telemetry: Telemetry,
    api: str,
    kind: str,
    first: bytes = b"a",
    message_events: bool = False,
    variant: bool = False,
) -> list[bytes]:
    """One call of ``kind`` through instrumented client and server; its responses."""
    otel = telemetry.interceptors(message_events)
    if api == "sync":
        server = rpc.sync.Server(
            [rpc.method_handlers_generic_handler(SERVICE, DEF_HANDLERS)],
            interceptors=otel.server,
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with rpc.sync.Channel(f"127.0.0.1:{port}", interceptors=otel.sync_client) as channel:
                return _call_sync(channel, kind, first, variant)
        finally:
            server.stop(0.5)

    handlers = ASYNC_HANDLERS if api == "async" else DEF_HANDLERS

    async def main() -> list[bytes]:
        server = rpc.Server(
            [rpc.method_handlers_generic_handler(SERVICE, handlers)], interceptors=otel.server
        )
        async with serving(server) as target:
            async with rpc.Channel(target, interceptors=otel.client) as channel:
                return await _call_async(channel, kind, first, variant)

    return run(main())  # type: ignore[no-any-return]


def client_and_server(spans: list[Any]) -> tuple[Any, Any]:
    (client,) = [s for s in spans if s.kind == SpanKind.CLIENT]
    (server,) = [s for s in spans if s.kind == SpanKind.SERVER]
    return client, server


def _events(span: Any) -> list[tuple[str, int]]:
    return [
        (e.attributes["message.type"], e.attributes["message.id"])
        for e in span.events
        if e.name == "message"
    ]


# ---------------------------------------------------------------------- h2rpc to h2rpc


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("api", APIS)
def test_one_trace_client_parent_of_server_with_semconv_attributes(
    telemetry: Telemetry, api: str, kind: str
) -> None:
    SEEN.clear()
    assert call(telemetry, api, kind) == EXPECTED[kind]
    client, server = client_and_server(telemetry.spans(2))
    name = f"{SERVICE}/{kind}"
    assert client.name == server.name == name
    assert client.context.trace_id == server.context.trace_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert server.parent.is_remote
    assert client.parent is None  # no span was current in the test
    rpc_attributes = {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": kind,
        "rpc.grpc.status_code": 0,
    }
    assert dict(client.attributes) == rpc_attributes
    # The server's span also says who called (as opentelemetry-instrumentation-grpc's does).
    port = server.attributes["net.peer.port"]
    assert port.isdigit()
    assert dict(server.attributes) == {
        **rpc_attributes,
        "rpc.user_agent": f"h2rpc-python/{rpc.__version__}",
        "net.peer.ip": "127.0.0.1",
        "net.peer.port": port,
        "net.peer.name": "localhost",
    }
    for span in (client, server):
        assert span.status.status_code == SpanStatusCode.UNSET
        assert not span.events  # message events are off by default
    # The server span is current while the handler runs (async def, def in the pool, threads).
    assert SEEN[kind].span_id == server.context.span_id


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("api", APIS)
def test_message_events_number_each_direction(telemetry: Telemetry, api: str, kind: str) -> None:
    call(telemetry, api, kind, message_events=True)
    client, server = client_and_server(telemetry.spans(2))
    requests, responses = REQUESTS[kind], len(EXPECTED[kind])
    sent = [("SENT", i) for i in range(1, requests + 1)]
    received = [("RECEIVED", i) for i in range(1, responses + 1)]
    assert sorted(e for e in _events(client) if e[0] == "SENT") == sent
    assert sorted(e for e in _events(client) if e[0] == "RECEIVED") == received
    assert sorted(e for e in _events(server) if e[0] == "RECEIVED") == [
        ("RECEIVED", i) for i in range(1, requests + 1)
    ]
    assert sorted(e for e in _events(server) if e[0] == "SENT") == [
        ("SENT", i) for i in range(1, responses + 1)
    ]


@pytest.mark.parametrize("kind", list(KINDS))
def test_async_read_and_write_apis_and_sync_futures_end_their_spans(
    telemetry: Telemetry, kind: str
) -> None:
    """rpc.Channel's read()/write() (US, SU) and rpc.sync's .future() (UU, SU)."""
    api = "async" if kind in ("US", "SU") else "sync"
    assert call(telemetry, api, kind, message_events=True, variant=True) == EXPECTED[kind]
    client, server = client_and_server(telemetry.spans(2))
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert len(_events(client)) == REQUESTS[kind] + len(EXPECTED[kind])
    assert client.context.trace_id == server.context.trace_id


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("api", APIS)
def test_client_error_code_is_an_error_on_the_client_only(
    telemetry: Telemetry, api: str, kind: str
) -> None:
    with pytest.raises(rpc.RpcError) as caught:
        call(telemetry, api, kind, first=b"invalid")
    assert caught.value.code() == rpc.StatusCode.INVALID_ARGUMENT
    client, server = client_and_server(telemetry.spans(2))
    for span in (client, server):
        assert span.attributes["rpc.grpc.status_code"] == rpc.StatusCode.INVALID_ARGUMENT.value
    assert client.status.status_code == SpanStatusCode.ERROR
    assert "no good" in (client.status.description or "")
    # INVALID_ARGUMENT blames the client: not a server error (semantic conventions).
    assert server.status.status_code == SpanStatusCode.UNSET


@pytest.mark.parametrize("api", APIS)
def test_handler_failure_is_an_error_on_both_sides(telemetry: Telemetry, api: str) -> None:
    with pytest.raises(rpc.RpcError) as caught:
        call(telemetry, api, "UU", first=b"crash")
    assert caught.value.code() == rpc.StatusCode.UNKNOWN
    client, server = client_and_server(telemetry.spans(2))
    for span in (client, server):
        assert span.attributes["rpc.grpc.status_code"] == rpc.StatusCode.UNKNOWN.value
        assert span.status.status_code == SpanStatusCode.ERROR


def test_unimplemented_method_has_a_client_span_with_its_code(telemetry: Telemetry) -> None:
    otel = telemetry.interceptors()

    async def main() -> None:
        server = rpc.Server(interceptors=otel.server)
        async with serving(server) as target:
            async with rpc.Channel(target, interceptors=otel.client) as channel:
                with pytest.raises(rpc.RpcError) as caught:
                    await channel.unary_unary("/no.Such/Method")(b"x", timeout=10)
                assert caught.value.code() == rpc.StatusCode.UNIMPLEMENTED

    run(main())
    (client,) = telemetry.spans(1)  # no handler, so no server interceptor ran
    assert client.name == "no.Such/Method"
    assert client.attributes["rpc.grpc.status_code"] == rpc.StatusCode.UNIMPLEMENTED.value
    assert client.status.status_code == SpanStatusCode.ERROR


@pytest.mark.parametrize("api", APIS)
def test_duration_histograms_by_method_and_code(telemetry: Telemetry, api: str) -> None:
    call(telemetry, api, "UU")
    call(telemetry, api, "UU")
    with pytest.raises(rpc.RpcError):
        call(telemetry, api, "UU", first=b"invalid")
    telemetry.spans(6)
    for side in ("client", "server"):
        points = {
            p.attributes["rpc.grpc.status_code"]: p
            for p in telemetry.histogram(f"rpc.{side}.duration")
        }
        assert set(points) == {0, rpc.StatusCode.INVALID_ARGUMENT.value}, side
        assert points[0].count == 2
        assert points[rpc.StatusCode.INVALID_ARGUMENT.value].count == 1
        assert dict(points[0].attributes) == {
            "rpc.system": "grpc",
            "rpc.service": SERVICE,
            "rpc.method": "UU",
            "rpc.grpc.status_code": 0,
        }
        assert points[0].sum >= 0


@pytest.mark.parametrize("api", ["async", "sync"])
def test_client_span_is_a_child_of_the_current_span(telemetry: Telemetry, api: str) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    if api == "sync":
        with tracer.start_as_current_span("outer") as outer:
            call(telemetry, api, "UU")
    else:
        otel = telemetry.interceptors()

        async def main() -> None:
            server = rpc.Server(
                [rpc.method_handlers_generic_handler(SERVICE, ASYNC_HANDLERS)],
                interceptors=otel.server,
            )
            async with serving(server) as target:
                async with rpc.Channel(target, interceptors=otel.client) as channel:
                    with tracer.start_as_current_span("outer"):
                        await channel.unary_unary(f"/{SERVICE}/UU")(b"a", timeout=10)

        run(main())
    spans = telemetry.spans(3)
    (outer_span,) = [s for s in spans if s.name == "outer"]
    client, server = client_and_server(spans)
    assert client.parent.span_id == outer_span.context.span_id
    assert len({s.context.trace_id for s in spans}) == 1
    if api == "sync":
        assert outer.get_span_context().trace_id == server.context.trace_id


def test_other_client_metadata_is_kept(telemetry: Telemetry) -> None:
    otel = telemetry.interceptors()

    def echo_metadata(request: bytes, context: Any) -> bytes:
        metadata = context.invocation_metadata()
        return f"{metadata.get('x-tag')}|{'traceparent' in metadata}".encode()

    server = rpc.sync.Server(
        [
            rpc.method_handlers_generic_handler(
                SERVICE, {"M": rpc.unary_unary_rpc_method_handler(echo_metadata)}
            )
        ],
        interceptors=otel.server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}", interceptors=otel.sync_client) as channel:
            method = channel.unary_unary(f"/{SERVICE}/M")
            assert method(b"", metadata=[("x-tag", "t")], timeout=10) == b"t|True"
            assert method(b"", timeout=10) == b"None|True"
    finally:
        server.stop(0.5)


def test_import_needs_no_opentelemetry_until_enabled() -> None:
    """``import rpc.otel`` works without opentelemetry; enabling names the extra."""
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None\n"  # as if not installed
        "import rpc.otel\n"
        "try:\n"
        "    rpc.otel.interceptors()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "h2rpc[otel]" in output
