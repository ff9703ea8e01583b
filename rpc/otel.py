"""OpenTelemetry for h2rpc: spans, context propagation and duration histograms, as interceptors.

Optional: it needs ``opentelemetry-api`` (``pip install 'h2rpc[otel]'``), imported only when an
interceptor is made, so ``import rpc.otel`` works without it. Everything here is built on the
public interceptor API (``rpc.interceptors``); nothing else in h2rpc knows about it.

One call gives them all::

    telemetry = rpc.otel.interceptors()                        # the global providers
    server = rpc.Server(interceptors=telemetry.server)           # rpc.sync.Server too
    channel = rpc.Channel(target, interceptors=telemetry.client)
    blocking = rpc.sync.Channel(target, interceptors=telemetry.sync_client)

Per the RPC semantic conventions: a span per call, kind CLIENT or SERVER, named
``package.Service/Method``, with ``rpc.system`` ("grpc"), ``rpc.service``, ``rpc.method`` and
``rpc.grpc.status_code`` (the server's also with the client's ``rpc.user_agent`` and
``net.peer.*``, as ``opentelemetry-instrumentation-grpc`` says them on a grpcio server); its
status is ERROR for any non-OK code on the client, and on the
server for the codes that blame the server (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
UNAVAILABLE, DATA_LOSS). With ``message_events=True``, a ``message`` event per message
(``message.type`` SENT or RECEIVED, ``message.id`` from 1 in each direction). The client injects
the current context into the request metadata with the global propagator (W3C ``traceparent``
by default); the server extracts it, makes its span a child, and makes the span current while
the handler runs. Histograms ``rpc.client.duration`` and ``rpc.server.duration`` (ms), with
``rpc.system``, ``rpc.service``, ``rpc.method`` and ``rpc.grpc.status_code``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any, Callable, NamedTuple, Optional

from . import (
    EOF,
    ClientCallDetails,
    Interceptor,
    InterceptorContext,
    Metadata,
    RpcError,
    ServerCallDetails,
    Status,
    StatusCode,
    __version__,
)

__all__ = [
    "Interceptors",
    "client_interceptor",
    "interceptors",
    "server_interceptor",
    "sync_client_interceptor",
]

#: The codes for which a server span's status is ERROR (the others are the client's doing).
SERVER_ERROR_CODES = frozenset(
    {
        StatusCode.UNKNOWN,
        StatusCode.DEADLINE_EXCEEDED,
        StatusCode.UNIMPLEMENTED,
        StatusCode.INTERNAL,
        StatusCode.UNAVAILABLE,
        StatusCode.DATA_LOSS,
    }
)

_INSTRUMENTATION = "h2rpc"


def _opentelemetry() -> Any:
    """The opentelemetry API modules, imported on first use."""
    try:
        from opentelemetry import context, metrics, propagate, trace
    except ImportError as exc:
        raise ImportError(
            "rpc.otel needs the OpenTelemetry API: pip install 'h2rpc[otel]' (or opentelemetry-api)"
        ) from exc
    return _Api(context, metrics, propagate, trace)


class _Api(NamedTuple):
    context: Any
    metrics: Any
    propagate: Any
    trace: Any


def _names(method: Any) -> tuple[str, dict[str, Any]]:
    """The span name (``package.Service/Method``) and the attributes of a method's path."""
    if isinstance(method, bytes):
        method = method.decode()
    name = method[1:] if method.startswith("/") else method
    service, _, rpc_method = name.rpartition("/")
    return name, {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc_method}


def _client_attributes(details: ServerCallDetails, context: InterceptorContext) -> dict[str, Any]:
    """What a server span says of its client, as ``opentelemetry-instrumentation-grpc``'s server
    interceptor says it for grpcio (same keys, same values, so that spans from both kinds of
    server read alike): the user agent, and the peer's address from ``context.peer()``
    (``ipv4:10.0.0.1:5000``, ``ipv6:[::1]:5000``; nothing for Unix sockets)."""
    attributes: dict[str, Any] = {}
    user_agent = details.invocation_metadata.get("user-agent")
    if isinstance(user_agent, str):
        attributes["rpc.user_agent"] = user_agent
    peer = context.peer()
    if peer.startswith(("ipv4:", "ipv6:")):
        ip, _, port = peer.split(",")[0].split(":", 1)[1].rpartition(":")
        attributes["net.peer.ip"] = ip
        attributes["net.peer.port"] = port  # a string, as that package sets it
        if ip in ("[::1]", "127.0.0.1"):
            attributes["net.peer.name"] = "localhost"
    return attributes


