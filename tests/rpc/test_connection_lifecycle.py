"""Graceful shutdown, GOAWAY, reconnection with backoff, wait-for-ready, keepalive."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

import rpc
from tests.rpc.helpers import eventually, generic_server, run, serving


async def sleepy(request: bytes, context: rpc.ServicerContext) -> bytes:
    await asyncio.sleep(float(request or b"0"))  # a call that lasts as long as it is asked to
    return b"done " + request


HANDLERS = {"Sleep": rpc.unary_unary_rpc_method_handler(sleepy)}


def test_graceful_stop_lets_in_flight_calls_finish_and_refuses_new_ones():
    async def body() -> None:
        server = generic_server(HANDLERS)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/t.T/Sleep")
            in_flight = [asyncio.ensure_future(call(b"0.3")) for _ in range(5)]
            await eventually(lambda: len(server._calls) == 5)  # all five are being served
            conn = channel._conn
            stopping = asyncio.ensure_future(server.stop(grace=5))
            await eventually(lambda: conn is not None and conn.goaway_received)  # it stops
            assert await asyncio.gather(*in_flight) == [b"done 0.3"] * 5
            await stopping
            with pytest.raises(rpc.RpcError) as info:
                await call(b"0")
            assert info.value.code() == rpc.StatusCode.UNAVAILABLE

    run(body())


def test_stop_after_grace_cancels_what_is_left():
    async def body() -> None:
        server = generic_server(HANDLERS)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            slow = asyncio.ensure_future(channel.unary_unary("/t.T/Sleep")(b"30"))
            await eventually(lambda: len(server._calls) == 1)  # it is being served
            started = time.monotonic()
            await server.stop(grace=0.2)
            with pytest.raises(rpc.RpcError) as info:
                await slow
            assert info.value.code() == rpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 3

    run(body())


def test_goaway_moves_new_calls_to_a_new_connection():
    async def body() -> None:
        server = generic_server(HANDLERS)
        async with serving(server) as target, rpc.Channel(target) as channel:
            call = channel.unary_unary("/t.T/Sleep")
            await call(b"0")
            first = channel._conn
            slow = asyncio.ensure_future(call(b"0.3"))
            await eventually(lambda: len(server._calls) == 1)  # the server has its stream
            for listener in server._listeners:
                for conn in listener.connections:
                    conn.goaway()  # as a server draining this connection would
            await eventually(lambda: first is not None and first.goaway_received)
            assert await call(b"0") == b"done 0"
            assert channel._conn is not first
            assert await slow == b"done 0.3"  # the old connection finished its call

    run(body())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_reconnects_after_the_server_restarts_and_wait_for_ready_waits():
    async def body() -> None:
        port = free_port()
        target = f"127.0.0.1:{port}"
        async with rpc.Channel(target, initial_reconnect_backoff=0.1) as channel:
            call = channel.unary_unary("/t.T/Sleep")
            # Nothing listens yet: a plain call fails fast with UNAVAILABLE...
            with pytest.raises(rpc.RpcError) as info:
                await call(b"0", timeout=5)
            assert info.value.code() == rpc.StatusCode.UNAVAILABLE
            # ...while a wait-for-ready call waits for the server to come up.
            waiting = asyncio.ensure_future(call(b"0", timeout=10, wait_for_ready=True))
            await asyncio.sleep(0.3)  # a time that must pass: several reconnect attempts fail
            assert not waiting.done()
            server = generic_server(HANDLERS)
            server.add_insecure_port(target)
            await server.start()
            assert await waiting == b"done 0"
            await server.stop(0)
            # The connection is lost; the next call reconnects to the restarted server.
            server = generic_server(HANDLERS)
            server.add_insecure_port(target)
            await server.start()
            assert await call(b"0", wait_for_ready=True, timeout=10) == b"done 0"
            await server.stop(0)

    run(body())


def test_wait_for_ready_still_honours_the_deadline():
    async def body() -> None:
        async with rpc.Channel(f"127.0.0.1:{free_port()}") as channel:
            with pytest.raises(rpc.RpcError) as info:
                await channel.unary_unary("/t.T/X")(b"", timeout=0.5, wait_for_ready=True)
            assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED

    run(body())


EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A server that sends its SETTINGS, then hangs: reads nothing, answers nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.sendall(EMPTY_SETTINGS)  # completes the HTTP/2 handshake, then never again
            conns.append(conn)
        for conn in conns:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def test_keepalive_detects_a_peer_that_stops_answering(silent_server: int):
    async def body() -> None:
        channel = rpc.Channel(
            f"127.0.0.1:{silent_server}", keepalive_time=0.2, keepalive_timeout=0.3
        )
        async with channel:
            started = time.monotonic()
            with pytest.raises(rpc.RpcError) as info:
                await channel.unary_unary("/t.T/X")(b"")  # no deadline: only keepalive saves us
            assert info.value.code() == rpc.StatusCode.UNAVAILABLE
            assert "keepalive" in info.value.details()
            assert time.monotonic() - started < 3

    run(body())


def test_server_answers_a_ping_flood_with_goaway_too_many_pings():
    async def body() -> None:
        server = generic_server(HANDLERS, min_ping_interval=10, max_ping_strikes=2)
        async with serving(server) as target:
            channel = rpc.Channel(
                target,
                keepalive_time=0.05,
                keepalive_permit_without_calls=True,
            )
            async with channel:
                await channel.unary_unary("/t.T/Sleep")(b"0")
                conn = channel._conn
                assert conn is not None
                await eventually(lambda: conn.goaway_received, timeout=5)
                assert conn.goaway_debug_data == b"too_many_pings"
                # The channel backs off its keepalive and carries on on a new connection.
                assert await channel.unary_unary("/t.T/Sleep")(b"0") == b"done 0"
                assert channel._connection_options.keepalive_time == pytest.approx(0.1)

    run(body())


def test_a_peer_that_never_speaks_http2_fails_the_connection_attempt():
    """Accepted TCP, but no SETTINGS: the attempt times out (UNAVAILABLE), no call hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:

        async def body() -> None:
            target = f"127.0.0.1:{listener.getsockname()[1]}"
            async with rpc.Channel(target, min_connect_timeout=0.3) as channel:
                started = time.monotonic()
                with pytest.raises(rpc.RpcError) as info:
                    await channel.unary_unary("/t.T/X")(b"")
                assert info.value.code() == rpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 3

        run(body())
    finally:
        listener.close()
