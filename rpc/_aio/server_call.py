"""The asyncio side of one server call: the handler runs as a task (or, if plain ``def``, in the
server's thread pool), and this shell does the waiting for ``ServerCallCore``'s decisions."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, NoReturn, Optional

from codec import Status, StatusCode
from transport import Stream, TransportError

from .._core.messages import EOF
from .._core.server_call import (
    HandlerPool,
    ServerCallCore,
    ServerCallSettings,
    StreamGone,
    invoke_blocking,
)
from .._errors import RpcError
from .._handlers import Cardinality, MethodHandler

log = logging.getLogger(__name__)


class ServicerContext(ServerCallCore):
    """The context handed to async handlers (grpcio-aio names), and the call's driver."""

    _stream: Stream

    def __init__(self, settings: ServerCallSettings, stream: Stream, pool: HandlerPool) -> None:
        super().__init__(settings, stream)
        self._pool = pool
        self._timer: Optional[asyncio.TimerHandle] = None
        self._task: Optional[asyncio.Task[None]] = None

    # ------------------------------------------------------------------ waiting context API

    async def send_initial_metadata(self, metadata: Any) -> None:
        self._send_headers(metadata)

    async def abort(
        self, code: StatusCode, details: str = "", trailing_metadata: Any = None
    ) -> NoReturn:
        """End the call now with ``code`` (not OK) and ``details``."""
        self._abort(code, details, trailing_metadata)

    async def abort_with_status(self, status: Any) -> NoReturn:
        """End the call with a grpcio-style status object (rich error details included)."""
        self._abort_with_status(status)

    async def read(self) -> Any:
        """The next request message, or ``rpc.EOF`` once the client half-closed."""
        return await self._read_request()

    async def write(self, message: Any) -> None:
        """Send one response message (streaming responses)."""
        await self._send_message(message)

    # ------------------------------------------------------------------ driver

    async def _run(self) -> None:
        """Serve the call to its end; never raises (the server's task must not die noisily)."""
        status: Optional[Status]
        try:
            status = self._begin()
            if status is None:
                if self._deadline is not None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_at(
                        loop.time() + (self.time_remaining() or 0.0), self._on_deadline
                    )
                handler = self._handler
                assert handler is not None
                try:
                    await self._invoke(handler)
                    status = self._status_of_return()
                except Exception as exc:
                    status = self._status_of_exception(exc)
        except StreamGone:
            status = None
        except asyncio.CancelledError:
            status = self._status_after_cancel()
        except BaseException:  # a bug of ours: still answer, never hang the client
            log.exception("internal error serving %s", self.method())
            status = Status(StatusCode.INTERNAL, "internal server error")
        finally:
            if self._timer is not None:
                self._timer.cancel()
        self._end(status)

    async def _invoke(self, handler: MethodHandler) -> None:
        behavior = handler.behavior
        if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
            await self._invoke_in_thread()
            return
        kind = handler.cardinality
        if kind is Cardinality.UNARY_UNARY or kind is Cardinality.UNARY_STREAM:
            first = await self._read_request()
            request = self._check_single_request(
                first, await self._read_request() if first is not EOF else EOF
            )
            result = behavior(request, self)
        else:
            result = behavior(self._request_iterator(), self)
        if not kind.response_streaming:
            response = await result
            if self._unary_response_wanted(response):
                await self._send_message(response)
        elif hasattr(result, "__aiter__"):
            async for response in result:
                await self._send_message(response)
        else:
            # A coroutine: it writes its responses with context.write(); it returns nothing.
            returned = await result
            if returned is not None:
                log.warning(
                    "handler for %s is an async def returning a %s, which is ignored: a "
                    "server-streaming handler must yield its responses (an async generator) "
                    "or send them with 'await context.write(response)'",
                    self.method(),
                    type(returned).__name__,
                )

    async def _invoke_in_thread(self) -> None:
        """A plain ``def`` handler: run it in the server's pool, bridged to this loop."""
        loop = asyncio.get_running_loop()
        bridge = _ThreadContext(self, loop)
        # run_in_executor does not carry contextvars over: run in a copy of this task's context,
        # so that the handler's own calls inherit its deadline.
        await loop.run_in_executor(
            self._pool.executor(),
            contextvars.copy_context().run,
            invoke_blocking,
            self,
            bridge,
            bridge.read,
            bridge.write,
        )

    # ------------------------------------------------------------------ requests and responses

    async def _request_iterator(self) -> AsyncIterator[Any]:
        while True:
            request = await self._read_request()
            if request is EOF:
                return
            yield request

    async def _read_request(self) -> Any:
        stream = self._stream
        while self._needs_data():
            try:
                chunk = await stream.read()
            except TransportError:
                raise StreamGone from None
            self._on_chunk(chunk)
        return self._next_request()

    async def _send_message(self, message: Any) -> None:
        data = self._frame_response(message)
        try:
            await self._stream.send_data(data)
        except TransportError:
            raise StreamGone from None

    def _interrupt(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()


class _ThreadContext:
    """The context a plain ``def`` handler gets on the async server: the same calls as the
    blocking server's context, each carried out on the event loop."""

    def __init__(self, call: ServicerContext, loop: asyncio.AbstractEventLoop) -> None:
        self._call = call
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)  # the non-waiting API (metadata, codes, deadlines)

    def _on_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def read(self) -> Any:
        return self._on_loop(self._call._read_request())

    def write(self, message: Any) -> None:
        self._on_loop(self._call._send_message(message))

    def send_initial_metadata(self, metadata: Any) -> None:
        self._on_loop(self._call.send_initial_metadata(metadata))

    def abort(self, code: StatusCode, details: str = "", trailing_metadata: Any = None) -> NoReturn:
        self._call._abort(code, details, trailing_metadata)

    def abort_with_status(self, status: Any) -> NoReturn:
        self._call._abort_with_status(status)

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        return bool(self._on_loop(self._call_soon(self._call.add_callback, callback)))

    def add_done_callback(self, callback: Callable[[Any], Any]) -> None:
        self._on_loop(self._call_soon(self._call.add_done_callback, callback))

    @staticmethod
    async def _call_soon(function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function`` on the loop (the call's state is the loop's), for ``_on_loop``."""
        return function(*args)

    def requests(self) -> Iterator[Any]:
        while True:
            request = self.read()
            if request is EOF:
                return
            yield request


__all__ = ["RpcError", "ServicerContext"]
