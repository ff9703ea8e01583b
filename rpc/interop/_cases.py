"""The client test cases of the gRPC interop test descriptions, on h2rpc's async API.

Each case is ``async def case(channel)``; it returns when every assertion of its description
holds and raises :class:`CaseFailed` (with the reason) at the first that does not. Checks are
explicit (not ``assert``, which ``python -O`` removes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, Callable

import rpc
from rpc.interop import _wire_log
from rpc.interop._common import (
    COMPRESSION,
    ECHO_INITIAL_KEY,
    ECHO_TRAILING_KEY,
    TEST_SERVICE,
    UNIMPLEMENTED_SERVICE,
    zeros_payload,
)
from rpc.interop.proto import empty_pb2, messages_pb2

# Sizes from the descriptions.
LARGE_REQUEST_SIZE = 271828
LARGE_RESPONSE_SIZE = 314159
STREAMING_REQUEST_SIZES = (27182, 8, 1828, 45904)
STREAMING_RESPONSE_SIZES = (31415, 9, 2653, 58979)
STREAMING_AGGREGATE_SIZE = 74922
COMPRESSED_STREAMING_SIZES = (27182, 45904)
COMPRESSED_STREAMING_AGGREGATE_SIZE = 73086
SERVER_COMPRESSED_STREAMING = ((True, 31415), (False, 92653))
ECHO_INITIAL_VALUE = "test_initial_metadata_value"
ECHO_TRAILING_VALUE = b"\xab\xab\xab"
STATUS_MESSAGE = "test status message"
SPECIAL_STATUS_MESSAGE = (
    "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
)
#: cancel_after_begin: how long the call is left to open its stream before it is cancelled.
BEGIN_PAUSE_SECONDS = 0.05

Case = Callable[[rpc.Channel], Awaitable[None]]


class CaseFailed(Exception):
    """An assertion of the case's description does not hold; the message says which."""


def check(condition: bool, reason: str) -> None:
    if not condition:
        raise CaseFailed(reason)


def check_payload(payload: Any, size: int, what: str) -> None:
    """``payload`` is COMPRESSABLE and holds exactly ``size`` zero bytes."""
    check(
        payload.type == messages_pb2.COMPRESSABLE,
        f"{what}: payload type {payload.type}, expected COMPRESSABLE",
    )
    body = payload.body
    check(len(body) == size, f"{what}: payload body of {len(body)} bytes, expected {size}")
    check(body.count(0) == size, f"{what}: payload body is not all zeros")


async def expect_error(awaitable: Awaitable[Any], code: rpc.StatusCode, what: str) -> rpc.RpcError:
    """Await ``awaitable``; it must fail with ``code``. Returns the error."""
    try:
        result = await awaitable
    except rpc.RpcError as exc:
        check(
            exc.code() == code,
            f"{what}: status {exc.code().name} ({exc.details()!r}), expected {code.name}",
        )
        return exc
    raise CaseFailed(f"{what}: succeeded (with {_short(result)}), expected status {code.name}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _stubs(channel: rpc.Channel) -> Any:
    return rpc.Stub(channel, TEST_SERVICE)


def large_request(**fields: Any) -> Any:
    return messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_size=LARGE_RESPONSE_SIZE,
        payload=zeros_payload(LARGE_REQUEST_SIZE),
        **fields,
    )


def streaming_request(response_size: int, request_size: int) -> Any:
    return messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
        payload=zeros_payload(request_size),
    )


async def _drain(call: Any, what: str) -> list[Any]:
    """Every response of a streaming call; the call must end OK."""
    responses = [response async for response in call]
    code = await call.code()
    check(code == rpc.StatusCode.OK, f"{what}: ended {code.name}, expected OK")
    return responses


async def _done_writing_quietly(call: Any) -> None:
    """Half-close, unless the server already ended the call (its status tells the rest)."""
    with contextlib.suppress(rpc.RpcError):
        await call.done_writing()


# --- cases -----------------------------------------------------------------------------------


