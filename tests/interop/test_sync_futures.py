"""``.future()`` of h2rpc's blocking client, and received metadata read as grpcio's blocking API
gives it, against grpcio's server and both h2rpc servers (real processes); where grpcio's own
client can run, it is asked too and the two must agree."""

from __future__ import annotations

import threading
import time
from typing import Any

import h2rpc_test_pb2 as pb
import pytest
import sync_client_cases as cases
from echo_cases_common import ECHO_METADATA, EXPECTED_ECHO, MiB, patterned_bytes

import rpc
from rpc.sync import FutureCancelledError, FutureTimeoutError

SERVICE = cases.SERVICE
UNARY = "/h2rpc.test.EchoTest/Unary"


@pytest.fixture(params=["grpcio", "h2rpc", "h2rpc_sync"])
def server_target(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_server_target")


def test_future_result_and_the_call_accessors(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(
            pb.EchoRequest(payload=b"hi"), timeout=10, metadata=ECHO_METADATA
        )
        assert future.result(timeout=10).payload == b"hi"
        assert future.done() and not future.running() and not future.cancelled()
        assert future.exception() is None and future.traceback() is None
        assert future.code() == rpc.StatusCode.OK and future.details() == ""
        assert not future.is_active()
        assert future.time_remaining() is not None and 0 < future.time_remaining() <= 10
        initial = future.initial_metadata()
        assert [(m.key, m.value) for m in initial if m.key.startswith("x-echo-")] == EXPECTED_ECHO
        assert cases.echoed(future.trailing_metadata()) == EXPECTED_ECHO
        assert future.cancel() is False  # done: nothing to cancel


def test_future_of_a_failed_call_raises_its_rpc_error(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(
            pb.EchoRequest(status_code=5, status_message="no such thing"),
            metadata=ECHO_METADATA,
        )
        with pytest.raises(rpc.RpcError) as info:
            future.result(timeout=10)
        error = info.value
        assert (error.code(), error.details()) == (rpc.StatusCode.NOT_FOUND, "no such thing")
        assert cases.echoed(error.trailing_metadata()) == EXPECTED_ECHO
        assert future.exception() is error
        assert future.traceback() is not None
        assert future.code() == rpc.StatusCode.NOT_FOUND
        assert future.details() == "no such thing"
        assert not future.cancelled() and future.done()


def test_result_timeout_is_future_timeout_error_and_the_call_goes_on(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(
            pb.EchoRequest(payload=b"late", sleep_ms=300), timeout=10
        )
        with pytest.raises(FutureTimeoutError):
            future.result(timeout=0.01)
        with pytest.raises(FutureTimeoutError):
            future.exception(timeout=0.01)
        assert future.running() and future.is_active()
        assert future.result(timeout=10).payload == b"late"


def test_deadline_of_a_future_is_deadline_exceeded(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        started = time.monotonic()
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest(sleep_ms=5000), timeout=0.3)
        error = future.exception(timeout=10)
        assert isinstance(error, rpc.RpcError)
        assert error.code() == rpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 4  # the timer fired, not the server's answer


def test_cancel_a_future_in_flight(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest(sleep_ms=5000), timeout=10)
        called = threading.Event()
        future.add_done_callback(lambda f: called.set() if f is future else None)
        assert future.cancel() is True
        assert future.cancelled() and future.done() and not future.running()
        with pytest.raises(FutureCancelledError):
            future.result()
        with pytest.raises(FutureCancelledError):
            future.exception()
        assert future.code() == rpc.StatusCode.CANCELLED
        assert future.cancel() is False
        assert called.wait(5)
        # the channel goes on
        assert rpc.Stub(channel, SERVICE).Unary(pb.EchoRequest(payload=b"next")).payload == b"next"


def test_done_callbacks_get_the_future_on_another_thread(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(
            pb.EchoRequest(payload=b"cb", sleep_ms=50), timeout=10
        )
        seen: list[Any] = []
        done = threading.Event()

        def callback(f: Any) -> None:
            seen.append((f, f.result().payload, threading.current_thread().name))
            done.set()

        future.add_done_callback(callback)
        assert done.wait(10)
        [(given, payload, thread)] = seen
        assert given is future and payload == b"cb" and thread == "h2rpc-future-callbacks"
        late: list[Any] = []
        future.add_done_callback(late.append)  # already done: called at once, here
        assert late == [future]


def test_stream_unary_future(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        requests = (pb.EchoRequest(payload=b"x" * i) for i in range(5))
        future = rpc.Stub(channel, SERVICE).ClientStream.future(requests, timeout=10)
        response = future.result(timeout=10)
        assert (response.received_count, response.received_bytes) == (5, 10)
        assert future.code() == rpc.StatusCode.OK


def test_a_large_request_goes_out_without_future_waiting_for_flow_control(
    server_target: str,
) -> None:
    payload = patterned_bytes(8 * MiB)
    with cases.channel(server_target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(
            pb.EchoRequest(payload=payload, response_size=1), timeout=30
        )
        assert future.result(timeout=30).payload == b"\x00"


def test_many_futures_on_a_connected_channel_need_no_thread_each(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        channel.channel_ready(timeout=10)
        before = {t.name for t in threading.enumerate()}
        futures = [
            stub.Unary.future(pb.EchoRequest(payload=b"%d" % i, sleep_ms=20), timeout=20)
            for i in range(64)
        ]
        names = [t.name for t in threading.enumerate() if t.name not in before]
        assert "h2rpc-future-start" not in names
        assert [f.result(timeout=20).payload for f in futures] == [b"%d" % i for i in range(64)]


def test_received_metadata_reads_like_grpcio_blocking_metadata(server_target: str) -> None:
    with cases.channel(server_target) as channel:
        _, call = rpc.Stub(channel, SERVICE).Unary.with_call(
            pb.EchoRequest(), metadata=ECHO_METADATA, timeout=10
        )
        for metadata in (call.initial_metadata(), call.trailing_metadata()):
            echoed = tuple(m for m in metadata if m.key.startswith("x-echo-"))
            assert echoed == tuple(EXPECTED_ECHO)  # compares with a tuple of pairs
            assert [(m.key, m.value) for m in echoed] == EXPECTED_ECHO
            first = metadata[0]
            assert isinstance(first, tuple) and first == (first.key, first.value)
            assert metadata["x-echo-repeated"] == "first"  # a key still gives its first value
            assert ("x-echo-ascii", "hello, world ~!") in metadata


def test_grpcio_client_and_h2rpc_agree_on_futures_and_metadata(server_target: str) -> None:
    grpc = pytest.importorskip("grpc")
    request = pb.EchoRequest(payload=b"both")
    failing = pb.EchoRequest(status_code=7, status_message="denied")
    with grpc.insecure_channel(server_target) as theirs_channel:
        unary = theirs_channel.unary_unary(
            UNARY,
            request_serializer=pb.EchoRequest.SerializeToString,
            response_deserializer=pb.EchoResponse.FromString,
        )
        theirs = unary.future(request, timeout=10, metadata=ECHO_METADATA)
        theirs.result(timeout=10)
        theirs_failed = unary.future(failing, timeout=10, metadata=ECHO_METADATA)
        theirs_failed.exception(timeout=10)
    with cases.channel(server_target) as channel:
        unary_h2 = rpc.Stub(channel, SERVICE).Unary
        ours = unary_h2.future(request, timeout=10, metadata=ECHO_METADATA)
        ours.result(timeout=10)
        ours_failed = unary_h2.future(failing, timeout=10, metadata=ECHO_METADATA)
        ours_failed.exception(timeout=10)

    def echo_items(metadata: Any) -> list[tuple[str, Any]]:
        return [(m.key, m.value) for m in metadata if m.key.startswith("x-echo-")]

    for mine, reference in ((ours, theirs), (ours_failed, theirs_failed)):
        assert echo_items(mine.initial_metadata()) == echo_items(reference.initial_metadata())
        assert echo_items(mine.trailing_metadata()) == echo_items(reference.trailing_metadata())
        assert mine.code() == reference.code()  # (h2rpc StatusCode equals grpcio's)
        assert mine.details() == reference.details()
        for method in ("done", "running", "cancelled", "cancel", "is_active"):
            assert getattr(mine, method)() == getattr(reference, method)(), method
    assert ours.result().payload == theirs.result().payload
    assert ours.exception() is None and theirs.exception() is None
    assert ours_failed.exception().code() == theirs_failed.exception().code()
    # grpcio's metadata tuple and ours compare equal to each other, either way round
    echoed_theirs = tuple(m for m in theirs.trailing_metadata() if m.key.startswith("x-echo-"))
    echoed_ours = rpc.Metadata.from_pairs(
        m for m in ours.trailing_metadata() if m.key.startswith("x-echo-")
    )
    assert echoed_ours == echoed_theirs and echoed_theirs == tuple(echoed_ours)