def _code_of(exc: BaseException) -> tuple[StatusCode, str]:
    if isinstance(exc, RpcError):
        return exc.code(), exc.details() or ""
    if isinstance(exc, asyncio.CancelledError):
        return StatusCode.CANCELLED, "cancelled"
    return StatusCode.UNKNOWN, repr(exc)


class _Telemetry:
    """One side's tracer, histogram and options (made once per interceptor)."""

    def __init__(
        self, side: str, tracer_provider: Any, meter_provider: Any, message_events: bool
    ) -> None:
        api = _opentelemetry()
        self.api = api
        self.side = side
        self.tracer = api.trace.get_tracer(
            _INSTRUMENTATION, __version__, tracer_provider=tracer_provider
        )
        meter = api.metrics.get_meter(_INSTRUMENTATION, __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            f"rpc.{side}.duration",
            unit="ms",
            description=f"Duration of RPCs, measured on the {side}",
        )
        self.kind = api.trace.SpanKind.CLIENT if side == "client" else api.trace.SpanKind.SERVER
        self.message_events = message_events

    def record(self, span: Any, attributes: dict[str, Any]) -> _Record:
        return _Record(self, span, attributes)

    def begin_client(self, details: Any, as_metadata: bool) -> tuple[_Record, ClientCallDetails]:
        """The client span of a call, and the call's details with the context injected."""
        api = self.api
        name, attributes = _names(details.method)
        span = self.tracer.start_span(name, kind=self.kind, attributes=attributes)
        carrier: dict[str, str] = {}
        api.propagate.inject(carrier, context=api.trace.set_span_in_context(span))
        metadata = getattr(details, "metadata", None)
        pairs = [*(metadata or ()), *carrier.items()]
        new_details = ClientCallDetails(
            details.method,
            getattr(details, "timeout", None),
            Metadata.from_pairs(pairs) if as_metadata else tuple(pairs),
            getattr(details, "credentials", None),
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )
        return self.record(span, attributes), new_details


class _Record:
    """One call's span: its message events and its end (once)."""

    __slots__ = ("_attributes", "_done", "_received", "_sent", "_span", "_start", "_telemetry")

    def __init__(self, telemetry: _Telemetry, span: Any, attributes: dict[str, Any]) -> None:
        self._telemetry = telemetry
        self._span = span
        self._attributes = attributes
        self._start = time.perf_counter()
        self._sent = 0
        self._received = 0
        self._done = False

    @property
    def span(self) -> Any:
        return self._span

    def sent(self) -> None:
        if self._telemetry.message_events:
            self._sent += 1
            self._span.add_event("message", {"message.type": "SENT", "message.id": self._sent})

    def received(self) -> None:
        if self._telemetry.message_events:
            self._received += 1
            self._span.add_event(
                "message", {"message.type": "RECEIVED", "message.id": self._received}
            )

    def sent_message(self, message: Any) -> Any:
        self.sent()
        return message

    def received_message(self, message: Any) -> Any:
        self.received()
        return message

    def end(self, code: StatusCode, message: str = "") -> None:
        if self._done:
            return
        self._done = True
        telemetry = self._telemetry
        span = self._span
        code = StatusCode(code)
        span.set_attribute("rpc.grpc.status_code", int(code))
        if code != StatusCode.OK and (telemetry.side == "client" or code in SERVER_ERROR_CODES):
            trace = telemetry.api.trace
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{code.name}: {message}"))
        span.end()
        attributes = dict(self._attributes)
        attributes["rpc.grpc.status_code"] = int(code)
        telemetry.duration.record((time.perf_counter() - self._start) * 1000, attributes)

    def fail(self, exc: BaseException) -> None:
        self.end(*_code_of(exc))


# ---------------------------------------------------------------------- server


