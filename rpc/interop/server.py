"""The gRPC interop test server on h2rpc.

Usage::

    python -m rpc.interop.server --port 10000 [--host 0.0.0.0]
    python -m rpc.interop.server --port 10000 --use_tls --tls_cert_file C --tls_key_file K

Serves ``grpc.testing.TestService`` with every server feature of the gRPC project's interop test
descriptions: EmptyCall, UnaryCall, CacheableUnaryCall, StreamingOutputCall,
StreamingInputCall, FullDuplexCall, HalfDuplexCall; status echo (``response_status``),
metadata echo (``x-grpc-test-echo-initial``, ``x-grpc-test-echo-trailing-bin``), compressed
responses on request (``response_compressed``, ``ResponseParameters.compressed``), compressed
request checks (``expect_compressed``) and ``interval_us`` pauses. ``UnimplementedCall`` and
``grpc.testing.UnimplementedService`` are left unimplemented, as they must be.

Health checking (``grpc.health.v1.Health``) and server reflection (``grpc.reflection.v1`` and
``v1alpha``, for grpcurl) are served too, unless ``--no-health`` / ``--no-reflection``.

Once it accepts connections it prints ``PORT <n>`` on stdout (``--port 0`` picks a free port),
then serves until SIGTERM or SIGINT (or EOF on stdin with ``--stop_on_stdin_eof``).

TLS: official servers use the gRPC project's test certificate (server1.pem); h2rpc does not ship
those keys, so ``--use_tls`` needs ``--tls_cert_file`` and ``--tls_key_file`` (a chain and key in
PEM for the name the clients will check, e.g. ``foo.test.google.fr`` for official clients with
their test CA, or one made by ``trustme`` as our tests do).

``expect_compressed`` is checked per message, from the message's own compressed flag: a message
marked ``true`` that arrived uncompressed fails the call with INVALID_ARGUMENT (what the
descriptions require). A compressed message marked ``false`` is accepted: the descriptions ask
nothing of that case, and clients that cannot switch compression per message (grpcio's Python
API) send it compressed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Optional

import rpc
from rpc import services
from rpc.interop import _wire_log
from rpc.interop._common import (
    COMPRESSION,
    ECHO_INITIAL_KEY,
    ECHO_TRAILING_KEY,
    TEST_SERVICE,
    add_bool_flag,
    fail,
    host_port,
    status_code,
    zeros_payload,
)
from rpc.interop.proto import empty_pb2, messages_pb2

log = logging.getLogger("rpc.interop.server")

SERVICE_NAME = "grpc.testing.TestService"
STOP_GRACE_SECONDS = 1.0
#: Responses are built in memory: a bound on the sizes a client may ask for.
MAX_RESPONSE_SIZE = 64 * 1024 * 1024


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


async def _echo_metadata(context: rpc.ServicerContext) -> None:
    """Echo ``x-grpc-test-echo-initial`` now and ``x-grpc-test-echo-trailing-bin`` at the end."""
    metadata = context.invocation_metadata()
    trailing = metadata.get_all(ECHO_TRAILING_KEY)
    if trailing:
        context.set_trailing_metadata([(ECHO_TRAILING_KEY, value) for value in trailing])
    initial = metadata.get_all(ECHO_INITIAL_KEY)
    if initial:
        await context.send_initial_metadata([(ECHO_INITIAL_KEY, value) for value in initial])


def _maybe_echo_status(request: Any) -> None:
    """End the call with the request's ``response_status``, if it sets a non-OK one."""
    if request.HasField("response_status") and request.response_status.code != 0:
        fail(status_code(request.response_status.code), request.response_status.message)


def _check_response_type(request: Any) -> None:
    if request.response_type != messages_pb2.COMPRESSABLE:
        fail(
            rpc.StatusCode.INVALID_ARGUMENT,
            f"unsupported response_type {request.response_type}",
        )


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_RESPONSE_SIZE:
        fail(rpc.StatusCode.INVALID_ARGUMENT, f"response size {size} out of range")


def _check_expected_compression(request: Any, compressed: bool) -> None:
    if request.HasField("expect_compressed") and request.expect_compressed.value and not compressed:
        fail(
            rpc.StatusCode.INVALID_ARGUMENT,
            "expect_compressed is true but the request message was not compressed",
        )


async def _only_request(requests: AsyncIterator[Any]) -> Any:
    """The single request of a unary method registered with a streaming-request handler."""
    request = None
    async for message in requests:
        if request is not None:
            fail(rpc.StatusCode.INTERNAL, "more than one request message for a unary method")
        request = message
    if request is None:
        fail(rpc.StatusCode.INTERNAL, "no request message for a unary method")
    return request


