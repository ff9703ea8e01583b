"""Interop cases driven by a real grpcio client (sync API) against an EchoTest server.

Each public function takes a target (``"host:port"``) of a server implementing
tests/protos/h2rpc_test.proto, runs one case and raises AssertionError on a
mismatch. They are harness-agnostic so other test suites can reuse them.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
from compile import ensure_proto_path

ensure_proto_path()
import h2rpc_test_pb2 as pb  # noqa: E402
import h2rpc_test_pb2_grpc as pb_grpc  # noqa: E402
from echo_cases_common import (  # noqa: E402
    CALL_TIMEOUT_SECONDS,
    ECHO_METADATA,
    EXPECTED_ECHO,
    MAX_MESSAGE_LENGTH,
    MiB,
    assert_bytes_equal,
    echoed,
    patterned_bytes,
    status_details,
)

CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", MAX_MESSAGE_LENGTH),
    ("grpc.max_receive_message_length", MAX_MESSAGE_LENGTH),
)
NON_OK_STATUS_CODES = tuple(code for code in grpc.StatusCode if code is not grpc.StatusCode.OK)


@contextmanager
def open_channel(target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        yield channel


@contextmanager
def echo_stub(target: str) -> Iterator[pb_grpc.EchoTestStub]:
    with open_channel(target) as channel:
        yield pb_grpc.EchoTestStub(channel)


# --- happy paths ------------------------------------------------------------------------


def unary_echo(target: str) -> None:
    with echo_stub(target) as stub:
        response = stub.Unary(pb.EchoRequest(payload=b"hello"), timeout=CALL_TIMEOUT_SECONDS)
        assert response.payload == b"hello"
        assert response.index == 0

        response = stub.Unary(pb.EchoRequest(response_size=5), timeout=CALL_TIMEOUT_SECONDS)
        assert response.payload == bytes(5)


def server_stream(target: str) -> None:
    with echo_stub(target) as stub:
        request = pb.EchoRequest(payload=b"abc", response_count=5)
        responses = list(stub.ServerStream(request, timeout=CALL_TIMEOUT_SECONDS))
        assert [r.index for r in responses] == [0, 1, 2, 3, 4]
        assert [r.payload for r in responses] == [b"abc"] * 5

        empty = list(stub.ServerStream(pb.EchoRequest(), timeout=CALL_TIMEOUT_SECONDS))
        assert empty == []


def client_stream(target: str) -> None:
    sizes = [0, 1, 10, 1000, 70_000]
    with echo_stub(target) as stub:
        requests = (pb.EchoRequest(payload=patterned_bytes(n, seed=n)) for n in sizes)
        response = stub.ClientStream(requests, timeout=CALL_TIMEOUT_SECONDS)
        assert response.received_count == len(sizes)
        assert response.received_bytes == sum(sizes)

        response = stub.ClientStream(iter(()), timeout=CALL_TIMEOUT_SECONDS)
        assert (response.received_count, response.received_bytes) == (0, 0)


def bidi(target: str) -> None:
    """Ping-pong: each response must arrive before the next request is sent."""
    payloads = [f"message {i}".encode() * (i + 1) for i in range(10)]
    outbox: queue.Queue[pb.EchoRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.EchoRequest]:
        while (request := outbox.get(timeout=CALL_TIMEOUT_SECONDS)) is not None:
            yield request

    with echo_stub(target) as stub:
        call = stub.Bidi(requests(), timeout=CALL_TIMEOUT_SECONDS)
        try:
            for index, payload in enumerate(payloads):
                outbox.put(pb.EchoRequest(payload=payload))
                response = next(call)
                assert (response.index, response.payload) == (index, payload)
        finally:
            outbox.put(None)
        assert list(call) == []
        assert call.code() is grpc.StatusCode.OK


# --- metadata ---------------------------------------------------------------------------


def unary_metadata_echo(target: str) -> None:
    with echo_stub(target) as stub:
        response, call = stub.Unary.with_call(
            pb.EchoRequest(payload=b"md"), metadata=ECHO_METADATA, timeout=CALL_TIMEOUT_SECONDS
        )
        assert response.payload == b"md"
        assert echoed(call.initial_metadata()) == EXPECTED_ECHO
        assert echoed(call.trailing_metadata()) == EXPECTED_ECHO


def bidi_metadata_echo(target: str) -> None:
    with echo_stub(target) as stub:
        requests = [pb.EchoRequest(payload=b"one"), pb.EchoRequest(payload=b"two")]
        call = stub.Bidi(iter(requests), metadata=ECHO_METADATA, timeout=CALL_TIMEOUT_SECONDS)
        assert echoed(call.initial_metadata()) == EXPECTED_ECHO
        assert [r.payload for r in call] == [b"one", b"two"]
        assert echoed(call.trailing_metadata()) == EXPECTED_ECHO
        assert call.code() is grpc.StatusCode.OK


# --- status codes -----------------------------------------------------------------------


def unary_status(target: str, code: grpc.StatusCode) -> None:
    """The server ends a unary call with ``code``; details and echoed trailers arrive intact."""
    details = status_details(code.value[0])
    request = pb.EchoRequest(payload=b"x", status_code=code.value[0], status_message=details)
    with echo_stub(target) as stub:
        try:
            stub.Unary(request, metadata=ECHO_METADATA, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            assert error.code() is code
            assert error.details() == details
            assert echoed(error.trailing_metadata()) == EXPECTED_ECHO
        else:
            raise AssertionError(f"expected {code}, the call succeeded")


def server_stream_status(target: str, code: grpc.StatusCode) -> None:
    """The server sends 3 responses, then ends the stream with ``code``."""
    details = status_details(code.value[0])
    request = pb.EchoRequest(
        payload=b"y", response_count=3, status_code=code.value[0], status_message=details
    )
    received = []
    with echo_stub(target) as stub:
        call = stub.ServerStream(request, timeout=CALL_TIMEOUT_SECONDS)
        try:
            for response in call:
                received.append((response.index, response.payload))
        except grpc.RpcError as error:
            assert error.code() is code
            assert error.details() == details
        else:
            raise AssertionError(f"expected {code}, the stream ended OK")
    assert received == [(0, b"y"), (1, b"y"), (2, b"y")]


# --- message sizes ----------------------------------------------------------------------


def unary_message_size(target: str, size: int) -> None:
    """A ``size``-byte message goes client -> server and back (echo), then server -> client."""
    payload = patterned_bytes(size)
    with echo_stub(target) as stub:
        response = stub.Unary(pb.EchoRequest(payload=payload), timeout=CALL_TIMEOUT_SECONDS)
        assert_bytes_equal(response.payload, payload, f"{size}-byte echo")

        if size > 0:
            request = pb.EchoRequest(response_size=size)
            response = stub.Unary(request, timeout=CALL_TIMEOUT_SECONDS)
            assert_bytes_equal(response.payload, bytes(size), f"{size}-byte response")


def server_stream_large_messages(target: str, count: int = 3, size: int = 8 * MiB) -> None:
    with echo_stub(target) as stub:
        request = pb.EchoRequest(response_size=size, response_count=count)
        indexes = []
        for response in stub.ServerStream(request, timeout=CALL_TIMEOUT_SECONDS):
            assert_bytes_equal(response.payload, bytes(size), f"response {response.index}")
            indexes.append(response.index)
        assert indexes == list(range(count))


# --- concurrency ------------------------------------------------------------------------


def concurrent_unary(target: str, calls: int = 200) -> None:
    """``calls`` unary calls in flight at once on one channel all get their own answer."""
    with echo_stub(target) as stub:
        payloads = [f"call {i}:".encode() + patterned_bytes(i * 13, seed=i) for i in range(calls)]
        pending = [
            stub.Unary.future(pb.EchoRequest(payload=p), timeout=CALL_TIMEOUT_SECONDS)
            for p in payloads
        ]
        for i, (future, payload) in enumerate(zip(pending, payloads)):
            response = future.result(timeout=CALL_TIMEOUT_SECONDS)
            assert_bytes_equal(response.payload, payload, f"call {i}")


# --- unknown methods --------------------------------------------------------------------


def _assert_unimplemented(target: str, method: str) -> None:
    with open_channel(target) as channel:
        # No serializers: raw bytes in, raw bytes out.
        call = channel.unary_unary(method)
        try:
            call(b"", timeout=CALL_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.UNIMPLEMENTED, error
        else:
            raise AssertionError(f"calling {method} succeeded")


def unknown_method(target: str) -> None:
    _assert_unimplemented(target, "/h2rpc.test.EchoTest/Nope")


def unknown_service(target: str) -> None:
    _assert_unimplemented(target, "/h2rpc.test.NoSuchService/X")
