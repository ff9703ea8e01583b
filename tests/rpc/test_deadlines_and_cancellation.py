"""Deadlines (expiry, enforcement, propagation) and cancellation, h2rpc to h2rpc."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rpc
from tests.rpc.helpers import eventually, generic_server, run, serving


def test_server_enforces_the_deadline_and_the_handler_sees_its_remaining_time():
    seen: dict[str, Any] = {}

    async def slow(request: bytes, context: rpc.ServicerContext) -> bytes:
        seen["remaining"] = context.time_remaining()
        context.add_done_callback(lambda ctx: seen.setdefault("done_cancelled", ctx.cancelled()))
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        return b""

    server = generic_server({"Slow": rpc.unary_unary_rpc_method_handler(slow)})

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            started = time.monotonic()
            with pytest.raises(rpc.RpcError) as info:
                await channel.unary_unary("/t.T/Slow")(b"", timeout=0.3)
            assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 2
            await eventually(lambda: "done_cancelled" in seen)
        assert 0 < seen["remaining"] <= 0.3
        assert seen["cancelled"] is True
        assert seen["done_cancelled"] is True

    run(body())


def test_server_side_deadline_answers_deadline_exceeded_even_if_the_client_waits():
    """The server's own timer fires (the client has no timer of its own here)."""

    async def slow(request: bytes, context: rpc.ServicerContext) -> bytes:
        await asyncio.sleep(10)
        return b""

    server = generic_server({"Slow": rpc.unary_unary_rpc_method_handler(slow)})

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            call = channel.unary_unary("/t.T/Slow")(b"", timeout=0.2)
            call._timer.cancel()  # only the grpc-timeout header is left to act
            with pytest.raises(rpc.RpcError) as info:
                await call
            assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED

    run(body())


def test_deadline_propagates_to_calls_made_inside_a_handler():
    seen: list[float | None] = []

    async def inner(request: bytes, context: rpc.ServicerContext) -> bytes:
        seen.append(context.time_remaining())
        return b"inner"

    async def outer(request: bytes, context: rpc.ServicerContext) -> bytes:
        async with rpc.Channel(request.decode()) as channel:
            # No timeout given: the outer call's deadline is inherited automatically...
            await channel.unary_unary("/t.T/Inner")(b"")
            # ...unless the handler opts out.
            with rpc.no_deadline_propagation():
                await channel.unary_unary("/t.T/Inner")(b"")
        return b"outer"

    inner_server = generic_server({"Inner": rpc.unary_unary_rpc_method_handler(inner)})
    outer_server = generic_server({"Outer": rpc.unary_unary_rpc_method_handler(outer)})

    async def body() -> None:
        async with serving(inner_server) as inner_target, serving(outer_server) as outer_target:
            async with rpc.Channel(outer_target) as channel:
                await channel.unary_unary("/t.T/Outer")(inner_target.encode(), timeout=5)

    run(body())
    assert seen[0] is not None and 4 < seen[0] <= 5
    assert seen[1] is None


def test_deadline_scope_tightens_the_deadline_of_calls_inside():
    async def body() -> None:
        assert rpc.current_deadline() is None
        with rpc.deadline_scope(10) as outer:
            assert outer is not None
            with rpc.deadline_scope(60) as looser:
                assert looser == outer  # never looser than the enclosing scope
            with rpc.deadline_scope(1) as tighter:
                assert tighter is not None and tighter < outer
        assert rpc.current_deadline() is None

    run(body())


def test_inherited_deadline_is_the_tighter_one():
    seen: list[float | None] = []

    async def inner(request: bytes, context: rpc.ServicerContext) -> bytes:
        seen.append(context.time_remaining())
        return b""

    async def outer(request: bytes, context: rpc.ServicerContext) -> bytes:
        async with rpc.Channel(request.decode()) as channel:
            await channel.unary_unary("/t.T/Inner")(b"")  # inherits ~2 s
            await channel.unary_unary("/t.T/Inner")(b"", timeout=60)  # still ~2 s: tighter
            await channel.unary_unary("/t.T/Inner")(b"", timeout=0.5)  # own is tighter
        return b""

    inner_server = generic_server({"Inner": rpc.unary_unary_rpc_method_handler(inner)})
    outer_server = generic_server({"Outer": rpc.unary_unary_rpc_method_handler(outer)})

    async def body() -> None:
        async with serving(inner_server) as inner_target, serving(outer_server) as outer_target:
            async with rpc.Channel(outer_target) as channel:
                await channel.unary_unary("/t.T/Outer")(inner_target.encode(), timeout=2)

    run(body())
    assert all(r is not None for r in seen)
    assert 1.0 < seen[0] <= 2.0 and 1.0 < seen[1] <= 2.0
    assert seen[2] <= 0.5


@pytest.mark.parametrize("kind", ["unary_stream", "stream_unary", "stream_stream"])
def test_client_cancel_of_any_kind_reaches_the_handler(kind: str):
    seen: dict[str, Any] = {}

    async def wait_forever(context: rpc.ServicerContext) -> None:
        context.add_done_callback(lambda ctx: seen.setdefault("cancelled", ctx.cancelled()))
        seen["started"] = True
        await asyncio.sleep(30)

    async def us(request: bytes, context: rpc.ServicerContext) -> AsyncIterator[bytes]:
        yield b"started"
        await wait_forever(context)

    async def su(requests: AsyncIterator[bytes], context: rpc.ServicerContext) -> bytes:
        await wait_forever(context)
        return b""

    async def ss(
        requests: AsyncIterator[bytes], context: rpc.ServicerContext
    ) -> AsyncIterator[bytes]:
        yield b"started"
        await wait_forever(context)

    server = generic_server(
        {
            "US": rpc.unary_stream_rpc_method_handler(us),
            "SU": rpc.stream_unary_rpc_method_handler(su),
            "SS": rpc.stream_stream_rpc_method_handler(ss),
        }
    )

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            if kind == "unary_stream":
                call: Any = channel.unary_stream("/t.T/US")(b"")
                assert await call.read() == b"started"
            elif kind == "stream_unary":
                call = channel.stream_unary("/t.T/SU")()
                await call.write(b"x")
                await eventually(lambda: "started" in seen)  # the handler runs
            else:
                call = channel.stream_stream("/t.T/SS")()
                await call.write(b"x")
                assert await call.read() == b"started"
            assert call.cancel()
            assert call.cancelled()
            assert await call.code() == rpc.StatusCode.CANCELLED
            await eventually(lambda: "cancelled" in seen)
            assert seen["cancelled"] is True

    run(body())


def test_asyncio_cancellation_of_the_awaiting_task_cancels_the_call():
    seen: dict[str, bool] = {}

    async def slow(request: bytes, context: rpc.ServicerContext) -> bytes:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["handler_cancelled"] = True
            raise
        return b""

    server = generic_server({"Slow": rpc.unary_unary_rpc_method_handler(slow)})

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(channel.unary_unary("/t.T/Slow")(b""), 0.2)
            await eventually(lambda: seen.get("handler_cancelled", False))

    run(body())