async def empty_unary(channel: rpc.Channel) -> None:
    call = _stubs(channel).EmptyCall(empty_pb2.Empty())
    wire = _wire_log.watch(call)
    response = await call
    check(isinstance(response, empty_pb2.Empty), f"response is {type(response).__name__}")
    check(wire.next().wire_size == 0, "the response did not serialize to zero bytes")


async def large_unary(channel: rpc.Channel) -> None:
    response = await _stubs(channel).UnaryCall(large_request())
    check_payload(response.payload, LARGE_RESPONSE_SIZE, "response")


async def client_compressed_unary(channel: rpc.Channel) -> None:
    stub = _stubs(channel)
    expect_true = large_request(expect_compressed=messages_pb2.BoolValue(value=True))
    await expect_error(
        stub.UnaryCall(expect_true),
        rpc.StatusCode.INVALID_ARGUMENT,
        "feature probe (uncompressed request marked expect_compressed)",
    )
    response = await stub.UnaryCall(expect_true, compression=COMPRESSION)
    check_payload(response.payload, LARGE_RESPONSE_SIZE, "compressed request")
    expect_false = large_request(expect_compressed=messages_pb2.BoolValue(value=False))
    response = await stub.UnaryCall(expect_false)
    check_payload(response.payload, LARGE_RESPONSE_SIZE, "uncompressed request")


async def server_compressed_unary(channel: rpc.Channel) -> None:
    stub = _stubs(channel)
    for compressed in (True, False):
        what = f"response_compressed={str(compressed).lower()}"
        call = stub.UnaryCall(
            large_request(response_compressed=messages_pb2.BoolValue(value=compressed))
        )
        wire = _wire_log.watch(call)
        response = await call
        check(
            wire.next().compressed == compressed,
            f"{what}: the response's compressed flag is {'set' if not compressed else 'clear'}",
        )
        check_payload(response.payload, LARGE_RESPONSE_SIZE, what)


async def client_streaming(channel: rpc.Channel) -> None:
    call = _stubs(channel).StreamingInputCall()
    for size in STREAMING_REQUEST_SIZES:
        await call.write(messages_pb2.StreamingInputCallRequest(payload=zeros_payload(size)))
    await call.done_writing()
    response = await call
    check(
        response.aggregated_payload_size == STREAMING_AGGREGATE_SIZE,
        f"aggregated_payload_size {response.aggregated_payload_size}, "
        f"expected {STREAMING_AGGREGATE_SIZE}",
    )


async def client_compressed_streaming(channel: rpc.Channel) -> None:
    stub = _stubs(channel)
    first_size, second_size = COMPRESSED_STREAMING_SIZES
    probe = stub.StreamingInputCall()
    with contextlib.suppress(rpc.RpcError):  # the server may fail the call before we are done
        await probe.write(
            messages_pb2.StreamingInputCallRequest(
                expect_compressed=messages_pb2.BoolValue(value=True),
                payload=zeros_payload(first_size),
            )
        )
    await _done_writing_quietly(probe)
    await expect_error(
        probe,
        rpc.StatusCode.INVALID_ARGUMENT,
        "feature probe (uncompressed request marked expect_compressed)",
    )
    call = stub.StreamingInputCall(compression=COMPRESSION)
    await call.write(
        messages_pb2.StreamingInputCallRequest(
            expect_compressed=messages_pb2.BoolValue(value=True),
            payload=zeros_payload(first_size),
        )
    )
    await call.write(
        messages_pb2.StreamingInputCallRequest(
            expect_compressed=messages_pb2.BoolValue(value=False),
            payload=zeros_payload(second_size),
        ),
        compress=False,
    )
    await call.done_writing()
    response = await call
    check(
        response.aggregated_payload_size == COMPRESSED_STREAMING_AGGREGATE_SIZE,
        f"aggregated_payload_size {response.aggregated_payload_size}, "
        f"expected {COMPRESSED_STREAMING_AGGREGATE_SIZE}",
    )


async def server_streaming(channel: rpc.Channel) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[
            messages_pb2.ResponseParameters(size=size) for size in STREAMING_RESPONSE_SIZES
        ],
    )
    responses = await _drain(_stubs(channel).StreamingOutputCall(request), "call")
    _check_sizes(responses, STREAMING_RESPONSE_SIZES)


