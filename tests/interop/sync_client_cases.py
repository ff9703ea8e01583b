"""Interop cases driven by h2rpc's blocking client (``rpc.sync.Channel``) against an EchoTest
server: the cases of h2rpc_client_cases.py, plus deadlines, cancellation, compression and a
server stop with calls in flight. Each function takes a target and raises AssertionError."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))
from compile import ensure_proto_path

ensure_proto_path()
import h2rpc_test_pb2 as pb  # noqa: E402
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

import rpc  # noqa: E402

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]
NON_OK_STATUS_CODES = tuple(code for code in rpc.StatusCode if code != rpc.StatusCode.OK)


def channel(target: str) -> rpc.sync.Channel:
    return rpc.sync.Channel(
        target,
        max_receive_message_length=MAX_MESSAGE_LENGTH,
        max_send_message_length=MAX_MESSAGE_LENGTH,
    )


def unary_echo(target: str) -> None:
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        response = stub.Unary(pb.EchoRequest(payload=b"hello"), timeout=CALL_TIMEOUT_SECONDS)
        assert (response.payload, response.index) == (b"hello", 0)


def server_stream(target: str) -> None:
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        call = stub.ServerStream(pb.EchoRequest(payload=b"abc", response_count=5))
        assert [(r.index, r.payload) for r in call] == [(i, b"abc") for i in range(5)]
        assert call.code() == rpc.StatusCode.OK
        assert list(stub.ServerStream(pb.EchoRequest())) == []


def client_stream(target: str) -> None:
    sizes = [0, 1, 10, 1000, 70_000]
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        requests = (pb.EchoRequest(payload=patterned_bytes(n, seed=n)) for n in sizes)
        response = stub.ClientStream(requests, timeout=CALL_TIMEOUT_SECONDS)
        assert (response.received_count, response.received_bytes) == (len(sizes), sum(sizes))
        response = stub.ClientStream(iter(()))
        assert (response.received_count, response.received_bytes) == (0, 0)


def bidi_ping_pong(target: str) -> None:
    """Each response arrives before the next request is produced."""
    payloads = [f"message {i}".encode() * (i + 1) for i in range(10)]
    outbox: queue.Queue[pb.EchoRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.EchoRequest]:
        while (request := outbox.get(timeout=CALL_TIMEOUT_SECONDS)) is not None:
            yield request

    with channel(target) as ch:
        call = rpc.Stub(ch, SERVICE).Bidi(requests(), timeout=CALL_TIMEOUT_SECONDS)
        try:
            for index, payload in enumerate(payloads):
                outbox.put(pb.EchoRequest(payload=payload))
                response = next(call)
                assert (response.index, response.payload) == (index, payload)
        finally:
            outbox.put(None)
        assert list(call) == []
        assert call.code() == rpc.StatusCode.OK


def metadata_echo(target: str) -> None:
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        response, call = stub.Unary.with_call(pb.EchoRequest(payload=b"md"), metadata=ECHO_METADATA)
        assert response.payload == b"md"
        assert echoed(call.initial_metadata()) == EXPECTED_ECHO
        assert echoed(call.trailing_metadata()) == EXPECTED_ECHO
        requests = [pb.EchoRequest(payload=b"one"), pb.EchoRequest(payload=b"two")]
        call = stub.Bidi(iter(requests), metadata=ECHO_METADATA)
        assert echoed(call.initial_metadata()) == EXPECTED_ECHO
        assert [r.payload for r in call] == [b"one", b"two"]
        assert echoed(call.trailing_metadata()) == EXPECTED_ECHO


def status(target: str, code: rpc.StatusCode) -> None:
    details = status_details(int(code))
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        request = pb.EchoRequest(status_code=int(code), status_message=details)
        try:
            stub.Unary(request, metadata=ECHO_METADATA)
        except rpc.RpcError as error:
            assert (error.code(), error.details()) == (code, details)
            assert echoed(error.trailing_metadata()) == EXPECTED_ECHO
        else:
            raise AssertionError(f"expected {code}")
        request = pb.EchoRequest(
            payload=b"y", response_count=3, status_code=int(code), status_message=details
        )
        received = []
        try:
            for response in stub.ServerStream(request):
                received.append(response.index)
        except rpc.RpcError as error:
            assert (error.code(), error.details()) == (code, details)
        else:
            raise AssertionError(f"expected {code} after the stream")
        assert received == [0, 1, 2]


def large_messages(target: str) -> None:
    payload = patterned_bytes(8 * MiB)
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        assert_bytes_equal(stub.Unary(pb.EchoRequest(payload=payload)).payload, payload)
        for response in stub.ServerStream(pb.EchoRequest(response_size=8 * MiB, response_count=2)):
            assert_bytes_equal(response.payload, bytes(8 * MiB))
        for size in (0, 1):
            assert stub.Unary(pb.EchoRequest(payload=bytes(size))).payload == bytes(size)


def deadline(target: str) -> None:
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        started = time.monotonic()
        try:
            stub.Unary(pb.EchoRequest(sleep_ms=3000), timeout=0.3)
        except rpc.RpcError as error:
            assert error.code() == rpc.StatusCode.DEADLINE_EXCEEDED, error
        else:
            raise AssertionError("expected DEADLINE_EXCEEDED")
        assert time.monotonic() - started < 2
        assert 3 < stub.Unary(pb.EchoRequest(), timeout=5).time_remaining <= 5.1


def cancellation(target: str) -> None:
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)
        call = stub.ServerStream(pb.EchoRequest(response_count=1000, sleep_ms=20))
        assert next(call).index == 0
        threading.Timer(0.05, call.cancel).start()  # from another thread
        try:
            for _ in call:
                pass
        except rpc.RpcError as error:
            assert error.code() == rpc.StatusCode.CANCELLED
        else:
            raise AssertionError("expected CANCELLED")
        assert call.cancelled()
        assert stub.Unary(pb.EchoRequest(payload=b"ok")).payload == b"ok"


def compression(target: str) -> None:
    payload = b"squeeze " * 4000
    with rpc.sync.Channel(target, compression="gzip") as ch:
        stub = rpc.Stub(ch, SERVICE)
        assert (
            stub.Unary(pb.EchoRequest(payload=payload, compress_response=True)).payload == payload
        )
        request = pb.EchoRequest(
            payload=payload, response_count=4, compress_response=True, uncompressed_odd=True
        )
        assert [r.index for r in stub.ServerStream(request, compression="deflate")] == [0, 1, 2, 3]


def unimplemented(target: str) -> None:
    with channel(target) as ch:
        for method in ("/h2rpc.test.EchoTest/Nope", "/h2rpc.test.NoSuchService/X"):
            try:
                ch.unary_unary(method)(b"")
            except rpc.RpcError as error:
                assert error.code() == rpc.StatusCode.UNIMPLEMENTED
            else:
                raise AssertionError(f"{method} succeeded")


def threads_share_one_channel(target: str, threads: int = 32, calls: int = 20) -> None:
    with channel(target) as ch:
        stub = rpc.Stub(ch, SERVICE)

        def worker(n: int) -> None:
            for i in range(calls):
                payload = f"{n}:{i}".encode()
                if i % 2:
                    assert stub.Unary(pb.EchoRequest(payload=payload)).payload == payload
                else:
                    got = [
                        r.payload for r in stub.Bidi(iter([pb.EchoRequest(payload=payload)] * 2))
                    ]
                    assert got == [payload, payload]

        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(worker, n) for n in range(threads)]:
                future.result(timeout=60)
        assert ch._conn is not None and ch._conn.active_streams == 0
