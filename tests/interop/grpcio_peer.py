"""Reference EchoTest server on grpcio's sync API, for interop tests.

Usage::

    python tests/interop/grpcio_peer.py --port 0 [--host 127.0.0.1]

Prints ``PORT <n>`` (the bound port) on stdout once it is serving, then serves
until SIGTERM, SIGINT or EOF on stdin, and stops with a short grace period.
The EchoTest semantics are documented in tests/protos/h2rpc_test.proto.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
from compile import ensure_proto_path
from peer_options import add_server_options, read

ensure_proto_path()
import h2rpc_test_pb2 as pb  # noqa: E402
import h2rpc_test_pb2_grpc as pb_grpc  # noqa: E402

MAX_MESSAGE_LENGTH = 64 * 1024 * 1024
ECHO_PREFIX = "x-echo-"
STOP_GRACE_SECONDS = 1.0

_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def _echoed_metadata(context: grpc.ServicerContext) -> tuple[tuple[str, str | bytes], ...]:
    return tuple(
        (key, value) for key, value in context.invocation_metadata() if key.startswith(ECHO_PREFIX)
    )


def _start(context: grpc.ServicerContext, request: pb.EchoRequest | None = None) -> None:
    """Choose the response compression, then echo the x-echo-* metadata both ways."""
    if request is not None and request.compress_response:
        context.set_compression(grpc.Compression.Gzip)  # before the headers go out
    echoed = _echoed_metadata(context)
    context.send_initial_metadata(echoed)
    context.set_trailing_metadata(echoed)


class _Status:
    """What ``abort_with_status`` reads (grpcio-status's ``rpc_status.to_status`` makes one)."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _abort_with(context: grpc.ServicerContext, request: pb.EchoRequest) -> None:
    code = _STATUS_BY_NUMBER.get(request.status_code, grpc.StatusCode.UNKNOWN)
    if request.status_details:
        trailers = (*_echoed_metadata(context), ("grpc-status-details-bin", request.status_details))
        context.abort_with_status(_Status(code, request.status_message, trailers))
    context.abort(code, request.status_message)


def _time_remaining(context: grpc.ServicerContext) -> float:
    remaining = context.time_remaining()
    return -1.0 if remaining is None else remaining


def _respond(context: grpc.ServicerContext, request: pb.EchoRequest, index: int) -> pb.EchoResponse:
    if request.sleep_ms:
        time.sleep(request.sleep_ms / 1000)
    if request.compress_response and request.uncompressed_odd and index % 2:
        context.disable_next_message_compression()
    payload = bytes(request.response_size) if request.response_size > 0 else request.payload
    return pb.EchoResponse(payload=payload, index=index, time_remaining=_time_remaining(context))


class EchoTestServicer(pb_grpc.EchoTestServicer):
    def Unary(self, request: pb.EchoRequest, context: grpc.ServicerContext) -> pb.EchoResponse:
        _start(context, request)
        if request.status_code:
            _abort_with(context, request)
        return _respond(context, request, 0)

    def ServerStream(
        self, request: pb.EchoRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.EchoResponse]:
        _start(context, request)
        for index in range(request.response_count):
            yield _respond(context, request, index)
        if request.status_code:
            _abort_with(context, request)

    def ClientStream(
        self, request_iterator: Iterable[pb.EchoRequest], context: grpc.ServicerContext
    ) -> pb.EchoResponse:
        _start(context)
        received_bytes = 0
        received_count = 0
        first_failure = None
        sleep_ms = 0
        for request in request_iterator:
            received_bytes += len(request.payload)
            received_count += 1
            sleep_ms = max(sleep_ms, request.sleep_ms)
            if request.status_code and first_failure is None:
                first_failure = request
        if sleep_ms:
            time.sleep(sleep_ms / 1000)
        if first_failure is not None:
            _abort_with(context, first_failure)
        return pb.EchoResponse(
            received_bytes=received_bytes,
            received_count=received_count,
            time_remaining=_time_remaining(context),
        )

    def Bidi(
        self, request_iterator: Iterable[pb.EchoRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.EchoResponse]:
        _start(context)
        for index, request in enumerate(request_iterator):
            if request.status_code:
                _abort_with(context, request)
            yield _respond(context, request, index)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _watch_stdin(stop: threading.Event) -> None:
    """Stop when stdin reaches EOF, i.e. when the parent process goes away."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=400)
    add_server_options(parser)
    args = parser.parse_args(argv)

    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_LENGTH),
        ("grpc.max_receive_message_length", args.max_receive_message_length),
    ]
    if args.max_concurrent_streams:
        options.append(("grpc.max_concurrent_streams", args.max_concurrent_streams))
    if args.keepalive_time:
        options.append(("grpc.keepalive_time_ms", int(args.keepalive_time * 1000)))
        options.append(("grpc.keepalive_timeout_ms", int(args.keepalive_timeout * 1000)))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers), options=options)
    pb_grpc.add_EchoTestServicer_to_server(EchoTestServicer(), server)
    address = _host_port(args.host, args.port)
    if args.tls_cert:
        credentials = grpc.ssl_server_credentials(
            [(read(args.tls_key), read(args.tls_cert))],
            root_certificates=read(args.tls_ca) if args.tls_ca else None,
            require_client_auth=args.require_client_auth,
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        print(f"could not bind {_host_port(args.host, args.port)}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()

    server.start()
    print(f"PORT {port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(grace=STOP_GRACE_SECONDS).wait(STOP_GRACE_SECONDS + 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
