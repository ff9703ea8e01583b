"""Shared helpers for in-process rpc tests: bounded asyncio runs and servers for one test, and
polling for a condition (``eventually`` in asyncio, ``wait_until`` in threads) instead of sleeping
for a time that is usually enough."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import rpc


def run(coro: Awaitable[Any], timeout: float = 30) -> Any:
    """Run a coroutine on a fresh loop, failing fast if it hangs."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def generic_server(
    handlers: Mapping[str, rpc.MethodHandler], service: str = "t.T", **options: Any
) -> rpc.Server:
    return rpc.Server([rpc.method_handlers_generic_handler(service, handlers)], **options)


@contextlib.asynccontextmanager
async def serving(server: rpc.Server, address: str = "127.0.0.1:0") -> AsyncIterator[str]:
    """Start ``server`` on ``address`` and yield its target; stop it afterwards."""
    port = server.add_insecure_port(address)
    await server.start()
    try:
        yield address if address.startswith("unix") else f"127.0.0.1:{port}"
    finally:
        await server.stop(0.5)


@contextlib.contextmanager
def serving_blocking(server: Any) -> Iterator[str]:
    """Start ``server`` (an ``rpc.sync.Server``, or an ``rpc.Server`` on a loop of its own in a
    thread, for tests whose clients block) on a loopback port; yield its target; stop it."""
    port = server.add_insecure_port("127.0.0.1:0")
    if isinstance(server, rpc.sync.Server):
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(0.5)
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server-loop", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(0.5), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def eventually(
    predicate: Callable[[], bool],
    timeout: float = 5.0,
    message: str = "condition not reached in time",
) -> None:
    """Wait until ``predicate()`` holds, polling; AssertionError(message) after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    interval = 0.001  # quick conditions are seen at once, slow ones cost few polls
    while not predicate():
        if loop.time() > end:
            raise AssertionError(message)
        await asyncio.sleep(interval)
        interval = min(2 * interval, 0.01)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 5.0,
    message: str = "condition not reached in time",
) -> None:
    """``eventually`` for threads: block until ``predicate()`` holds, polling; AssertionError
    after ``timeout``."""
    end = time.monotonic() + timeout
    interval = 0.001
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(message)
        time.sleep(interval)
        interval = min(2 * interval, 0.01)
