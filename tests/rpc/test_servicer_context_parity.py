"""ServicerContext parity with grpcio: callbacks, grpcio status codes, rich statuses, identity.

Handlers written for grpcio must behave the same on h2rpc's three handler kinds (``async def``
on ``rpc.Server``, ``def`` in its thread pool, ``def`` on ``rpc.sync.Server``). Where grpcio's
behaviour is the reference (rich status details, ``auth_context()``), a real grpcio peer in this
process is compared with h2rpc for the same input.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any, Callable

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
import trustme
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2
from grpc_status import rpc_status

import rpc
from tests.rpc.helpers import wait_until

# ---------------------------------------------------------------------- servers of each kind


@contextlib.contextmanager
def h2rpc_server(
    kind: str,
    handlers: dict[str, rpc.MethodHandler],
    *,
    ssl_context: ssl.SSLContext | None = None,
    service: Any = None,
) -> Iterator[int]:
    """Serve ``handlers`` (under t.T) and ``service`` (descriptor, servicer) on a loopback port.

    ``kind``: "async" (rpc.Server on a loop in a thread) or "sync" (rpc.sync.Server).
    """
    generic = [rpc.method_handlers_generic_handler("t.T", handlers)]
    if kind == "sync":
        server = rpc.sync.Server(generic, max_workers=4)
        if service is not None:
            server.add_service(*service)
        port = (
            server.add_secure_port("127.0.0.1:0", ssl_context)
            if ssl_context
            else server.add_insecure_port("127.0.0.1:0")
        )
        server.start()
        try:
            yield port
        finally:
            server.stop(0.5)
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    async def make() -> tuple[rpc.Server, int]:
        aserver = rpc.Server(generic)
        if service is not None:
            aserver.add_service(*service)
        aport = (
            aserver.add_secure_port("127.0.0.1:0", ssl_context)
            if ssl_context
            else aserver.add_insecure_port("127.0.0.1:0")
        )
        await aserver.start()
        return aserver, aport

    aserver, port = on_loop(make())
    try:
        yield port
    finally:
        on_loop(aserver.stop(0.5))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


SERVER_KINDS = ["async", "sync"]


def both_handler_kinds(
    body: Callable[[Any, Any], Any],
) -> list[tuple[str, str, Callable[..., Any]]]:
    """(server kind, handler kind, handler) for the three ways h2rpc runs a handler."""

    async def async_handler(request: bytes, context: Any) -> Any:
        result = body(request, context)
        # grpc.aio's context methods that end the call (abort, ...) are coroutines: the body
        # returns them for this wrapper to await.
        return await result if inspect.isawaitable(result) else result

    def def_handler(request: bytes, context: Any) -> Any:
        return body(request, context)

    return [
        ("async", "async-def", async_handler),
        ("async", "def-in-pool", def_handler),
        ("sync", "def", def_handler),
    ]


HANDLER_KINDS = ["async-def", "def-in-pool", "def"]


def handler_of(kind: str, body: Callable[[Any, Any], Any]) -> tuple[str, Callable[..., Any]]:
    for server_kind, handler_kind, handler in both_handler_kinds(body):
        if handler_kind == kind:
            return server_kind, handler
    raise AssertionError(kind)


# ---------------------------------------------------------------------- add_callback


@pytest.mark.parametrize("handler_kind", HANDLER_KINDS)
def test_add_callback_calls_back_with_no_argument_and_refuses_after_the_end(
    handler_kind: str,
) -> None:
    calls: list[tuple[Any, ...]] = []
    results: list[bool] = []
    contexts: list[Any] = []

    def body(request: bytes, context: Any) -> bytes:
        results.append(context.add_callback(lambda *args: calls.append(args)))
        contexts.append(context)
        return b"ok"

    server_kind, handler = handler_of(handler_kind, body)
    with h2rpc_server(server_kind, {"M": rpc.unary_unary_rpc_method_handler(handler)}) as port:
        with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
            assert channel.unary_unary("/t.T/M")(b"", timeout=5) == b"ok"
        wait_until(lambda: bool(calls))
        assert calls == [()]
        assert results == [True]
        # grpcio: a callback added after the call terminated is refused and never called.
        late: list[Any] = []
        assert contexts[0].add_callback(lambda: late.append(1)) is False
        assert late == []


@pytest.mark.parametrize("server_kind", SERVER_KINDS)
def test_grpcio_health_checkings_watch_releases_its_watcher_when_the_client_cancels(
    server_kind: str,
) -> None:
    """grpcio-health-checking's Watch blocks its handler until the add_callback callback fires;
    before, h2rpc passed the context as an argument and the watcher leaked (thread and entry)."""
    servicer = health.HealthServicer()
    servicer.set("svc", health_pb2.HealthCheckResponse.SERVING)
    descriptor = health_pb2.DESCRIPTOR.services_by_name["Health"]
    with h2rpc_server(server_kind, {}, service=(descriptor, servicer)) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = channel.unary_stream(
                "/grpc.health.v1.Health/Watch",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            call = watch(health_pb2.HealthCheckRequest(service="svc"), timeout=10)
            first = next(call)
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            wait_until(lambda: len(servicer._send_response_callbacks.get("svc", ())) == 1)
            call.cancel()
            wait_until(lambda: not servicer._send_response_callbacks.get("svc"))


# ---------------------------------------------------------------------- grpc.StatusCode


@pytest.mark.parametrize("handler_kind", HANDLER_KINDS)
def test_abort_and_set_code_take_grpcio_status_codes(handler_kind: str) -> None:
    def body(request: bytes, context: Any) -> bytes:
        if request == b"abort":
            return context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        context.set_code(grpc.StatusCode.ALREADY_EXISTS)
        context.set_details("exists")
        return b""

    server_kind, handler = handler_of(handler_kind, body)
    with h2rpc_server(server_kind, {"M": rpc.unary_unary_rpc_method_handler(handler)}) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary("/t.T/M")
            for request, code, details in (
                (b"abort", grpc.StatusCode.NOT_FOUND, "no such thing"),
                (b"set", grpc.StatusCode.ALREADY_EXISTS, "exists"),
            ):
                with pytest.raises(grpc.RpcError) as info:
                    method(request, timeout=5)
                assert info.value.code() is code
                assert info.value.details() == details


# ---------------------------------------------------------------------- rich statuses


def bad_request() -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="name", description="empty")
        ]
    )


def rich_status_proto() -> status_pb2.Status:
    detail = any_pb2.Any()
    detail.Pack(bad_request())
    return status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message="bad name, ünïcode", details=[detail]
    )


RICH_FORMS: dict[str, Callable[[Any], Any]] = {
    # grpcio-status's form: a grpc.Status with the details in its trailing metadata.
    "grpc_status.to_status": lambda context: context.abort_with_status(
        rpc_status.to_status(rich_status_proto())
    ),
    # The google.rpc.Status message itself.
    "google.rpc.Status": lambda context: context.abort_with_status(rich_status_proto()),
    # h2rpc's helper, raised or given to abort_with_status.
    "raise rpc.rich_error": lambda context: (_ for _ in ()).throw(
        rpc.rich_error(rpc.StatusCode.INVALID_ARGUMENT, "bad name, ünïcode", [bad_request()])
    ),
    "abort_with_status(rpc.rich_error)": lambda context: context.abort_with_status(
        rpc.rich_error(rpc.StatusCode.INVALID_ARGUMENT, "bad name, ünïcode", [bad_request()])
    ),
}


@pytest.mark.parametrize("form", list(RICH_FORMS))
@pytest.mark.parametrize("handler_kind", HANDLER_KINDS)
def test_rich_statuses_reach_grpcio_status_on_a_grpcio_client(handler_kind: str, form: str) -> None:
    def body(request: bytes, context: Any) -> Any:
        return RICH_FORMS[form](context)

    server_kind, handler = handler_of(handler_kind, body)
    with h2rpc_server(server_kind, {"M": rpc.unary_unary_rpc_method_handler(handler)}) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as info:
                channel.unary_unary("/t.T/M")(b"", timeout=5)
    status = rpc_status.from_call(info.value)
    assert status is not None
    assert status == rich_status_proto()
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    received = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(received) and received == bad_request()


def test_rich_details_from_a_grpcio_server_reach_an_h2rpc_client() -> None:
    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort_with_status(rpc_status.to_status(rich_status_proto()))
        raise AssertionError("not reached")

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.T", {"M": grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(rpc.RpcError) as info:
                channel.unary_unary("/t.T/M")(b"", timeout=5)
    finally:
        server.stop(0)
    error = info.value
    assert error.code() == rpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "bad name, ünïcode"
    [detail] = error.rich_details()
    received = error_details_pb2.BadRequest()
    assert detail.Is(error_details_pb2.BadRequest.DESCRIPTOR)
    assert detail.Unpack(received) and received == bad_request()
    assert error.rich_status() == rich_status_proto()


def test_rich_status_encoding_matches_protobufs_own() -> None:
    from rpc._status_details import decode_status_details, encode_status_details

    for status in (
        rich_status_proto(),
        status_pb2.Status(),
        status_pb2.Status(code=-1, message="negative"),
        status_pb2.Status(code=code_pb2.UNAVAILABLE, message="x" * 300),
    ):
        encoded = encode_status_details(status.code, status.message, status.details)
        assert status_pb2.Status.FromString(encoded) == status
        assert decode_status_details(status.SerializeToString()) == (
            status.code,
            status.message,
            list(status.details),
        )


# ---------------------------------------------------------------------- peer and identity


class Certificates:
    def __init__(self) -> None:
        ca = trustme.CA()
        self.ca_pem = ca.cert_pem.bytes()
        server = ca.issue_cert("localhost", "127.0.0.1")
        self.server_chain = b"".join(p.bytes() for p in server.cert_chain_pems)
        self.server_key = server.private_key_pem.bytes()
        client = ca.issue_cert("client.example", "alice@example.com", common_name="alice")
        self.client_chain = b"".join(p.bytes() for p in client.cert_chain_pems)
        self.client_key = client.private_key_pem.bytes()


@pytest.fixture(scope="module")
def certificates() -> Certificates:
    return Certificates()


def grpcio_auth_context(certs: Certificates | None) -> tuple[dict[str, list[bytes]], Any]:
    """What a grpcio server's handler sees for a grpcio client with the client certificate."""
    seen: dict[str, Any] = {}

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen["auth"] = context.auth_context()
        seen["identities"] = context.peer_identities()
        seen["key"] = context.peer_identity_key()
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.T", {"M": grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    if certs is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        credentials = grpc.ssl_server_credentials(
            [(certs.server_key, certs.server_chain)],
            root_certificates=certs.ca_pem,
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        call_with_grpcio(port, certs)
    finally:
        server.stop(0)
    return seen["auth"], (seen["identities"], seen["key"])