class _ServerInterceptor(Interceptor):
    """The server span of every call, on ``rpc.Server`` and ``rpc.sync.Server``."""

    def __init__(self, telemetry: _Telemetry) -> None:
        self._telemetry = telemetry

    def intercept(
        self, details: ServerCallDetails, request: Any, context: InterceptorContext
    ) -> Generator[Any, Optional[Status], Optional[Status]]:
        telemetry = self._telemetry
        api = telemetry.api
        name, attributes = _names(details.method)
        # The client's context, or none: never whatever happens to be current on the server.
        parent = api.propagate.extract(details.invocation_metadata, context=api.context.Context())
        span = telemetry.tracer.start_span(
            name,
            context=parent,
            kind=telemetry.kind,
            attributes={**attributes, **_client_attributes(details, context)},
        )
        record = telemetry.record(span, attributes)  # the duration metric's: not per client
        if telemetry.message_events:
            context.wrap_requests(record.received_message)
            context.wrap_responses(record.sent_message)
        token = api.context.attach(api.trace.set_span_in_context(span, parent))
        status = yield request
        api.context.detach(token)
        if status is None:  # the client is gone
            record.end(StatusCode.CANCELLED, "the client is gone")
        else:
            record.end(status.code, status.message)
        return None


# ---------------------------------------------------------------------- client, blocking


def _counted(requests: Any, record: _Record) -> Iterator[Any]:
    for message in requests:
        record.sent()
        yield message


class _SyncStreamCall:
    """A response stream's call (``rpc.sync.Channel``) whose span ends with the stream."""

    def __init__(self, call: Any, record: _Record) -> None:
        self._call = call
        self._record = record

    def __iter__(self) -> _SyncStreamCall:
        return self

    def __next__(self) -> Any:
        try:
            message = next(self._call)
        except StopIteration:
            self._record.end(self._call.code(), self._call.details() or "")
            raise
        except BaseException as exc:
            self._record.fail(exc)
            raise
        self._record.received()
        return message

    def code(self) -> Any:
        code = self._call.code()
        self._record.end(code, self._call.details() or "")
        return code

    def cancel(self) -> bool:
        cancelled = bool(self._call.cancel())
        if cancelled:
            self._record.end(StatusCode.CANCELLED, "cancelled by the client")
        return cancelled

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _SyncClientInterceptor:
    """grpcio's blocking client interceptor shapes (``def``), all four kinds."""

    def __init__(self, telemetry: _Telemetry) -> None:
        self._telemetry = telemetry

    def _start(
        self, continuation: Callable[..., Any], details: Any, request: Any, streaming: bool
    ) -> tuple[_Record, Any]:
        """Begin the span and start the call; the record and what the continuation returned."""
        record, details = self._telemetry.begin_client(details, as_metadata=False)
        if not streaming:
            record.sent()
        elif self._telemetry.message_events:
            request = _counted(request, record)
        try:
            return record, continuation(details, request)
        except BaseException as exc:
            record.fail(exc)
            raise

    def _unary_response(
        self, continuation: Callable[..., Any], details: Any, request: Any, streaming: bool
    ) -> Any:
        record, outcome = self._start(continuation, details, request, streaming)
        add_done_callback = getattr(outcome, "add_done_callback", None)
        if add_done_callback is None:  # an inner interceptor answered with the response
            record.received()
            record.end(StatusCode.OK)
        else:  # a finished call: at once; a .future(): when it is done
            add_done_callback(lambda future: _future_done(future, record))
        return outcome

    def _stream_response(
        self, continuation: Callable[..., Any], details: Any, request: Any, streaming: bool
    ) -> Any:
        record, call = self._start(continuation, details, request, streaming)
        return _SyncStreamCall(call, record)

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return self._unary_response(continuation, client_call_details, request, False)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._unary_response(continuation, client_call_details, request_iterator, True)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return self._stream_response(continuation, client_call_details, request, False)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._stream_response(continuation, client_call_details, request_iterator, True)


def _future_done(future: Any, record: _Record) -> None:
    code = future.code()
    if code == StatusCode.OK:
        record.received()
    record.end(code, future.details() or "")


# ---------------------------------------------------------------------- client, asyncio


async def _async_counted(requests: Any, record: _Record) -> AsyncIterator[Any]:
    async for message in requests:
        record.sent()
        yield message


class _AsyncCall:
    """A call of ``rpc.Channel`` whose span ends with it; the rest of its API passes through."""

    def __init__(self, call: Any, record: _Record) -> None:
        self._call = call
        self._record = record

    async def _finish(self) -> None:
        call = self._call
        self._record.end(await call.code(), await call.details() or "")

    async def code(self) -> Any:
        await self._finish()
        return await self._call.code()

    def cancel(self) -> bool:
        cancelled = bool(self._call.cancel())
        if cancelled:
            self._record.end(StatusCode.CANCELLED, "cancelled by the client")
        return cancelled

    async def write(self, message: Any, **kwargs: Any) -> None:
        await self._call.write(message, **kwargs)
        self._record.sent()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _AsyncUnaryResponseCall(_AsyncCall):
    def __await__(self) -> Generator[Any, None, Any]:
        return self._response().__await__()

    async def _response(self) -> Any:
        try:
            response = await self._call
        except BaseException as exc:
            self._record.fail(exc)
            raise
        self._record.received()
        self._record.end(StatusCode.OK)
        return response


