"""Client calls for asyncio: grpcio-aio-like call objects that drive ``ClientCallCore``'s programs.

Every protocol decision, and the order of the steps, is the core's (``rpc._core.client_call``,
shared with the blocking API); ``_drive`` performs the commands its programs yield by awaiting
the asyncio transport, plus a deadline timer and a writer task for request iterators. The four
public classes shape the surface: awaitable for a single response, async-iterable for a stream,
``write``/``done_writing`` for streamed requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable
from typing import Any, Generic, Optional, Protocol, TypeVar, Union

from codec import Metadata, StatusCode
from transport import AsyncConnection, Stream

from .._core.client_call import (
    DELIVER,
    HEAD,
    NEXT_REQUEST,
    NOT_READY,
    OPEN,
    PAUSE,
    READ,
    SEND,
    SEND_ON,
    STREAM,
    WAIT_ANY,
    CallSettings,
    ClientCallCore,
    Program,
)
from .._core.messages import EOF, _EOFType
from .._handlers import Cardinality

__all__ = [
    "EOF",
    "ConnectionSource",
    "RequestIterable",
    "StreamStreamCall",
    "StreamUnaryCall",
    "UnaryStreamCall",
    "UnaryUnaryCall",
]

RequestIterable = Union[Iterable[Any], AsyncIterable[Any]]

#: The types of a call's requests and responses (``UnaryUnaryCall[HelloReply]``, as the stubs
#: that protoc-gen-h2rpc generates declare them): for type checkers only, no cost per call.
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class ConnectionSource(Protocol):
    """What a call needs from its channel: the settings, and a connection to open a stream on."""

    settings: CallSettings

    async def connection(self, wait_for_ready: bool) -> AsyncConnection:
        """A usable connection, connecting as the channel's policy says; RpcError if not."""
        ...


async def _next_request(requests: Any) -> Any:
    """The next request of a request iterator (sync or async), EOF after the last."""
    if hasattr(requests, "__anext__"):
        try:
            return await requests.__anext__()
        except StopAsyncIteration:
            return EOF
    return next(requests, EOF)


async def _wait_any(streams: list[Stream], timeout: Optional[float]) -> None:
    """Until one of ``streams`` has news for its reader, or ``timeout`` passes (hedging)."""
    waits = [asyncio.ensure_future(stream.receive_response_headers()) for stream in streams]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            if not wait.done():
                wait.cancel()
            elif not wait.cancelled():
                wait.exception()  # the program reads it from the stream itself


