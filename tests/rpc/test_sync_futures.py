"""Futures of the blocking API in process: ``rpc.sync.channel_ready_future``, ``.future()`` on
channels that are not connected yet, cancellation, transparent retry, callbacks, and the task
thread that drives them (the calls themselves against real servers are in
tests/interop/test_sync_futures.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import h2rpc_test_pb2 as pb
import pytest

import rpc
from codec.http2_errors import REFUSED_STREAM
from rpc.sync import FutureCancelledError, FutureTimeoutError
from rpc.sync.future_base import TaskThread
from tests.interop.echo_servicer import SERVICE
from tests.interop.echo_servicer_sync import make_sync_server
from tests.rpc.helpers import eventually, run
from transport import StreamResetError

FAST_BACKOFF = {"initial_reconnect_backoff": 0.05, "max_reconnect_backoff": 0.1}


@contextlib.contextmanager
def sync_serving(address: str = "127.0.0.1:0") -> Iterator[str]:
    server = make_sync_server(max_workers=16)
    port = server.add_insecure_port(address)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0.5)


@contextlib.contextmanager
def down_port() -> Iterator[tuple[socket.socket, int]]:
    """A loopback port where connections are refused until the socket is closed and a server
    takes the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock, sock.getsockname()[1]
    finally:
        sock.close()


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    run(eventually(predicate, timeout))


def starting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "h2rpc-future-start"]


# --- channel_ready_future ---------------------------------------------------------------


def test_channel_ready_future_of_a_connected_channel_is_done_at_once() -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        channel.channel_ready(timeout=5)
        future = rpc.sync.channel_ready_future(channel)
        assert future.done() and future.result(timeout=0) is None
        assert future.exception() is None and future.traceback() is None
        assert future.cancel() is False and not future.cancelled()


def test_channel_ready_future_waits_for_a_server_that_starts_later() -> None:
    with down_port() as (sock, port):
        with rpc.sync.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF) as channel:
            future = rpc.sync.channel_ready_future(channel)
            with pytest.raises(FutureTimeoutError):
                future.result(timeout=0.2)
            assert future.running() and not future.done()
            ready = threading.Event()
            future.add_done_callback(lambda f: ready.set())
            sock.close()
            with sync_serving(f"127.0.0.1:{port}"):
                assert future.result(timeout=5) is None
                assert ready.wait(5) and future.done()
                assert rpc.Stub(channel, SERVICE).Unary(pb.EchoRequest(payload=b"up")).payload


def test_channel_ready_future_can_be_cancelled_and_stops_trying() -> None:
    with down_port() as (_, port), rpc.sync.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF) as ch:
        future = rpc.sync.channel_ready_future(ch)
        called: list[Any] = []
        future.add_done_callback(called.append)
        assert future.cancel() is True
        assert future.cancelled() and future.done() and not future.running()
        with pytest.raises(FutureCancelledError):
            future.result()
        wait_until(lambda: called == [future])
        wait_until(
            lambda: not [t for t in threading.enumerate() if t.name == "h2rpc-channel-ready"]
        )


def test_channel_ready_future_of_a_closed_channel_never_becomes_ready() -> None:
    with down_port() as (_, port):
        channel = rpc.sync.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF)
        future = rpc.sync.channel_ready_future(channel)
        channel.close()
        with pytest.raises(FutureTimeoutError):  # as grpcio's: it just never matures
            future.result(timeout=0.3)
        wait_until(
            lambda: not [t for t in threading.enumerate() if t.name == "h2rpc-channel-ready"]
        )


def test_channel_ready_future_takes_only_a_blocking_channel() -> None:
    with pytest.raises(TypeError, match=r"await channel\.channel_ready\(\)"):
        rpc.sync.channel_ready_future(rpc.Channel("127.0.0.1:1"))  # type: ignore[arg-type]


# --- futures on channels that are not connected ------------------------------------------


def test_a_future_on_a_channel_not_yet_connected_connects_on_a_short_lived_thread() -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest(payload=b"a"), timeout=5)
        assert future.result(timeout=5).payload == b"a"
        wait_until(lambda: not starting_threads())


def test_fail_fast_and_wait_for_ready_futures_while_the_server_is_down() -> None:
    with down_port() as (sock, port):
        with rpc.sync.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF) as channel:
            unary = rpc.Stub(channel, SERVICE).Unary
            fail_fast = unary.future(pb.EchoRequest(payload=b"now"), timeout=5)
            waiting = unary.future(
                pb.EchoRequest(payload=b"later"), timeout=10, wait_for_ready=True
            )
            error = fail_fast.exception(timeout=5)
            assert isinstance(error, rpc.RpcError) and error.code() == rpc.StatusCode.UNAVAILABLE
            assert waiting.running()
            sock.close()
            with sync_serving(f"127.0.0.1:{port}"):
                assert waiting.result(timeout=5).payload == b"later"


