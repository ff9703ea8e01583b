"""``async def`` handlers start eagerly (rpc/_aio/eager.py): inside the read of their request.

What a handler may rely on must not change with it: it runs in a real task of its own (what
``asyncio.current_task()`` and ``asyncio.timeout()`` need), in its own contextvars (one call's
deadline never reaches the next call), a handler that waits is a task that cancellation and
``Server.stop`` see, and a handler that answers without waiting costs no loop iteration beyond
the read. ``start_eager_task`` itself leaves the loop as it found it, and falls back to an
ordinary task where it cannot take the first step (custom task factory, inside another task).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any, Optional

import pytest

import rpc
from rpc._aio.eager import start_eager_task
from rpc._core.deadline import effective_deadline
from tests.rpc.helpers import eventually, generic_server, run, serving

_seen: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("_seen", default=None)


def test_a_handler_that_does_not_wait_runs_in_a_task_of_its_own_and_in_its_own_context():
    tasks: list[Any] = []
    previous: list[Optional[str]] = []
    deadlines: list[Optional[float]] = []

    async def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
        tasks.append(asyncio.current_task())
        previous.append(_seen.get())
        _seen.set(request.decode())  # must not leak into the next call
        deadlines.append(effective_deadline(None))
        return request

    server = generic_server({"Echo": rpc.unary_unary_rpc_method_handler(echo)})

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            method = channel.unary_unary("/t.T/Echo")
            assert await method(b"one", timeout=30) == b"one"
            assert await method(b"two") == b"two"  # no deadline: none inherited from "one"
            assert await method(b"three") == b"three"

    run(body())
    assert all(isinstance(task, asyncio.Task) for task in tasks)
    assert len({id(task) for task in tasks}) == 3
    assert previous == [None, None, None]
    assert deadlines[0] is not None and deadlines[1:] == [None, None]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
def test_asyncio_timeout_works_in_a_handler_before_its_first_wait():
    async def bounded(request: bytes, context: rpc.ServicerContext) -> bytes:
        async with asyncio.timeout(0.05):  # type: ignore[attr-defined]
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                raise
        return b"unreachable"

    async def quick(request: bytes, context: rpc.ServicerContext) -> bytes:
        async with asyncio.timeout(5):  # type: ignore[attr-defined]
            return b"quick"

    server = generic_server(
        {
            "Bounded": rpc.unary_unary_rpc_method_handler(bounded),
            "Quick": rpc.unary_unary_rpc_method_handler(quick),
        }
    )

    async def body() -> None:
        async with serving(server) as target, rpc.Channel(target) as channel:
            assert await channel.unary_unary("/t.T/Quick")(b"") == b"quick"
            with pytest.raises(rpc.RpcError) as caught:
                await channel.unary_unary("/t.T/Bounded")(b"")
            assert caught.value.code() == rpc.StatusCode.UNKNOWN  # TimeoutError in the handler

    run(body())


def test_a_handler_that_waits_is_cancelled_by_the_client_and_awaited_by_stop():
    events: dict[str, Any] = {}

    async def waits(request: bytes, context: rpc.ServicerContext) -> bytes:
        events["started"].set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events["cancelled"] = True
            raise
        return b""

    async def slow(request: bytes, context: rpc.ServicerContext) -> bytes:
        events["slow_started"].set()
        await asyncio.sleep(0.2)
        return b"finished"

    server = generic_server(
        {
            "Waits": rpc.unary_unary_rpc_method_handler(waits),
            "Slow": rpc.unary_unary_rpc_method_handler(slow),
        }
    )

    async def body() -> None:
        events["started"] = asyncio.Event()
        events["slow_started"] = asyncio.Event()
        async with serving(server) as target, rpc.Channel(target) as channel:
            call = channel.unary_unary("/t.T/Waits")(b"")
            waiting = asyncio.ensure_future(call)  # calls start when awaited
            await asyncio.wait_for(events["started"].wait(), 5)
            call.cancel()
            await eventually(lambda: events.get("cancelled", False))
            with pytest.raises((rpc.RpcError, asyncio.CancelledError)):
                await waiting
            slow_call = asyncio.ensure_future(channel.unary_unary("/t.T/Slow")(b""))
            await asyncio.wait_for(events["slow_started"].wait(), 5)
            stopping = asyncio.ensure_future(server.stop(5))
            assert await slow_call == b"finished"  # stop() let the waiting handler finish
            await stopping

    run(body())


def test_start_eager_task_runs_the_first_step_now_and_leaves_the_loop_untouched():
    async def body() -> None:
        loop = asyncio.get_running_loop()
        steps: list[str] = []

        async def quick() -> None:
            steps.append("quick")

        async def waits(event: asyncio.Event) -> None:
            steps.append("waits: before")
            await event.wait()
            steps.append("waits: after")

        def from_a_callback(done: asyncio.Future[None]) -> None:
            task = start_eager_task(loop, quick())
            steps.append(f"quick done: {task.done()}")
            event = asyncio.Event()
            waiting = start_eager_task(loop, waits(event))
            steps.append(f"waits done: {waiting.done()}")
            event.set()
            waiting.add_done_callback(lambda _: done.set_result(None))

        done: asyncio.Future[None] = loop.create_future()
        loop.call_soon(from_a_callback, done)
        await asyncio.wait_for(done, 5)
        assert steps == [
            "quick",
            "quick done: True",
            "waits: before",
            "waits done: False",
            "waits: after",
        ]
        assert "call_soon" not in vars(loop)

    run(body())


def test_start_eager_task_falls_back_to_an_ordinary_task_inside_a_task_or_with_a_factory():
    async def body() -> None:
        loop = asyncio.get_running_loop()
        steps: list[str] = []

        async def step() -> None:
            steps.append("ran")

        task = start_eager_task(loop, step())  # from inside this task: queued, not run
        if sys.version_info < (3, 12):
            assert steps == []
        await task
        assert steps == ["ran"]

        made: list[Any] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            made.append(task)
            return task

        loop.set_task_factory(factory)
        try:
            done: asyncio.Future[None] = loop.create_future()

            def from_a_callback() -> None:
                start_eager_task(loop, step()).add_done_callback(lambda _: done.set_result(None))

            loop.call_soon(from_a_callback)
            await asyncio.wait_for(done, 5)
        finally:
            loop.set_task_factory(None)
        if sys.version_info < (3, 12):
            assert len(made) == 1  # the factory made it: not eager
        assert steps == ["ran", "ran"]

    run(body())