def _check_sizes(responses: Sequence[Any], sizes: Sequence[int]) -> None:
    check(
        len(responses) == len(sizes),
        f"{len(responses)} responses, expected exactly {len(sizes)}",
    )
    for index, (response, size) in enumerate(zip(responses, sizes)):
        check_payload(response.payload, size, f"response {index + 1}")


async def server_compressed_streaming(channel: rpc.Channel) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[
            messages_pb2.ResponseParameters(
                size=size, compressed=messages_pb2.BoolValue(value=compressed)
            )
            for compressed, size in SERVER_COMPRESSED_STREAMING
        ],
    )
    call = _stubs(channel).StreamingOutputCall(request)
    wire = _wire_log.watch(call)
    responses = await _drain(call, "call")
    _check_sizes(responses, [size for _, size in SERVER_COMPRESSED_STREAMING])
    for index, (compressed, _) in enumerate(SERVER_COMPRESSED_STREAMING):
        check(
            wire.next().compressed == compressed,
            f"response {index + 1} (compressed={str(compressed).lower()}): its compressed "
            f"flag is {'set' if not compressed else 'clear'}",
        )


async def ping_pong(channel: rpc.Channel) -> None:
    call = _stubs(channel).FullDuplexCall()
    for index, (request_size, response_size) in enumerate(
        zip(STREAMING_REQUEST_SIZES, STREAMING_RESPONSE_SIZES)
    ):
        await call.write(streaming_request(response_size, request_size))
        response = await call.read()
        check(response is not rpc.EOF, f"the response stream ended before response {index + 1}")
        check_payload(response.payload, response_size, f"response {index + 1}")
    await call.done_writing()
    extra = await call.read()
    check(extra is rpc.EOF, f"more than {len(STREAMING_RESPONSE_SIZES)} responses")
    code = await call.code()
    check(code == rpc.StatusCode.OK, f"call ended {code.name}, expected OK")


async def empty_stream(channel: rpc.Channel) -> None:
    call = _stubs(channel).FullDuplexCall()
    await call.done_writing()
    responses = await _drain(call, "call")
    check(not responses, f"{len(responses)} responses, expected none")


async def timeout_on_sleeping_server(channel: rpc.Channel) -> None:
    call = _stubs(channel).FullDuplexCall(timeout=0.001)
    with contextlib.suppress(rpc.RpcError):  # the deadline may pass before the write
        await call.write(messages_pb2.StreamingOutputCallRequest(payload=zeros_payload(27182)))
    await expect_error(call.read(), rpc.StatusCode.DEADLINE_EXCEEDED, "call with a 1 ms deadline")
    code = await call.code()
    check(code == rpc.StatusCode.DEADLINE_EXCEEDED, f"call ended {code.name}")


async def cancel_after_begin(channel: rpc.Channel) -> None:
    await channel.channel_ready()
    call = _stubs(channel).StreamingInputCall()
    # Drive the call without writing: its stream opens (the request headers go out) and it
    # waits for the server's response headers, which come only after a request message.
    started = asyncio.ensure_future(call.initial_metadata())
    try:
        await asyncio.sleep(BEGIN_PAUSE_SECONDS)
        if call.done():
            code = await call.code()
            raise CaseFailed(f"the call ended {code.name} before it was cancelled")
        check(call.cancel(), "cancel() had no effect")
        await expect_error(call, rpc.StatusCode.CANCELLED, "cancelled call")
        code = await call.code()
        check(code == rpc.StatusCode.CANCELLED, f"call ended {code.name}, expected CANCELLED")
    finally:
        started.cancel()
        with contextlib.suppress(BaseException):
            await started


async def cancel_after_first_response(channel: rpc.Channel) -> None:
    call = _stubs(channel).FullDuplexCall()
    await call.write(streaming_request(31415, 27182))
    response = await call.read()
    check(response is not rpc.EOF, "the response stream ended before the first response")
    check_payload(response.payload, 31415, "first response")
    check(call.cancel(), "cancel() had no effect")
    await expect_error(call.read(), rpc.StatusCode.CANCELLED, "read after cancel")
    code = await call.code()
    check(code == rpc.StatusCode.CANCELLED, f"call ended {code.name}, expected CANCELLED")


