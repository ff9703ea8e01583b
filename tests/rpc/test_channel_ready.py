"""Waiting for a channel to be ready, as grpcio's users do: ``await channel.channel_ready()``
(grpc.aio) on ``rpc.Channel``, against servers that are up, not up yet, or never answer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import pytest

import rpc
from tests.interop.echo_servicer import make_server
from tests.rpc.helpers import eventually, run, serving

FAST_BACKOFF = {"initial_reconnect_backoff": 0.05, "max_reconnect_backoff": 0.1}


@contextlib.contextmanager
def reserved_port(listen: bool = False) -> Iterator[tuple[socket.socket, int]]:
    """A loopback port nobody serves: bound and closed (refused), or listening but never
    accepting, so that a client's HTTP/2 handshake hangs."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if listen:
        sock.listen(8)
    try:
        yield sock, sock.getsockname()[1]
    finally:
        sock.close()


def test_channel_ready_returns_once_connected() -> None:
    async def main() -> None:
        async with serving(make_server()) as target, rpc.Channel(target) as channel:
            await asyncio.wait_for(channel.channel_ready(), 5)
            assert channel._conn is not None and channel._conn.is_usable
            await asyncio.wait_for(channel.channel_ready(), 5)  # and at once when it is

    run(main())


def test_channel_ready_waits_for_a_server_that_starts_later() -> None:
    async def main() -> None:
        with reserved_port() as (sock, port):
            channel = rpc.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF)
            waiting = asyncio.ensure_future(channel.channel_ready())
            await eventually(lambda: channel._last_failure is not None)  # refused at least once
            assert not waiting.done()  # failures do not end the wait (grpc.aio's neither)
            sock.close()
            async with serving(make_server(), f"127.0.0.1:{port}"):
                await asyncio.wait_for(waiting, 5)
            await channel.close()

    run(main())


def test_channel_ready_is_bounded_with_wait_for() -> None:
    async def main() -> None:
        with reserved_port() as (_, port):
            async with rpc.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF) as channel:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(channel.channel_ready(), 0.3)

    run(main())


@pytest.mark.parametrize("phase", ["connecting", "backing-off"])
def test_closing_the_channel_ends_channel_ready_and_waiting_calls_with_cancelled(
    phase: str,
) -> None:
    # Was asyncio.CancelledError leaking into tasks nobody cancelled (while connecting).
    async def main() -> None:
        with reserved_port(listen=phase == "connecting") as (_, port):
            channel = rpc.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF)
            ready = asyncio.ensure_future(channel.channel_ready())
            call = asyncio.ensure_future(
                channel.unary_unary("/h2rpc.test.EchoTest/Unary")(b"", wait_for_ready=True)
            )
            if phase == "connecting":
                await eventually(lambda: channel.get_state() is rpc.ChannelConnectivity.CONNECTING)
            else:
                await eventually(lambda: channel._last_failure is not None)
            await channel.close()
            for waiter in (ready, call):
                with pytest.raises(rpc.RpcError) as info:
                    await asyncio.wait_for(waiter, 5)
                assert info.value.code() == rpc.StatusCode.CANCELLED
                assert info.value.details() == "channel is closed"

    run(main())


def test_cancelling_channel_ready_is_a_cancellation_and_the_channel_goes_on() -> None:
    async def main() -> None:
        with reserved_port(listen=True) as (_, port):
            channel = rpc.Channel(f"127.0.0.1:{port}")
            ready = asyncio.ensure_future(channel.channel_ready())
            await eventually(lambda: channel.get_state() is rpc.ChannelConnectivity.CONNECTING)
            ready.cancel()
            with pytest.raises(asyncio.CancelledError):
                await ready
            # the attempt itself goes on
            assert channel.get_state() is rpc.ChannelConnectivity.CONNECTING
            await channel.close()

    run(main())