class _AsyncStreamResponseCall(_AsyncCall):
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        record = self._record
        try:
            async for message in self._call:
                record.received()
                yield message
        except GeneratorExit:  # the caller stopped iterating; the call goes on
            raise
        except BaseException as exc:
            record.fail(exc)
            raise
        await self._finish()

    async def read(self) -> Any:
        try:
            message = await self._call.read()
        except BaseException as exc:
            self._record.fail(exc)
            raise
        if message is EOF:
            await self._finish()
        else:
            self._record.received()
        return message


class _AsyncClientInterceptor:
    """grpc.aio's client interceptor shapes (``async def``), all four kinds."""

    def __init__(self, telemetry: _Telemetry) -> None:
        self._telemetry = telemetry

    async def _intercept(
        self,
        continuation: Callable[..., Any],
        details: Any,
        request: Any,
        request_streaming: bool,
        call_class: type[_AsyncCall],
    ) -> Any:
        record, details = self._telemetry.begin_client(details, as_metadata=True)
        if not request_streaming:
            record.sent()
        elif self._telemetry.message_events and request is not None:
            if hasattr(request, "__aiter__"):
                request = _async_counted(request, record)
            else:
                request = _counted(request, record)
        try:
            call = await continuation(details, request)
        except BaseException as exc:
            record.fail(exc)
            raise
        return call_class(call, record)

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await self._intercept(
            continuation, client_call_details, request, False, _AsyncUnaryResponseCall
        )

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(
            continuation, client_call_details, request_iterator, True, _AsyncUnaryResponseCall
        )

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await self._intercept(
            continuation, client_call_details, request, False, _AsyncStreamResponseCall
        )

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await self._intercept(
            continuation, client_call_details, request_iterator, True, _AsyncStreamResponseCall
        )


# ---------------------------------------------------------------------- the public API


def client_interceptor(
    *, tracer_provider: Any = None, meter_provider: Any = None, message_events: bool = False
) -> Any:
    """The client interceptor for ``rpc.Channel(target, interceptors=[...])`` (all four kinds).

    ``tracer_provider``/``meter_provider``: None for the global ones (set later too: the
    API's proxies follow). ``message_events``: an event per message sent and received.
    """
    return _AsyncClientInterceptor(
        _Telemetry("client", tracer_provider, meter_provider, message_events)
    )


def sync_client_interceptor(
    *, tracer_provider: Any = None, meter_provider: Any = None, message_events: bool = False
) -> Any:
    """The client interceptor for ``rpc.sync.Channel(target, interceptors=[...])``."""
    return _SyncClientInterceptor(
        _Telemetry("client", tracer_provider, meter_provider, message_events)
    )


def server_interceptor(
    *, tracer_provider: Any = None, meter_provider: Any = None, message_events: bool = False
) -> Interceptor:
    """The server interceptor (an ``rpc.Interceptor``) for ``rpc.Server(interceptors=[...])``
    and ``rpc.sync.Server``; put it first, so that its span covers the others."""
    return _ServerInterceptor(_Telemetry("server", tracer_provider, meter_provider, message_events))


class Interceptors(NamedTuple):
    """What ``interceptors()`` gives: a list for each place interceptors go."""

    #: For ``rpc.Channel(target, interceptors=...)``.
    client: list[Any]
    #: For ``rpc.sync.Channel(target, interceptors=...)``.
    sync_client: list[Any]
    #: For ``rpc.Server(interceptors=...)`` and ``rpc.sync.Server(interceptors=...)``.
    server: list[Any]


def interceptors(
    *, tracer_provider: Any = None, meter_provider: Any = None, message_events: bool = False
) -> Interceptors:
    """OpenTelemetry in one call: the interceptors of both clients and the servers."""
    options: dict[str, Any] = {
        "tracer_provider": tracer_provider,
        "meter_provider": meter_provider,
        "message_events": message_events,
    }
    return Interceptors(
        client=[client_interceptor(**options)],
        sync_client=[sync_client_interceptor(**options)],
        server=[server_interceptor(**options)],
    )