def test_cancelling_a_wait_for_ready_future_ends_its_thread() -> None:
    with down_port() as (_, port), rpc.sync.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF) as ch:
        future = rpc.Stub(ch, SERVICE).Unary.future(pb.EchoRequest(), wait_for_ready=True)
        wait_until(lambda: ch._last_failure is not None)
        assert future.cancel() is True
        with pytest.raises(FutureCancelledError):
            future.result(timeout=5)
        wait_until(lambda: not starting_threads())


def test_closing_the_channel_ends_its_futures() -> None:
    with sync_serving() as target:
        channel = rpc.sync.Channel(target)
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest(sleep_ms=5000))
        wait_until(lambda: future._stream is not None)
        channel.close()
        error = future.exception(timeout=5)
        assert isinstance(error, rpc.RpcError)
        assert error.code() in (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.CANCELLED)


def test_a_request_that_cannot_be_serialized_fails_the_future_internal() -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future({"payload": b"x"}, timeout=5)
        error = future.exception(timeout=5)
        assert isinstance(error, rpc.RpcError) and error.code() == rpc.StatusCode.INTERNAL
        assert "Exception serializing request" in error.details()


def test_a_refused_stream_is_retried_transparently(monkeypatch: pytest.MonkeyPatch) -> None:
    refused: list[Any] = []
    open_now = rpc.sync.CallFuture._open_now

    def open_and_refuse_the_first(self: Any) -> Any:
        stream = open_now(self)  # under the call's lock: it advances once the stream looks refused
        if hasattr(stream, "stream_id") and not refused:
            # as if the server had answered RST_STREAM(REFUSED_STREAM)
            refused.append(stream)
            stream.reset(REFUSED_STREAM)
            stream._error = StreamResetError(REFUSED_STREAM, remote=True)
        return stream

    monkeypatch.setattr(rpc.sync.CallFuture, "_open_now", open_and_refuse_the_first)
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        channel.channel_ready(timeout=5)
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest(payload=b"again"))
        assert future.result(timeout=5).payload == b"again"
        assert len(refused) == 1 and future._stream is not refused[0] and future._retries == 1


def test_a_bug_while_advancing_ends_the_future_internal_instead_of_leaving_it_pending(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Any, stream: Any, headers: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(rpc.sync.CallFuture, "_on_response_head", broken)
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest())
        error = future.exception(timeout=5)
        assert isinstance(error, rpc.RpcError) and error.code() == rpc.StatusCode.INTERNAL
        assert "RuntimeError('bug')" in error.details()
    assert "future of /h2rpc.test.EchoTest/Unary failed" in caplog.text


# --- callbacks and the task thread -----------------------------------------------------


def test_a_callback_may_wait_for_another_future() -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        unary = rpc.Stub(channel, SERVICE).Unary
        first = unary.future(pb.EchoRequest(payload=b"1"), timeout=5)
        second = unary.future(pb.EchoRequest(payload=b"2", sleep_ms=200), timeout=5)
        got: list[bytes] = []
        first.add_done_callback(lambda f: got.append(second.result(timeout=5).payload))
        wait_until(lambda: got == [b"2"])


def test_a_callback_that_raises_is_logged_and_the_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        future = rpc.Stub(channel, SERVICE).Unary.future(pb.EchoRequest(sleep_ms=100), timeout=5)
        ran: list[str] = []

        def bad(f: Any) -> None:
            raise ValueError("oops")

        future.add_done_callback(bad)
        future.add_done_callback(lambda f: ran.append("after"))
        future.result(timeout=5)
        wait_until(lambda: ran == ["after"])
    assert "done callback" in caplog.text and "oops" in caplog.text


def test_deadline_timers_of_finished_calls_are_not_kept() -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        unary = rpc.Stub(channel, SERVICE).Unary
        for _ in range(200):
            unary.future(pb.EchoRequest(), timeout=3600).result(timeout=5)
        assert len(channel._future_tasks._timers) <= 65


def test_task_thread_runs_timers_in_order_skips_cancelled_ones_and_stops_when_idle() -> None:
    tasks = TaskThread("test-tasks", idle=0.05)
    done = threading.Event()
    order: list[str] = []
    start = time.monotonic()
    tasks.call_at(start + 0.3, lambda: order.append("b"))
    tasks.call_at(start + 0.2, lambda: order.append("a"))
    tasks.call_at(start + 0.25, lambda: order.append("never")).cancel()
    tasks.call_at(start + 0.4, done.set)
    tasks.call_soon(lambda: order.append("soon"))
    assert done.wait(5)
    assert sorted(order) == ["a", "b", "soon"] and order.index("a") < order.index("b")
    assert time.monotonic() - start >= 0.4
    wait_until(lambda: not tasks._running)  # idle: the thread ended
    again = threading.Event()
    tasks.call_soon(again.set)  # and starts again when there is work
    assert again.wait(5)
