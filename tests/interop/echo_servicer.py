"""The EchoTest service (tests/protos/h2rpc_test.proto) served by h2rpc's async API.

Its semantics mirror tests/interop/grpcio_peer.py exactly, so either server can stand in for the
other under the same client cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Optional

import h2rpc_test_pb2 as pb

import rpc

ECHO_PREFIX = "x-echo-"
SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]


async def _start(context: rpc.ServicerContext, request: Optional[pb.EchoRequest] = None) -> None:
    """Choose the response compression, then echo the x-echo-* metadata both ways."""
    if request is not None and request.compress_response:
        context.set_compression("gzip")
    echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith(ECHO_PREFIX)]
    await context.send_initial_metadata(echoed)
    context.set_trailing_metadata(echoed)


async def _abort_with(context: rpc.ServicerContext, request: pb.EchoRequest) -> Any:
    code = rpc.StatusCode(request.status_code)
    if request.status_details:
        raise rpc.RpcError(code, request.status_message, status_details=request.status_details)
    await context.abort(code, request.status_message)


def _time_remaining(context: rpc.ServicerContext) -> float:
    remaining = context.time_remaining()
    return -1.0 if remaining is None else remaining


async def _respond(
    context: rpc.ServicerContext, request: pb.EchoRequest, index: int
) -> pb.EchoResponse:
    if request.sleep_ms:
        await asyncio.sleep(request.sleep_ms / 1000)
    if request.compress_response and request.uncompressed_odd and index % 2:
        context.disable_next_message_compression()
    payload = bytes(request.response_size) if request.response_size > 0 else request.payload
    return pb.EchoResponse(payload=payload, index=index, time_remaining=_time_remaining(context))


class EchoTestServicer:
    async def Unary(self, request: pb.EchoRequest, context: rpc.ServicerContext) -> pb.EchoResponse:
        await _start(context, request)
        if request.status_code:
            await _abort_with(context, request)
        return await _respond(context, request, 0)

    async def ServerStream(
        self, request: pb.EchoRequest, context: rpc.ServicerContext
    ) -> AsyncIterator[pb.EchoResponse]:
        await _start(context, request)
        for index in range(request.response_count):
            yield await _respond(context, request, index)
        if request.status_code:
            await _abort_with(context, request)

    async def ClientStream(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: rpc.ServicerContext
    ) -> pb.EchoResponse:
        await _start(context)
        received_bytes = received_count = sleep_ms = 0
        first_failure = None
        async for request in request_iterator:
            received_bytes += len(request.payload)
            received_count += 1
            sleep_ms = max(sleep_ms, request.sleep_ms)
            if request.status_code and first_failure is None:
                first_failure = request
        if sleep_ms:
            await asyncio.sleep(sleep_ms / 1000)
        if first_failure is not None:
            await _abort_with(context, first_failure)
        return pb.EchoResponse(
            received_bytes=received_bytes,
            received_count=received_count,
            time_remaining=_time_remaining(context),
        )

    async def Bidi(
        self, request_iterator: AsyncIterator[pb.EchoRequest], context: rpc.ServicerContext
    ) -> AsyncIterator[pb.EchoResponse]:
        await _start(context)
        index = 0
        async for request in request_iterator:
            if request.status_code:
                await _abort_with(context, request)
            yield await _respond(context, request, index)
            index += 1


def make_server(*, servicer: Optional[EchoTestServicer] = None, **options: Any) -> rpc.Server:
    server = rpc.Server(**options)
    server.add_service(SERVICE, servicer or EchoTestServicer())
    return server