async def _check_echoed_status(
    channel: rpc.Channel, code: int, message: str, *, duplex: bool
) -> None:
    status = messages_pb2.EchoStatus(code=code, message=message)
    expected = rpc.StatusCode(code)
    stub = _stubs(channel)
    error = await expect_error(
        stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status)), expected, "UnaryCall"
    )
    check(error.details() == message, f"UnaryCall: status message {error.details()!r}")
    if not duplex:
        return
    call = stub.FullDuplexCall()
    await call.write(messages_pb2.StreamingOutputCallRequest(response_status=status))
    await _done_writing_quietly(call)
    error = await expect_error(call.read(), expected, "FullDuplexCall")
    check(error.details() == message, f"FullDuplexCall: status message {error.details()!r}")


async def status_code_and_message(channel: rpc.Channel) -> None:
    await _check_echoed_status(channel, 2, STATUS_MESSAGE, duplex=True)


async def special_status_message(channel: rpc.Channel) -> None:
    await _check_echoed_status(channel, 2, SPECIAL_STATUS_MESSAGE, duplex=False)


def _check_echoed_metadata(initial: rpc.Metadata, trailing: rpc.Metadata, what: str) -> None:
    echoed = initial.get_all(ECHO_INITIAL_KEY)
    check(
        echoed == [ECHO_INITIAL_VALUE],
        f"{what}: initial metadata {ECHO_INITIAL_KEY} is {echoed!r}, "
        f"expected [{ECHO_INITIAL_VALUE!r}]",
    )
    echoed = trailing.get_all(ECHO_TRAILING_KEY)
    check(
        echoed == [ECHO_TRAILING_VALUE],
        f"{what}: trailing metadata {ECHO_TRAILING_KEY} is {echoed!r}, "
        f"expected [{ECHO_TRAILING_VALUE!r}]",
    )


async def custom_metadata(channel: rpc.Channel) -> None:
    metadata = [(ECHO_INITIAL_KEY, ECHO_INITIAL_VALUE), (ECHO_TRAILING_KEY, ECHO_TRAILING_VALUE)]
    stub = _stubs(channel)
    call = stub.UnaryCall(large_request(), metadata=metadata)
    response = await call
    check_payload(response.payload, LARGE_RESPONSE_SIZE, "UnaryCall response")
    _check_echoed_metadata(
        await call.initial_metadata(), await call.trailing_metadata(), "UnaryCall"
    )
    call = stub.FullDuplexCall(metadata=metadata)
    await call.write(streaming_request(LARGE_RESPONSE_SIZE, LARGE_REQUEST_SIZE))
    await call.done_writing()
    responses = await _drain(call, "FullDuplexCall")
    _check_sizes(responses, [LARGE_RESPONSE_SIZE])
    _check_echoed_metadata(
        await call.initial_metadata(), await call.trailing_metadata(), "FullDuplexCall"
    )


async def unimplemented_method(channel: rpc.Channel) -> None:
    await expect_error(
        _stubs(channel).UnimplementedCall(empty_pb2.Empty()),
        rpc.StatusCode.UNIMPLEMENTED,
        "grpc.testing.TestService/UnimplementedCall",
    )


async def unimplemented_service(channel: rpc.Channel) -> None:
    await expect_error(
        rpc.Stub(channel, UNIMPLEMENTED_SERVICE).UnimplementedCall(empty_pb2.Empty()),
        rpc.StatusCode.UNIMPLEMENTED,
        "grpc.testing.UnimplementedService/UnimplementedCall",
    )


#: Every case, in the descriptions' order of the cases we run.
CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_compressed_unary,
        server_compressed_unary,
        client_streaming,
        client_compressed_streaming,
        server_streaming,
        server_compressed_streaming,
        ping_pong,
        empty_stream,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
    )
}