#: How often a call backing off before a retry looks whether its channel was closed.
_PAUSE_CHECK = 0.1


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _ClientCall(ClientCallCore):
    """The asyncio shell of a client call: it drives the core's programs."""

    _stream: Optional[Stream]

    def __init__(
        self, kind: Cardinality, request: Any, source: ConnectionSource, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(source.settings, kind, request, *args, **kwargs)
        self._source = source
        self._timer: Optional[asyncio.TimerHandle] = None
        # The loop is looked up only where needed: asyncio.get_running_loop() makes a getpid
        # system call (its fork check), one per call for nothing on a unary call.
        if self._deadline is not None:
            delay = max(self._deadline - time.monotonic(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._deadline_exceeded)
            self.when_finished = self._stop_waiting
        self._opener = False  # a task is opening the stream
        self._opened: Optional[asyncio.Future[None]] = None  # for the tasks that wait for it
        self._writer: Optional[asyncio.Task[None]] = None
        self._paused: Optional[asyncio.Future[None]] = None  # a retry's backoff

    # ------------------------------------------------------------------ public, all kinds

    async def initial_metadata(self) -> Metadata:
        metadata: Metadata = await self._drive(self._initial_metadata_of())
        return metadata

    async def trailing_metadata(self) -> Metadata:
        return (await self._drive(self._final_status())).metadata  # type: ignore[no-any-return]

    async def code(self) -> StatusCode:
        return (await self._drive(self._final_status())).code  # type: ignore[no-any-return]

    async def details(self) -> str:
        return (await self._drive(self._final_status())).message  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ the driver

    async def _drive(self, program: Program) -> Any:
        """Run a program of the core to its end, performing its commands by awaiting.

        A task cancelled while it waits cancels the call (RST_STREAM(CANCEL)), as grpc.aio does.
        """
        result: Any = None
        error: Optional[Exception] = None
        try:
            while True:
                try:
                    if error is None:
                        command = program.send(result)
                    else:
                        try:
                            command = program.throw(error)
                        finally:  # see "Dropping a thrown error" in rpc/_core/server_call.py
                            error = None
                except StopIteration as stop:
                    return stop.value
                op = command[0]
                try:
                    if op == READ:
                        result = await self._stream.read()  # type: ignore[union-attr]
                    elif op == DELIVER:
                        return command[1]
                    elif op == SEND:
                        await self._stream.send_data(  # type: ignore[union-attr]
                            command[1], end_stream=command[2]
                        )
                        result = None
                    elif op == SEND_ON:
                        await command[1].send_data(command[2], end_stream=command[3])
                        result = None
                    elif op == HEAD:
                        result = await self._stream.receive_response_headers()  # type: ignore[union-attr]
                    elif op == STREAM:
                        result = await self._get_stream()
                    elif op == OPEN:
                        result = await self._open()
                    elif op == PAUSE:
                        await self._pause(command[1])
                        result = None
                    elif op == NEXT_REQUEST:
                        result = await _next_request(command[1])
                    elif op == WAIT_ANY:
                        await _wait_any(command[1], command[2])
                        result = None
                    else:  # START_WRITER
                        self._start_writer()
                        result = None
                except Exception as exc:
                    error = exc
        except asyncio.CancelledError:
            self.cancel()
            raise

    async def _get_stream(self) -> Stream:
        """The call's stream; one task opens it, the others (reader, writer) wait for it."""
        if self._stream is not None:
            return self._stream
        if self._opener:
            # Another task is opening it: wait for that (a future only when somebody waits).
            if self._opened is None:
                self._opened = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._opened)
            if self._stream is None:
                raise self._rpc_error()
            return self._stream
        if self._status is not None:
            raise self._rpc_error()
        self._opener = True
        try:
            stream: Stream = await self._drive(self._open_stream())
        finally:
            self._opener = False
            opened, self._opened = self._opened, None
            if opened is not None:
                opened.set_result(None)
        return stream

    async def _open(self) -> Stream:
        """A connection from the channel, a stream on it; TimeoutError once the deadline passes."""
        if self._deadline is None:
            return await self._connect_and_open()
        try:
            return await asyncio.wait_for(
                self._connect_and_open(), self._deadline - time.monotonic()
            )
        except asyncio.TimeoutError:
            raise TimeoutError from None

    async def _connect_and_open(self) -> Stream:
        conn = await self._source.connection(self._wait_for_ready)
        return await conn.open_stream(self._headers)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _start_writer(self) -> None:
        requests: Any = self._request
        iterator = requests.__aiter__() if hasattr(requests, "__aiter__") else iter(requests)
        self._request = iterator  # a writer started again (a retry) goes on where it was
        self._writer = asyncio.get_running_loop().create_task(
            self._drive(self._write_requests(iterator))
        )
        self.when_finished = self._stop_waiting

    async def _pause(self, seconds: float) -> None:
        """A retry's backoff, cut short if the call ends meanwhile (``cancel()``) or the
        channel is closed (looked at every ``_PAUSE_CHECK`` seconds: a backoff is on no
        connection the close could fail)."""
        if self._status is not None:
            return
        waiter = self._paused = self._loop.create_future()
        self.when_finished = self._stop_waiting
        handle = self._loop.call_later(seconds, _wake, waiter)
        try:
            while not waiter.done() and not getattr(self._source, "closed", False):
                await asyncio.wait((waiter,), timeout=_PAUSE_CHECK)
        finally:
            handle.cancel()
            self._paused = None

    def _stop_waiting(self) -> None:
        """The call ended: its deadline timer, request writer and backoff have nothing left to
        do."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        paused = self._paused
        if paused is not None:
            _wake(paused)
        writer = self._writer
        if writer is not None and not writer.done() and writer is not asyncio.current_task():
            writer.cancel()


class _UnaryResponseMixin(_ClientCall, Generic[ResponseT]):
    """Awaiting the call gives its single response."""

    def __await__(self) -> Generator[Any, None, ResponseT]:
        return self._drive(self._single_response()).__await__()


class _StreamResponseMixin(_ClientCall, Generic[ResponseT]):
    """Iterating the call (or calling ``read()``) gives its responses."""

    def __aiter__(self) -> AsyncIterator[ResponseT]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ResponseT]:
        program = self._read(True)
        while True:
            message = await self._drive(program)
            if message is EOF:
                return
            yield message

    async def read(self) -> Union[ResponseT, _EOFType]:
        """The next response, or ``rpc.EOF`` at the end of an OK stream."""
        message: Union[ResponseT, _EOFType] = self._ready_message()
        if message is NOT_READY:
            message = await self._drive(self._read_any())
        return message


class _StreamRequestMixin(_ClientCall, Generic[RequestT]):
    """Requests come from an iterator (sent by a writer task) or from ``write()`` calls."""

    async def write(self, message: RequestT, *, compress: bool = True) -> None:
        """Send one request (only when the call was made without a request iterator).

        ``compress=False`` sends this message uncompressed in a compressed call (the per-message
        flag of gRPC's framing).
        """
        if self._request is not None:
            raise RuntimeError("write() is not allowed on a call made with a request iterator")
        if self._done_writing:
            raise RuntimeError("write() after done_writing()")
        await self._drive(self._write(message, False, compress))

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests are coming."""
        if self._request is not None:
            raise RuntimeError("done_writing() is not allowed with a request iterator")
        await self._drive(self._end_requests())


class UnaryUnaryCall(_UnaryResponseMixin[ResponseT]):
    """One request, one response: ``response = await call``.

    Generic in the response type: ``UnaryUnaryCall[HelloReply]``.
    """


class UnaryStreamCall(_StreamResponseMixin[ResponseT]):
    """One request, a stream of responses: ``async for response in call``.

    Generic in the response type: ``UnaryStreamCall[Feature]``.
    """


class StreamUnaryCall(_StreamRequestMixin[RequestT], _UnaryResponseMixin[ResponseT]):
    """A stream of requests, one response: ``response = await call``.

    Generic in the request and response types: ``StreamUnaryCall[Point, RouteSummary]``.
    """


class StreamStreamCall(_StreamRequestMixin[RequestT], _StreamResponseMixin[ResponseT]):
    """Streams both ways: ``async for response in call`` while requests go out.

    Generic in the request and response types: ``StreamStreamCall[RouteNote, RouteNote]``.
    """
