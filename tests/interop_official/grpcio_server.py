"""The gRPC interop test server on grpcio: the reference h2rpc's interop client is checked against.

Usage (from the repository root)::

    python -m tests.interop_official.grpcio_server --port 0 [--host 127.0.0.1] \\
        [--use_tls --tls_cert_file C --tls_key_file K] [--stop_on_stdin_eof]

Same flags and protocol as ``python -m rpc.interop.server``: prints ``PORT <n>`` once serving,
serves until SIGTERM/SIGINT (or EOF on stdin with ``--stop_on_stdin_eof``).

It serves ``grpc.testing.TestService`` from rpc.interop's generated modules (one set of
``grpc.testing`` descriptors per process) through grpcio generic handlers. ``expect_compressed``
is checked strictly, per message, both ways (like gRPC's C++ interop server): a message marked
``true`` must arrive compressed, one marked ``false`` uncompressed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any, Optional

import grpc

from rpc.interop.proto import empty_pb2, messages_pb2
from tests.interop_official._grpcio_common import (
    KEEP_COMPRESSED_OPTION,
    Received,
    add_bool_flag,
    host_port,
    receiving,
    serialize,
)

SERVICE_NAME = "grpc.testing.TestService"
ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
CODES = {code.value[0]: code for code in grpc.StatusCode}
STOP_GRACE_SECONDS = 1.0


def _payload(size: int) -> Any:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


def _echo_metadata(context: grpc.ServicerContext) -> None:
    initial = [(k, v) for k, v in context.invocation_metadata() if k == ECHO_INITIAL_KEY]
    trailing = [(k, v) for k, v in context.invocation_metadata() if k == ECHO_TRAILING_KEY]
    if trailing:
        context.set_trailing_metadata(trailing)
    if initial:
        context.send_initial_metadata(initial)


def _maybe_echo_status(request: Any, context: grpc.ServicerContext) -> None:
    if request.HasField("response_status") and request.response_status.code != 0:
        code = CODES.get(request.response_status.code, grpc.StatusCode.UNKNOWN)
        context.abort(code, request.response_status.message)


def _check_compression(received: Received, context: grpc.ServicerContext) -> None:
    request = received.message
    if not request.HasField("expect_compressed"):
        return
    if request.expect_compressed.value and not received.compressed:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected a compressed request message")
    if not request.expect_compressed.value and received.compressed:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "expected an uncompressed request message")


def _check_response_type(request: Any, context: grpc.ServicerContext) -> None:
    if request.response_type != messages_pb2.COMPRESSABLE:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unsupported response_type")


def _streamed_responses(
    request: Any, context: grpc.ServicerContext, compressing: bool
) -> Iterator[Any]:
    _maybe_echo_status(request, context)
    _check_response_type(request, context)
    for parameter in request.response_parameters:
        if parameter.interval_us > 0:
            time.sleep(parameter.interval_us / 1_000_000)
        if compressing and not parameter.compressed.value:
            context.disable_next_message_compression()
        yield messages_pb2.StreamingOutputCallResponse(payload=_payload(parameter.size))


class TestService:
    def EmptyCall(self, received: Received, context: grpc.ServicerContext) -> Any:
        _echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, received: Received, context: grpc.ServicerContext) -> Any:
        request = received.message
        if request.HasField("response_compressed"):
            if request.response_compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            else:
                context.disable_next_message_compression()
        _echo_metadata(context)
        _check_compression(received, context)
        _maybe_echo_status(request, context)
        _check_response_type(request, context)
        return messages_pb2.SimpleResponse(payload=_payload(request.response_size))

    def StreamingOutputCall(
        self, received: Received, context: grpc.ServicerContext
    ) -> Iterator[Any]:
        request = received.message
        compressing = any(p.compressed.value for p in request.response_parameters)
        if compressing:
            context.set_compression(grpc.Compression.Gzip)
        _echo_metadata(context)
        yield from _streamed_responses(request, context, compressing)

    def StreamingInputCall(
        self, requests: Iterator[Received], context: grpc.ServicerContext
    ) -> Any:
        _echo_metadata(context)
        total = 0
        for received in requests:
            _check_compression(received, context)
            total += len(received.message.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(
        self, requests: Iterator[Received], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        context.set_compression(grpc.Compression.Gzip)
        _echo_metadata(context)
        for received in requests:
            yield from _streamed_responses(received.message, context, compressing=True)

    def HalfDuplexCall(
        self, requests: Iterator[Received], context: grpc.ServicerContext
    ) -> Iterator[Any]:
        context.set_compression(grpc.Compression.Gzip)
        _echo_metadata(context)
        buffered = [received.message for received in requests]
        for request in buffered:
            yield from _streamed_responses(request, context, compressing=True)


def generic_handler() -> grpc.GenericRpcHandler:
    s = TestService()
    simple = receiving(messages_pb2.SimpleRequest)
    output = receiving(messages_pb2.StreamingOutputCallRequest)
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "EmptyCall": grpc.unary_unary_rpc_method_handler(
                s.EmptyCall, receiving(empty_pb2.Empty), serialize
            ),
            "UnaryCall": grpc.unary_unary_rpc_method_handler(s.UnaryCall, simple, serialize),
            "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
                s.StreamingOutputCall, output, serialize
            ),
            "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
                s.StreamingInputCall,
                receiving(messages_pb2.StreamingInputCallRequest),
                serialize,
            ),
            "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
                s.FullDuplexCall, output, serialize
            ),
            "HalfDuplexCall": grpc.stream_stream_rpc_method_handler(
                s.HalfDuplexCall, output, serialize
            ),
        },
    )


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="0.0.0.0")
    add_bool_flag(parser, "--use_tls", "serve TLS")
    parser.add_argument("--tls_cert_file")
    parser.add_argument("--tls_key_file")
    parser.add_argument("--stop_on_stdin_eof", action="store_true")
    args = parser.parse_args(argv)
    if args.use_tls and not (args.tls_cert_file and args.tls_key_file):
        parser.error("--use_tls needs --tls_cert_file and --tls_key_file")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16), options=[KEEP_COMPRESSED_OPTION]
    )
    server.add_generic_rpc_handlers([generic_handler()])
    address = host_port(args.host, args.port)
    if args.use_tls:
        with open(args.tls_cert_file, "rb") as f:
            chain = f.read()
        with open(args.tls_key_file, "rb") as f:
            key = f.read()
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, chain)]))
    else:
        port = server.add_insecure_port(address)
    server.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.stop_on_stdin_eof:

        def watch_stdin() -> None:
            while os.read(sys.stdin.fileno(), 4096):
                pass
            stop.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"PORT {port}", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop(STOP_GRACE_SECONDS).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
