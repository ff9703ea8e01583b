"""The EchoTest service (tests/protos/h2rpc_test.proto) served by h2rpc's async API.

Its semantics mirror tests/interop/grpcio_peer.py exactly, so either server can stand in for the
other under the same client cases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import h2rpc_test_pb2 as pb

import rpc

ECHO_PREFIX = "x-echo-"
SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]


def _response_for(request: pb.EchoRequest, index: int) -> pb.EchoResponse:
    payload = bytes(request.response_size) if request.response_size > 0 else request.payload
    return pb.EchoResponse(payload=payload, index=index)


async def _start_echo(context: rpc.ServicerContext) -> None:
    """Echo the x-echo-* request metadata in the initial and trailing metadata."""
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith(ECHO_PREFIX)]
    await context.send_initial_metadata(echoed)
    context.set_trailing_metadata(echoed)


async def _abort_with(context: rpc.ServicerContext, request: pb.EchoRequest) -> Any:
    await context.abort(rpc.StatusCode(request.status_code), request.status_message)


class EchoTestServicer:
    async def Unary(self, request: pb.EchoRequest, context: rpc.ServicerContext) -> pb.EchoResponse:
        await _start_echo(context)
        if request.status_code:
            await _abort_with(context, request)
        return _response_for(request, 0)

    async def ServerStream(
        self, request: pb.EchoRequest, context: rpc.ServicerContext
    ) -> AsyncIterator[pb.EchoResponse]:
        await _start_echo(context)
        for index in range(request.response_count):
            yield _response_for(request, index)
        if request.status_code:
            await _abort_with(context, request)

    async def ClientStream(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: rpc.ServicerContext
    ) -> pb.EchoResponse:
        await _start_echo(context)
        received_bytes = received_count = 0
        first_failure = None
        async for request in request_iterator:
            received_bytes += len(request.payload)
            received_count += 1
            if request.status_code and first_failure is None:
                first_failure = request
        if first_failure is not None:
            await _abort_with(context, first_failure)
        return pb.EchoResponse(received_bytes=received_bytes, received_count=received_count)

    async def Bidi(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: rpc.ServicerContext
    ) -> AsyncIterator[pb.EchoResponse]:
        await _start_echo(context)
        index = 0
        async for request in request_iterator:
            if request.status_code:
                await _abort_with(context, request)
            yield _response_for(request, index)
            index += 1


def make_server(**options: Any) -> rpc.Server:
    server = rpc.Server(**options)
    server.add_service(SERVICE, EchoTestServicer())
    return server