class TestService:
    """The handlers of ``grpc.testing.TestService``; see :func:`test_service_handlers`."""

    def __init__(self) -> None:
        self.server_id = f"h2rpc-{socket.gethostname()}-{os.getpid()}"

    async def EmptyCall(self, request: Any, context: rpc.ServicerContext) -> Any:
        await _echo_metadata(context)
        return empty_pb2.Empty()

    async def UnaryCall(self, requests: AsyncIterator[Any], context: rpc.ServicerContext) -> Any:
        # Registered as stream-unary (the wire is the same) so that the compressed flag of the
        # request can be watched before the request is read.
        wire = _wire_log.watch(context)
        request = await _only_request(requests)
        compressed = wire.next().compressed
        if request.HasField("response_compressed"):
            if request.response_compressed.value:
                context.set_compression(COMPRESSION)
            else:
                context.disable_next_message_compression()
        await _echo_metadata(context)
        _check_expected_compression(request, compressed)
        _maybe_echo_status(request)
        _check_response_type(request)
        _check_size(request.response_size)
        response = messages_pb2.SimpleResponse(payload=zeros_payload(request.response_size))
        if request.fill_server_id:
            response.server_id = self.server_id
        return response

    async def CacheableUnaryCall(self, request: Any, context: rpc.ServicerContext) -> Any:
        # A payload that differs on every call, and a response a caching proxy may keep.
        await context.send_initial_metadata([("cache-control", "max-age=60, public")])
        body = str(time.time_ns()).encode()
        return messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=body)
        )

    async def StreamingOutputCall(
        self, request: Any, context: rpc.ServicerContext
    ) -> AsyncIterator[Any]:
        parameters = list(request.response_parameters)
        # The call's encoding is chosen before the first response; uncompressed ones opt out.
        compressing = any(p.compressed.value for p in parameters)
        if compressing:
            context.set_compression(COMPRESSION)
        await _echo_metadata(context)
        _maybe_echo_status(request)
        _check_response_type(request)
        for parameter in parameters:
            _check_size(parameter.size)
        for parameter in parameters:
            yield await _response(parameter, context, compressing)

    async def StreamingInputCall(
        self, requests: AsyncIterator[Any], context: rpc.ServicerContext
    ) -> Any:
        wire = _wire_log.watch(context)
        await _echo_metadata(context)
        total = 0
        async for request in requests:
            _check_expected_compression(request, wire.next().compressed)
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(
        self, requests: AsyncIterator[Any], context: rpc.ServicerContext
    ) -> AsyncIterator[Any]:
        # Any later request may ask for compressed responses, and the call's encoding must be
        # announced before the first one: gzip it is, and each message is compressed or not as
        # its request asks (an uncompressed message in a gzip call is plain gRPC).
        context.set_compression(COMPRESSION)
        await _echo_metadata(context)
        async for request in requests:
            async for response in _serve_streaming_request(request, context):
                yield response

    async def HalfDuplexCall(
        self, requests: AsyncIterator[Any], context: rpc.ServicerContext
    ) -> AsyncIterator[Any]:
        context.set_compression(COMPRESSION)
        await _echo_metadata(context)
        buffered = [request async for request in requests]
        for request in buffered:
            async for response in _serve_streaming_request(request, context):
                yield response


async def _serve_streaming_request(
    request: Any, context: rpc.ServicerContext
) -> AsyncIterator[Any]:
    """The responses one FullDuplexCall / HalfDuplexCall request asks for (in a gzip call)."""
    _maybe_echo_status(request)
    _check_response_type(request)
    for parameter in request.response_parameters:
        _check_size(parameter.size)
    for parameter in request.response_parameters:
        yield await _response(parameter, context, compressing=True)


async def _response(parameter: Any, context: rpc.ServicerContext, compressing: bool) -> Any:
    """The response ``parameter`` describes, after its ``interval_us``; yield it at once.

    In a compressed call, a response not asked to be compressed is marked to go out plain
    (the mark applies to the next message sent).
    """
    if parameter.interval_us > 0:
        await asyncio.sleep(parameter.interval_us / 1_000_000)
    if compressing and not parameter.compressed.value:
        context.disable_next_message_compression()
    return messages_pb2.StreamingOutputCallResponse(payload=zeros_payload(parameter.size))


