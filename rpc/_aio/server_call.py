"""The asyncio side of one server call: the driver of ``ServerCallCore``'s programs on the loop.

``ServicerContext`` is the context ``async def`` handlers get (grpc.aio's names, each a one-line
drive of the core's program) and the call's driver: ``_drive`` performs the programs' commands by
awaiting (see the table in ``rpc._core.server_call``); ``_run`` drives ``serve()`` as the call's
task. A plain ``def`` handler runs in the server's thread pool with a ``_BridgedContext``: the
synchronous context surface of the blocking server, whose programs this driver runs on the loop
(``run_coroutine_threadsafe``), since the stream belongs to the loop.

The call is cancelled by cancelling its task: when the core's ``stream_failed()`` or
``deadline_passed()`` event says the handler must stop. The driver of ``serve()`` turns the
``CancelledError`` into ``CallCancelled`` thrown into the program, which decides the status; a
``context.read()``/``write()`` inside the handler lets it pass, so the handler sees asyncio's own
cancellation, as grpc.aio handlers do.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, Callable, NoReturn, Optional

from codec import StatusCode
from transport import Stream

from .._core.messages import EOF
from .._core.server_call import (
    ANEXT,
    ARM,
    AWAIT,
    CALL_ASYNC,
    CALL_DEF,
    DONE,
    HOLD,
    NEXT,
    READ,
    REQUEST_STREAM,
    SEND,
    SEND_NEXT,
    CallCancelled,
    HandlerFailed,
    HandlerPool,
    Program,
    ServerCallCore,
)
from .._core.server_context import (
    ServicerContextBase,
    ThreadServicerContext,
    request_iterator,
)
from .._errors import RpcError
from .eager import start_eager_task


class ServicerContext(ServicerContextBase):
    """The context handed to ``async def`` handlers (grpc.aio's names), and the call's driver."""

    def __init__(self, call: ServerCallCore, stream: Stream, pool: HandlerPool) -> None:
        super().__init__(call)
        self._stream = stream
        self._pool = pool
        self._task: Optional[asyncio.Task[None]] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        #: A ``def`` handler's contextvars (its deadline), for each step it runs in the pool.
        self._handler_context: Optional[contextvars.Context] = None

    # ------------------------------------------------------------------ waiting context API

    async def read(self) -> Any:
        """The next request message, or ``rpc.EOF`` once the client half-closed."""
        return await self._drive(self._call.read_request())

    async def write(self, message: Any) -> None:
        """Send one response message (streaming responses)."""
        await self._drive(self._call.send_message(message))

    async def send_initial_metadata(self, metadata: Any) -> None:
        """Send the response headers now, with ``metadata``."""
        self._call.send_initial_metadata(metadata)

    async def abort(
        self, code: StatusCode, details: str = "", trailing_metadata: Any = None
    ) -> NoReturn:
        """End the call now with ``code`` (not OK) and ``details``."""
        self._call.abort(code, details, trailing_metadata)

    async def abort_with_status(self, status: Any) -> NoReturn:
        """End the call with a grpcio-style status object (rich error details included)."""
        self._call.abort_with_status(status)

    # ------------------------------------------------------------------ driver

    async def _run(self) -> None:
        """Serve the call to its end; never raises (the server's task must not die noisily)."""
        self._stream.on_failed = self._stream_failed
        try:
            status = await self._drive(self._call.serve(), serving=True)
        finally:
            if self._timer is not None:
                self._timer.cancel()
        self._call.end(status)

    async def _drive(self, program: Program, serving: bool = False) -> Any:
        """Run ``program`` to its end, performing its commands by awaiting; its value.

        ``serving``: the program is ``serve()``, to which a cancellation of this task is
        ``CallCancelled``; other programs let the ``CancelledError`` pass to the handler.
        """
        stream = self._stream
        value: Any = None
        failure: Optional[BaseException] = None
        while True:
            try:
                if failure is None:
                    command = program.send(value)
                else:
                    try:
                        command = program.throw(failure)
                    finally:  # see "Dropping a thrown error" in rpc/_core/server_call.py
                        failure = None
            except StopIteration as stop:
                return stop.value
            op = command[0]
            try:
                if op == READ:
                    value = await stream.read()
                elif op == SEND:
                    await stream.send_data(command[1])
                    value = None
                elif op == SEND_NEXT:
                    await stream.send_data(command[1])
                    step = command[2]
                    try:
                        if step[0] == ANEXT:
                            try:
                                value = await step[1].__anext__()
                            except StopAsyncIteration:
                                value = DONE
                        else:
                            value = await self._in_pool(next, step[1], DONE)
                    except Exception as exc:
                        raise HandlerFailed(exc) from None
                elif op == ANEXT:
                    try:
                        value = await command[1].__anext__()
                    except StopAsyncIteration:
                        value = DONE
                elif op == CALL_ASYNC:
                    argument = command[2]
                    if argument is REQUEST_STREAM:
                        argument = self._requests()
                    value = command[1](argument, self)
                elif op == AWAIT:
                    value = await command[1]
                elif op == NEXT:
                    value = await self._in_pool(next, command[1], DONE)
                elif op == CALL_DEF:
                    value = await self._call_def(command[1], command[2])
                elif op == ARM:
                    delay = command[1] - time.monotonic()
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(delay, self._deadline_fired)
                    value = None
                elif op == HOLD:
                    value = None  # the loop coalesces what one iteration queues anyway
                else:
                    raise AssertionError(f"unknown command {command!r}")
            except Exception as exc:
                failure = exc
            except asyncio.CancelledError:
                if not serving:
                    raise
                failure = CallCancelled()

    async def _call_def(self, behavior: Callable[..., Any], argument: Any) -> Any:
        """A plain ``def`` handler: run it in the server's pool, with a context bridged here."""
        loop = asyncio.get_running_loop()
        bridge = _BridgedContext(self._call, loop, self._drive)
        if argument is REQUEST_STREAM:
            argument = request_iterator(bridge)
        # run_in_executor does not carry contextvars over: run in a copy of this task's context,
        # so that the handler's own calls inherit its deadline.
        self._handler_context = contextvars.copy_context()
        return await self._in_pool(behavior, argument, bridge)

    def _in_pool(self, function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """``function(*args)`` in the pool, in the ``def`` handler's contextvars."""
        handler_context = self._handler_context
        assert handler_context is not None
        return asyncio.get_running_loop().run_in_executor(
            self._pool.executor(), handler_context.run, function, *args
        )

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            request = await self.read()
            if request is EOF:
                return
            yield request

    # ------------------------------------------------------------------ events

    def _stream_failed(self) -> None:
        if self._call.stream_failed():
            self._cancel()

    def _deadline_fired(self) -> None:
        if self._call.deadline_passed():
            self._cancel()

    def _cancel(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()


def start(call: ServerCallCore, stream: Stream, pool: HandlerPool) -> asyncio.Task[None]:
    """Serve ``call`` in a task of its own on the stream's loop (``rpc.Server``, per call).

    The task starts eagerly (``eager.py``): called from the callback that received the request,
    the handler runs now, and a handler that does not wait has answered (in one write) and is
    done when this returns.
    """
    context = ServicerContext(call, stream, pool)
    task = context._task = start_eager_task(stream.connection.loop, context._run())
    return task


class _BridgedContext(ThreadServicerContext):
    """The context of a plain ``def`` handler on the asyncio server (in its thread pool):
    grpcio's synchronous names, each program driven by the call's asyncio driver on the loop."""

    def __init__(
        self,
        call: ServerCallCore,
        loop: asyncio.AbstractEventLoop,
        drive: Callable[[Program], Coroutine[Any, Any, Any]],
    ) -> None:
        super().__init__(call)
        self._loop = loop
        self._drive_on_loop = drive

    def _drive(self, program: Program) -> Any:
        return asyncio.run_coroutine_threadsafe(self._drive_on_loop(program), self._loop).result()

    def _owned(self, function: Callable[..., Any], *args: Any) -> Any:
        # The call's state is the loop's: change it there.
        return asyncio.run_coroutine_threadsafe(_call(function, *args), self._loop).result()


async def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


__all__ = ["RpcError", "ServicerContext"]