def call_with_grpcio(port: int, certs: Certificates | None) -> None:
    if certs is None:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    else:
        credentials = grpc.ssl_channel_credentials(
            certs.ca_pem, certs.client_key, certs.client_chain
        )
        channel = grpc.secure_channel(f"localhost:{port}", credentials)
    with channel:
        channel.unary_unary("/t.T/M")(b"", timeout=10)


#: grpcio keys h2rpc does not produce: the client's SNI and the key exchange group (Python's
#: ssl module does not expose the group; SNI would need a callback on the user's context).
NOT_PRODUCED = {"ssl_requested_server_name", "ssl_negotiated_key_exchange_group"}


@pytest.mark.parametrize("server_kind", SERVER_KINDS)
@pytest.mark.parametrize("tls", [False, True], ids=["insecure", "mtls"])
def test_auth_context_and_peer_identities_match_grpcio(
    server_kind: str, tls: bool, certificates: Certificates
) -> None:
    certs = certificates if tls else None
    expected, expected_identity = grpcio_auth_context(certs)
    seen: dict[str, Any] = {}

    def handler(request: bytes, context: Any) -> bytes:
        seen["auth"] = context.auth_context()
        seen["identity"] = (context.peer_identities(), context.peer_identity_key())
        seen["peer"] = context.peer()
        return b""

    ssl_context = (
        rpc.ssl_server_context(
            certificates.server_chain,
            certificates.server_key,
            root_certificates=certificates.ca_pem,
            require_client_auth=True,
        )
        if tls
        else None
    )
    with h2rpc_server(
        server_kind, {"M": rpc.unary_unary_rpc_method_handler(handler)}, ssl_context=ssl_context
    ) as port:
        call_with_grpcio(port, certs)
    ours = seen["auth"]
    assert set(expected) - set(ours) <= NOT_PRODUCED
    for key, values in ours.items():
        assert values == expected[key], key
    assert seen["identity"] == expected_identity
    assert seen["peer"].startswith("ipv4:127.0.0.1:")
