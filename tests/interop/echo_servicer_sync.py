"""The EchoTest service with plain ``def`` handlers, for ``rpc.sync.Server`` (and, run in a thread
pool, for the async ``rpc.Server``). Same semantics as echo_servicer.py and grpcio_peer.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Optional

import h2rpc_test_pb2 as pb

import rpc

ECHO_PREFIX = "x-echo-"
SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]


def _start(context: Any, request: Optional[pb.EchoRequest] = None) -> None:
    if request is not None and request.compress_response:
        context.set_compression("gzip")
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith(ECHO_PREFIX)]
    context.send_initial_metadata(echoed)
    context.set_trailing_metadata(echoed)


def _abort_with(context: Any, request: pb.EchoRequest) -> None:
    code = rpc.StatusCode(request.status_code)
    if request.status_details:
        raise rpc.RpcError(code, request.status_message, status_details=request.status_details)
    context.abort(code, request.status_message)


def _time_remaining(context: Any) -> float:
    remaining = context.time_remaining()
    return -1.0 if remaining is None else remaining


def _respond(context: Any, request: pb.EchoRequest, index: int) -> pb.EchoResponse:
    if request.sleep_ms:
        time.sleep(request.sleep_ms / 1000)
    if request.compress_response and request.uncompressed_odd and index % 2:
        context.disable_next_message_compression()
    payload = bytes(request.response_size) if request.response_size > 0 else request.payload
    return pb.EchoResponse(payload=payload, index=index, time_remaining=_time_remaining(context))


class EchoTestServicer:
    def Unary(self, request: pb.EchoRequest, context: Any) -> pb.EchoResponse:
        _start(context, request)
        if request.status_code:
            _abort_with(context, request)
        return _respond(context, request, 0)

    def ServerStream(self, request: pb.EchoRequest, context: Any) -> Iterator[pb.EchoResponse]:
        _start(context, request)
        for index in range(request.response_count):
            yield _respond(context, request, index)
        if request.status_code:
            _abort_with(context, request)

    def ClientStream(self, request_iterator: Iterator[pb.EchoRequest], context: Any) -> Any:
        _start(context)
        received_bytes = received_count = sleep_ms = 0
        first_failure = None
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
        self, request_iterator: Iterator[pb.EchoRequest], context: Any
    ) -> Iterator[pb.EchoResponse]:
        _start(context)
        for index, request in enumerate(request_iterator):
            if request.status_code:
                _abort_with(context, request)
            yield _respond(context, request, index)


def make_sync_server(
    *, servicer: Optional[EchoTestServicer] = None, **options: Any
) -> rpc.sync.Server:
    options.setdefault("max_workers", 400)
    server = rpc.sync.Server(**options)
    server.add_service(SERVICE, servicer or EchoTestServicer())
    return server
