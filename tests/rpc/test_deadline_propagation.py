"""Deadline propagation from every kind of handler: a call a handler makes inherits its deadline.

The handler kinds are the ways h2rpc runs application code: ``async def`` (and async generators)
as tasks of ``rpc.Server``, plain ``def`` handlers in ``rpc.Server``'s thread pool, and plain
``def`` handlers on ``rpc.sync.Server``'s handler threads. Each outer handler calls a backend
without a timeout of its own; the backend must see at most the caller's remaining time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, Optional

import pytest

import rpc
from tests.rpc.helpers import generic_server, run, serving

CALLER_TIMEOUT = 5.0


class Backend:
    """A blocking server that records the time remaining of every call it gets."""

    def __init__(self) -> None:
        self.seen: list[Optional[float]] = []

        def record(request: bytes, context: Any) -> bytes:
            self.seen.append(context.time_remaining())
            return b"ok"

        self.server = rpc.sync.Server(
            [
                rpc.method_handlers_generic_handler(
                    "t.Backend", {"Record": rpc.unary_unary_rpc_method_handler(record)}
                )
            ],
            max_workers=2,
        )
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"

    def __enter__(self) -> Backend:
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop(0.5)


def call_backend_blocking(target: str) -> bytes:
    """No timeout here: only an inherited deadline can bound this call."""
    with rpc.sync.Channel(target) as channel:
        reply: bytes = channel.unary_unary("/t.Backend/Record")(b"")
        return reply


async def call_backend_async(target: str) -> bytes:
    async with rpc.Channel(target) as channel:
        reply: bytes = await channel.unary_unary("/t.Backend/Record")(b"")
        return reply


def assert_inherited(seen: list[Optional[float]]) -> None:
    assert len(seen) == 1
    remaining = seen[0]
    assert remaining is not None, "the backend call had no deadline: propagation lost"
    assert 0 < remaining <= CALLER_TIMEOUT


# ---------------------------------------------------------------------- the handler kinds


async def async_unary(request: bytes, context: Any) -> bytes:
    return await call_backend_async(request.decode())


async def async_generator(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield await call_backend_async(request.decode())


def def_unary(request: bytes, context: Any) -> bytes:
    return call_backend_blocking(request.decode())


def def_streaming(request: bytes, context: Any) -> Iterator[bytes]:
    yield call_backend_blocking(request.decode())


async def call_async_server(
    handler: rpc.MethodHandler, target: str, timeout: Optional[float]
) -> None:
    server = generic_server({"Outer": handler})
    async with serving(server) as outer_target, rpc.Channel(outer_target) as channel:
        if handler.response_streaming:
            call = channel.unary_stream("/t.T/Outer")(target.encode(), timeout=timeout)
            assert [m async for m in call] == [b"ok"]
        else:
            assert (
                await channel.unary_unary("/t.T/Outer")(target.encode(), timeout=timeout) == b"ok"
            )


HandlerFactory = Callable[..., rpc.MethodHandler]


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (async_unary, rpc.unary_unary_rpc_method_handler),
        (async_generator, rpc.unary_stream_rpc_method_handler),
        (def_unary, rpc.unary_unary_rpc_method_handler),
        (def_streaming, rpc.unary_stream_rpc_method_handler),
    ],
    ids=["async-def", "async-generator", "def-in-thread-pool", "def-generator-in-thread-pool"],
)
def test_async_server_handlers_propagate_their_deadline(
    handler: Callable[..., Any], kind: HandlerFactory
) -> None:
    with Backend() as backend:
        run(call_async_server(kind(handler), backend.target, CALLER_TIMEOUT))
    assert_inherited(backend.seen)


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (def_unary, rpc.unary_unary_rpc_method_handler),
        (def_streaming, rpc.unary_stream_rpc_method_handler),
    ],
    ids=["def", "def-generator"],
)
def test_blocking_server_handlers_propagate_their_deadline(
    handler: Callable[..., Any], kind: HandlerFactory
) -> None:
    method = kind(handler)
    server = rpc.sync.Server(
        [rpc.method_handlers_generic_handler("t.T", {"Outer": method})], max_workers=1
    )
    port = server.add_insecure_port("127.0.0.1:0")
    with Backend() as backend, server, rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        if method.response_streaming:
            assert list(
                channel.unary_stream("/t.T/Outer")(backend.target.encode(), timeout=CALLER_TIMEOUT)
            ) == [b"ok"]
        else:
            assert (
                channel.unary_unary("/t.T/Outer")(backend.target.encode(), timeout=CALLER_TIMEOUT)
                == b"ok"
            )
        assert_inherited(backend.seen)
        # The same (only) handler thread serves a call without a deadline next: the first
        # call's deadline must not have stayed behind on the thread.
        backend.seen.clear()
        if method.response_streaming:
            list(channel.unary_stream("/t.T/Outer")(backend.target.encode()))
        else:
            channel.unary_unary("/t.T/Outer")(backend.target.encode())
        assert backend.seen == [None]


def test_def_handlers_on_the_async_server_do_not_leak_a_deadline_to_the_next_call() -> None:
    with Backend() as backend:

        async def body() -> None:
            server = generic_server({"Outer": rpc.unary_unary_rpc_method_handler(def_unary)})
            async with serving(server) as target, rpc.Channel(target) as channel:
                outer = channel.unary_unary("/t.T/Outer")
                await outer(backend.target.encode(), timeout=CALLER_TIMEOUT)
                await outer(backend.target.encode())

        run(body())
    assert backend.seen[0] is not None and backend.seen[1] is None


def test_the_blocking_servers_thread_context_starts_empty_for_each_call() -> None:
    """A handler's own contextvars do not survive into the next call on the same thread."""
    import contextvars

    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    seen: list[str] = []
    threads: set[int] = set()

    def handler(request: bytes, context: Any) -> bytes:
        threads.add(threading.get_ident())
        seen.append(marker.get())
        marker.set("set by a call")
        return b""

    server = rpc.sync.Server(
        [
            rpc.method_handlers_generic_handler(
                "t.T", {"M": rpc.unary_unary_rpc_method_handler(handler)}
            )
        ],
        max_workers=1,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    with server, rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        for _ in range(3):
            channel.unary_unary("/t.T/M")(b"")
    assert len(threads) == 1
    assert seen == ["unset"] * 3


def test_an_asyncio_task_spawned_by_a_handler_inherits_the_deadline() -> None:
    with Backend() as backend:

        async def spawning(request: bytes, context: Any) -> bytes:
            return await asyncio.ensure_future(call_backend_async(request.decode()))

        run(
            call_async_server(
                rpc.unary_unary_rpc_method_handler(spawning), backend.target, CALLER_TIMEOUT
            )
        )
    assert_inherited(backend.seen)
