"""Client calls for asyncio: grpcio-aio-like call objects over ``ClientCallCore``.

Every protocol decision is the core's (``rpc._core.client_call``, shared with the blocking API);
this module only waits: for a stream, for the response head, for data, for the deadline timer. The
four public classes shape the surface: awaitable for a single response, async-iterable for a
stream, ``write``/``done_writing`` for streamed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable
from typing import TYPE_CHECKING, Any, Optional, Union

from codec import Metadata, Status, StatusCode
from transport import ConnectionClosedError, Stream, TransportError

from .._core.client_call import CANCEL, MAX_TRANSPARENT_RETRIES, ClientCallCore
from .._core.messages import EOF
from .._errors import RpcError

if TYPE_CHECKING:
    from .channel import Channel

__all__ = [
    "EOF",
    "RequestIterable",
    "StreamStreamCall",
    "StreamUnaryCall",
    "UnaryStreamCall",
    "UnaryUnaryCall",
]


class _RequestsAborted(Exception):
    """The request writer task stops: the stream failed, and the reader will tell why."""


RequestIterable = Union[Iterable[Any], AsyncIterable[Any]]


class _ClientCall(ClientCallCore):
    """The asyncio shell of a client call."""

    _channel: Channel

    def __init__(self, channel: Channel, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, *args, **kwargs)
        self._loop = asyncio.get_running_loop()
        self._timer: Optional[asyncio.TimerHandle] = None
        if self._deadline is not None:
            delay = max(self._deadline - time.monotonic(), 0.0)
            self._timer = self._loop.call_later(delay, self._deadline_exceeded)
        self._opening: Optional[asyncio.Future[None]] = None
        self._writer: Optional[asyncio.Task[None]] = None

    # ------------------------------------------------------------------ public, all kinds

    async def initial_metadata(self) -> Metadata:
        with contextlib.suppress(RpcError):
            await self._receive_head()
        return self._initial_metadata if self._initial_metadata is not None else Metadata()

    async def trailing_metadata(self) -> Metadata:
        return (await self._wait_status()).metadata

    async def code(self) -> StatusCode:
        return (await self._wait_status()).code

    async def details(self) -> str:
        return (await self._wait_status()).message

    # ------------------------------------------------------------------ stream and sending

    async def _get_stream(self) -> Stream:
        if self._stream is not None:
            assert isinstance(self._stream, Stream)
            return self._stream
        if self._status is not None:
            raise self._rpc_error()
        if self._opening is not None:
            await asyncio.shield(self._opening)
            if self._stream is None:
                raise self._rpc_error()
            assert isinstance(self._stream, Stream)
            return self._stream
        self._opening = opening = self._loop.create_future()
        try:
            if self._deadline is None:
                stream = await self._open()
            else:
                stream = await asyncio.wait_for(self._open(), self._deadline - time.monotonic())
        except asyncio.TimeoutError:
            self._deadline_exceeded()
            raise self._rpc_error() from None
        except (RpcError, TransportError) as exc:
            self._finish(self._status_from(exc))
            raise self._rpc_error() from None
        except asyncio.CancelledError:
            self._finish(Status(StatusCode.CANCELLED, "Locally cancelled by application!"))
            raise
        finally:
            opening.set_result(None)
            self._opening = None
        if self._status is not None:  # cancelled or expired while opening
            stream.reset(CANCEL)
            raise self._rpc_error()
        self._stream = stream
        return stream

    async def _open(self) -> Stream:
        for attempt in range(MAX_TRANSPARENT_RETRIES + 1):
            conn = await self._channel._get_connection(self._wait_for_ready)
            try:
                return await conn.open_stream(self._headers)
            except ConnectionClosedError:
                # The connection went away (GOAWAY) between picking it and opening the stream:
                # nothing was sent, so another connection may take the call.
                if attempt == MAX_TRANSPARENT_RETRIES:
                    raise
        raise AssertionError("unreachable")

    async def _write(self, message: Any, *, end: bool = False, compress: bool = True) -> None:
        """Frame and send one request; a failed send leaves the status to the response side."""
        stream = await self._get_stream()
        if self._status is not None:
            raise self._rpc_error()
        if self._response_complete(stream):
            return
        data = self._frame(message, compress)
        try:
            await stream.send_data(data, end_stream=end)
        except TransportError as exc:
            if self._response_complete(stream):
                return
            if self._writer is not None and self._writer is asyncio.current_task():
                raise _RequestsAborted from None
            raise self._write_failed(stream, exc) from None
        if end:
            self._done_writing = True

    async def _end_requests(self) -> None:
        if self._done_writing:
            return
        stream = await self._get_stream()
        self._done_writing = True
        if self._status is None and not stream.local_closed:
            with contextlib.suppress(TransportError):
                stream.end()

    async def _consume_requests(self, requests: RequestIterable) -> None:
        try:
            if hasattr(requests, "__aiter__"):
                async for message in requests:
                    await self._write(message)
            else:
                for message in requests:
                    await self._write(message)
            await self._end_requests()
        except (RpcError, _RequestsAborted):
            pass  # the response side reports the status
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the application's iterator failed
            self._finish(
                Status(StatusCode.UNKNOWN, f"Exception iterating requests: {exc!r}"), CANCEL
            )

    async def _send_requests(self) -> None:
        """Start sending the request(s); each request kind says how (idempotent)."""
        raise NotImplementedError

    async def _resend(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ receiving

    async def _receive_head(self) -> None:
        """Wait for the response headers (or a Trailers-Only response, which ends the call)."""
        if self._initial_metadata is not None or self._status is not None:
            return
        await self._send_requests()
        while True:
            stream = await self._get_stream()
            try:
                headers = await stream.receive_response_headers()
            except TransportError as exc:
                pause = self._retry_pause(exc)
                if pause is None:
                    return
                await asyncio.sleep(pause)
                await self._resend()
                continue
            self._on_response_head(stream, headers)
            return

    async def _read(self) -> Any:
        """The next response message, or EOF once the call ended OK; raises RpcError otherwise."""
        if not self._messages and self._status is None:
            await self._receive_head()
            while self._needs_data():
                stream = self._stream
                assert isinstance(stream, Stream)
                try:
                    chunk = await stream.read()
                except TransportError as exc:
                    self._on_read_error(exc)
                    break
                self._on_chunk(chunk)
        return self._next_message()

    async def _wait_status(self) -> Status:
        """Drive the call to its end (discarding unread responses) and return its status."""
        while self._status is None:
            self._messages.clear()
            with contextlib.suppress(RpcError):
                await self._read()
        return self._status

    def _on_finished(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writer = self._writer
        if writer is not None and not writer.done() and writer is not asyncio.current_task():
            writer.cancel()


class _UnaryResponseMixin(_ClientCall):
    """Awaiting the call gives its single response."""

    _response: Any = None
    _response_ready = False

    def __await__(self) -> Generator[Any, None, Any]:
        return self._single_response().__await__()

    async def _single_response(self) -> Any:
        if self._response_ready:
            return self._response
        try:
            await self._send_requests()
            first = await self._read()
            response = self._single_from(first, await self._read() if first is not EOF else EOF)
        except asyncio.CancelledError:
            self.cancel()
            raise
        self._response = response
        self._response_ready = True
        return response

    async def _wait_status(self) -> Status:
        with contextlib.suppress(RpcError):
            await self._single_response()
        return await super()._wait_status()


class _StreamResponseMixin(_ClientCall):
    """Iterating the call (or calling ``read()``) gives its responses."""

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            message = await self.read()
            if message is EOF:
                return
            yield message

    async def read(self) -> Any:
        """The next response, or ``rpc.EOF`` at the end of an OK stream."""
        try:
            await self._send_requests()
            return await self._read()
        except asyncio.CancelledError:
            self.cancel()
            raise


class _UnaryRequestMixin(_ClientCall):
    """The single request goes out (with END_STREAM) when the call is first driven."""

    def __init__(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request = request
        self._sent = False

    async def _send_requests(self) -> None:
        if not self._sent:
            self._sent = True
            await self._write(self._request, end=True)

    def _replayable(self) -> bool:
        return True

    async def _resend(self) -> None:
        self._sent = False
        await self._send_requests()


class _StreamRequestMixin(_ClientCall):
    """Requests come from an iterator (sent by a writer task) or from ``write()`` calls."""

    def __init__(self, requests: Optional[RequestIterable], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests = requests

    async def write(self, message: Any, *, compress: bool = True) -> None:
        """Send one request (only when the call was made without a request iterator).

        ``compress=False`` sends this message uncompressed in a compressed call (the per-message
        flag of gRPC's framing).
        """
        if self._requests is not None:
            raise RuntimeError("write() is not allowed on a call made with a request iterator")
        if self._done_writing:
            raise RuntimeError("write() after done_writing()")
        await self._write(message, compress=compress)

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests are coming."""
        if self._requests is not None:
            raise RuntimeError("done_writing() is not allowed with a request iterator")
        await self._end_requests()

    async def _send_requests(self) -> None:
        if self._requests is None:
            await self._get_stream()
        elif self._writer is None:
            self._writer = self._loop.create_task(self._consume_requests(self._requests))


class UnaryUnaryCall(_UnaryRequestMixin, _UnaryResponseMixin):
    """One request, one response: ``response = await call``."""


class UnaryStreamCall(_UnaryRequestMixin, _StreamResponseMixin):
    """One request, a stream of responses: ``async for response in call``."""


class StreamUnaryCall(_StreamRequestMixin, _UnaryResponseMixin):
    """A stream of requests, one response: ``response = await call``."""


class StreamStreamCall(_StreamRequestMixin, _StreamResponseMixin):
    """Streams both ways: ``async for response in call`` while requests go out."""
