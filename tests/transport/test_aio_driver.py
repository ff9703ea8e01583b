"""The asyncio driver over real sockets: address families, backpressure, sticky errors."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.rpc.helpers import eventually
from tests.transport.pair import REQUEST, RESPONSE, TRAILERS
from transport import (
    Address,
    AsyncConnection,
    ConnectionClosedError,
    ConnectionOptions,
    Listener,
    Stream,
    connect,
    parse_address,
)


def run(coro: Awaitable[Any], timeout: float = 20) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def serving(
    address: Address, handler: Callable[[Stream], Awaitable[None]], **kw: Any
) -> tuple[Listener, set[asyncio.Task[None]]]:
    tasks: set[asyncio.Task[None]] = set()

    def on_request(stream: Stream) -> None:
        task = asyncio.get_running_loop().create_task(handler(stream))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    listener = Listener(address, on_request, **kw)
    await listener.start()
    return listener, tasks


async def echo(stream: Stream) -> None:
    body = b""
    while chunk := await stream.read():
        body += chunk
    stream.send_headers(RESPONSE)
    await stream.send_data(body)
    stream.send_trailers(TRAILERS)


async def round_trip(address: Address) -> bytes:
    listener, _ = await serving(address, echo)
    target = address if address.path else Address(host=address.host, port=listener.port)
    conn = await connect(target)
    stream = await conn.open_stream(REQUEST)
    await stream.send_data(b"ping", end_stream=True)
    headers = await stream.receive_response_headers()
    assert dict(headers)[b":status"] == b"200"
    body = b""
    while chunk := await stream.read():
        body += chunk
    assert stream.trailers == TRAILERS
    conn.close()
    listener.stop_accepting()
    await listener.wait_stopped()
    return body


def test_tcp_ipv4_round_trip():
    assert run(round_trip(parse_address("127.0.0.1:0"))) == b"ping"


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
def test_tcp_ipv6_round_trip():
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("IPv6 loopback unavailable")
    assert run(round_trip(parse_address("[::1]:0"))) == b"ping"


def test_unix_socket_round_trip():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "h2rpc.sock")
        assert run(round_trip(parse_address(f"unix:{path}"))) == b"ping"


def test_slow_reader_bounds_memory_by_the_windows():
    """A server pushing 64 MiB at a client that reads nothing buffers at most the windows."""
    window = 256 * 1024
    options = ConnectionOptions(
        initial_window_size=window, connection_window_size=window, send_buffer_high_water=64 * 1024
    )
    sent = 0

    async def firehose(stream: Stream) -> None:
        nonlocal sent
        stream.send_headers(RESPONSE)
        chunk = bytes(64 * 1024)
        for _ in range(1024):
            await stream.send_data(chunk)
            sent += len(chunk)

    async def scenario() -> None:
        listener, tasks = await serving(parse_address("127.0.0.1:0"), firehose, options=options)
        conn = await connect(Address(host="127.0.0.1", port=listener.port), options=options)
        stream = await conn.open_stream(REQUEST, end_stream=True)
        await stream.receive_response_headers()

        def buffered() -> int:
            return sum(len(data) for data, _ in stream._inbox)

        await eventually(lambda: buffered() >= window)  # the client reads nothing meanwhile
        assert buffered() <= window
        # The sender is parked by backpressure, not buffering: what it handed over is bounded
        # by the window plus its own high-water mark plus one chunk.
        assert sent <= window + 64 * 1024 + 64 * 1024 * 2
        # Reading resumes the flow.
        got = 0
        while got < 4 * 1024 * 1024:
            got += len(await stream.read())
        assert sent >= 4 * 1024 * 1024
        conn.close()
        for task in tasks:
            task.cancel()
        listener.stop_accepting()

    run(scenario())


def test_lost_connection_fails_every_pending_stream_at_once():
    async def never_answer(stream: Stream) -> None:
        await asyncio.sleep(3600)

    async def scenario() -> None:
        listener, tasks = await serving(parse_address("127.0.0.1:0"), never_answer)
        conn = await connect(Address(host="127.0.0.1", port=listener.port))
        streams = [await conn.open_stream(REQUEST, end_stream=True) for _ in range(5)]
        await eventually(lambda: len(tasks) == 5)  # the server is serving all five
        for server_conn in list(listener.connections):
            assert server_conn._transport is not None
            server_conn._transport.abort()  # the server vanishes
        results = await asyncio.gather(
            *(s.receive_response_headers() for s in streams), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionClosedError) for r in results), results
        # The error is sticky: a new stream on that connection fails the same way.
        with pytest.raises(ConnectionClosedError):
            await conn.open_stream(REQUEST)
        for task in tasks:
            task.cancel()
        listener.stop_accepting()

    run(scenario())


async def _counting_writes(body: Callable[[AsyncConnection, list[int]], Any]) -> Any:
    """Run ``body(conn, writes)`` on a client connection whose transport writes are counted
    (``writes`` gets each write's size), against a server that reads and never answers."""

    async def ignore(stream: Stream) -> None:
        await stream.read()

    listener, _ = await serving(parse_address("127.0.0.1:0"), ignore)
    conn = await connect(Address(host="127.0.0.1", port=listener.port))
    transport = conn._transport
    assert transport is not None
    writes: list[int] = []
    real_write = transport.write

    def counting_write(data: Any) -> None:
        writes.append(len(data))
        real_write(data)

    transport.write = counting_write  # type: ignore[method-assign]
    try:
        return await body(conn, writes)
    finally:
        conn.close()
        listener.stop_accepting()
        await listener.wait_stopped()


def test_a_busy_iteration_writes_every_flush_every_frames_not_once_at_its_end():
    """64 requests opened in one loop iteration leave in a few writes, so the peer starts early."""
    from transport.aio import FLUSH_EVERY

    async def body(conn: AsyncConnection, writes: list[int]) -> list[int]:
        for _ in range(64):  # no await in between: all in one iteration
            conn.session.open_stream(REQUEST, end_stream=True)
        during = len(writes)
        await asyncio.sleep(0)  # one loop iteration: the end-of-iteration flush runs
        return [during, len(writes)]

    during, after = run(_counting_writes(body))
    assert during == 64 // FLUSH_EVERY
    assert after == during  # the 64th request completed the last batch: nothing left over


def test_bulk_data_is_written_once_flush_bytes_pile_up(monkeypatch: pytest.MonkeyPatch):
    import transport.aio

    monkeypatch.setattr(transport.aio, "FLUSH_BYTES", 4096)

    async def body(conn: AsyncConnection, writes: list[int]) -> tuple[int, int]:
        stream = conn.session.open_stream(REQUEST)
        stream._queue_data(b"x" * 1000, False)  # below the threshold: waits for the iteration
        small = len(writes)
        stream._queue_data(b"x" * 5000, False)  # above: written at once
        return small, len(writes)

    small, big = run(_counting_writes(body))
    assert (small, big) == (0, 1)