def test_service_handlers(service: Optional[TestService] = None) -> rpc.ServiceHandlers:
    """``grpc.testing.TestService`` for ``server.add_generic_rpc_handlers([...])``."""
    s = service or TestService()
    request_of = {
        "Empty": empty_pb2.Empty.FromString,
        "Simple": messages_pb2.SimpleRequest.FromString,
        "Input": messages_pb2.StreamingInputCallRequest.FromString,
        "Output": messages_pb2.StreamingOutputCallRequest.FromString,
    }
    return rpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "EmptyCall": rpc.unary_unary_rpc_method_handler(
                s.EmptyCall, request_of["Empty"], _serialize
            ),
            "UnaryCall": rpc.stream_unary_rpc_method_handler(
                s.UnaryCall, request_of["Simple"], _serialize
            ),
            "CacheableUnaryCall": rpc.unary_unary_rpc_method_handler(
                s.CacheableUnaryCall, request_of["Simple"], _serialize
            ),
            "StreamingOutputCall": rpc.unary_stream_rpc_method_handler(
                s.StreamingOutputCall, request_of["Output"], _serialize
            ),
            "StreamingInputCall": rpc.stream_unary_rpc_method_handler(
                s.StreamingInputCall, request_of["Input"], _serialize
            ),
            "FullDuplexCall": rpc.stream_stream_rpc_method_handler(
                s.FullDuplexCall, request_of["Output"], _serialize
            ),
            "HalfDuplexCall": rpc.stream_stream_rpc_method_handler(
                s.HalfDuplexCall, request_of["Output"], _serialize
            ),
        },
        descriptor=TEST_SERVICE,  # for server reflection
    )


def build_server(**server_options: Any) -> rpc.Server:
    """An ``rpc.Server`` serving the interop TestService (ports not added yet)."""
    server = rpc.Server(**server_options)
    server.add_generic_rpc_handlers([test_service_handlers()])
    return server


async def serve(args: argparse.Namespace) -> int:
    server = build_server()
    services.enable_from_arguments(server, args)  # health and reflection, unless turned off
    address = host_port(args.host, args.port)
    if args.use_tls:
        context = rpc.ssl_server_context(args.tls_cert_file, args.tls_key_file)
        port = server.add_secure_port(address, context)
    else:
        port = server.add_insecure_port(address)
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # no signal handlers on this platform
            pass
    if args.stop_on_stdin_eof:
        _stop_on_stdin_eof(loop, stop)
    log.info(
        "serving %s on %s (%s)",
        SERVICE_NAME,
        host_port(args.host, port),
        "TLS" if args.use_tls else "cleartext",
    )
    print(f"PORT {port}", flush=True)
    await stop.wait()
    await server.stop(STOP_GRACE_SECONDS)
    return 0


def _stop_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # Watched by the loop itself: a thread blocked reading stdin would hold the stream's lock and
    # abort the interpreter at exit.
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        try:
            data = os.read(stdin, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin)
            stop.set()

    loop.add_reader(stdin, on_stdin)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rpc.interop.server",
        description="gRPC interop test server (grpc.testing.TestService) on h2rpc.",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    add_bool_flag(parser, "--use_tls", "serve TLS (with ALPN h2) instead of cleartext")
    parser.add_argument("--tls_cert_file", help="PEM certificate chain, for --use_tls")
    parser.add_argument("--tls_key_file", help="PEM private key, for --use_tls")
    parser.add_argument(
        "--stop_on_stdin_eof",
        action="store_true",
        help="also stop when stdin reaches EOF (for test harnesses that own the pipe)",
    )
    parser.add_argument(
        "--trace",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="study mode: print the wire to stderr (frames,headers,messages; default all; json)",
    )
    parser.add_argument(
        "--pcap", metavar="FILE", help="write the connections to FILE as pcapng, for Wireshark"
    )
    services.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.use_tls and not (args.tls_cert_file and args.tls_key_file):
        parser.error(
            "--use_tls needs --tls_cert_file and --tls_key_file: h2rpc ships no test "
            "certificate (the gRPC project's server1.pem is theirs to distribute)"
        )
    if args.trace:  # study mode: every channel and server of this run is traced (rpc.Tracer)
        rpc.Tracer.from_spec(args.trace).activate()
    if args.pcap:  # every channel and server of this run is captured (rpc.PcapWriter)
        try:
            rpc.PcapWriter(args.pcap).activate()
        except OSError as exc:
            parser.error(f"--pcap {args.pcap}: {exc.strerror or exc}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return rpc.run(serve(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
