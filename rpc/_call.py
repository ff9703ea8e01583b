"""Client-side calls: one HTTP/2 stream each, with grpcio-aio-like call objects.

``_ClientCall`` holds the protocol logic every call kind shares (open the stream, frame and send
requests, parse the response head, decode messages, map trailers and transport failures to a
status, enforce the deadline); the four public classes only shape the surface: awaitable for a
single response, async-iterable for a stream, ``write``/``done_writing`` for streamed requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable
from typing import (
    TYPE_CHECKING,
    Any,
    Optional,
    Union,
)

from codec import (
    SUPPORTED_ENCODINGS,
    CodecError,
    InvalidMetadataError,
    InvalidResponseError,
    MessageDecoder,
    MessageTooLargeError,
    Metadata,
    Status,
    StatusCode,
    build_request_headers,
    is_supported_encoding,
    parse_response_headers,
    parse_trailers,
    status_from_reset,
)
from transport import ConnectionClosedError, Stream, StreamResetError, TransportError

from ._deadline import effective_deadline
from ._errors import RpcError, UsageError
from ._handlers import Deserializer, Serializer
from ._messages import decode_messages, frame_message

if TYPE_CHECKING:
    from ._channel import Channel

NO_ERROR = 0x0
REFUSED_STREAM = 0x7
CANCEL = 0x8
#: How often a call the server never saw is sent again on another stream (transparent retry).
_MAX_TRANSPARENT_RETRIES = 6
#: Pause before the first transparent retry, doubled each time: a server that refused a stream
#: at its concurrency limit may count streams a little longer than we do.
_RETRY_PAUSE = 0.01


class _EOFType:
    """The value ``read()`` returns once a response stream has ended (grpcio's ``aio.EOF``)."""

    _instance: Optional[_EOFType] = None

    def __new__(cls) -> _EOFType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "EOF"

    def __bool__(self) -> bool:
        return False


EOF = _EOFType()


class _RequestsAborted(Exception):
    """The request writer task stops: the stream failed, and the reader will tell why."""


RequestIterable = Union[Iterable[Any], AsyncIterable[Any]]


class _ClientCall:
    """The shared state machine of every client call."""

    def __init__(
        self,
        channel: Channel,
        path: str,
        serializer: Serializer,
        deserializer: Deserializer,
        *,
        timeout: Optional[float],
        metadata: Any,
        compression: Optional[str] = None,
        wait_for_ready: Optional[bool] = None,
    ) -> None:
        self._channel = channel
        self._path = path
        self._serializer = serializer
        self._deserializer = deserializer
        self._wait_for_ready = bool(wait_for_ready)
        encoding = channel._compression if compression is None else compression
        if encoding == "identity":
            encoding = None
        if not is_supported_encoding(encoding):
            raise UsageError(f"unsupported compression {encoding!r}: use gzip or deflate")
        self._encoding = encoding
        self._response_encoding: Optional[str] = None
        # The deadline is the tighter of our timeout and the one inherited from a handler.
        self._deadline = deadline = effective_deadline(timeout)
        now = time.monotonic()
        try:
            self._headers = build_request_headers(
                path,
                channel._authority,
                scheme=channel._scheme,
                timeout=None if deadline is None else deadline - now,
                metadata=metadata,
                encoding=encoding,
                accept_encoding=SUPPORTED_ENCODINGS,
                user_agent=channel._user_agent,
            )
        except InvalidMetadataError as exc:
            raise UsageError(f"invalid metadata: {exc}") from None
        self._loop = asyncio.get_running_loop()
        self._timer: Optional[asyncio.TimerHandle] = None
        if deadline is not None:
            self._timer = self._loop.call_later(max(deadline - now, 0.0), self._on_deadline)
        self._stream: Optional[Stream] = None
        self._opening: Optional[asyncio.Future[None]] = None
        self._decoder = MessageDecoder(channel._max_receive_message_length)
        self._messages: deque[bytes] = deque()
        self._initial_metadata: Optional[Metadata] = None
        self._status: Optional[Status] = None
        self._status_waiter: Optional[asyncio.Future[None]] = None
        self._writer: Optional[asyncio.Task[None]] = None
        self._done_writing = False

    # ------------------------------------------------------------------ public, all kinds

    def cancel(self) -> bool:
        """Cancel the call: RST_STREAM(CANCEL) goes out and the call ends CANCELLED."""
        if self._status is not None:
            return False
        self._finish(Status(StatusCode.CANCELLED, "Locally cancelled by application!"), CANCEL)
        return True

    def cancelled(self) -> bool:
        return self._status is not None and self._status.code == StatusCode.CANCELLED

    def done(self) -> bool:
        return self._status is not None

    def time_remaining(self) -> Optional[float]:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    async def initial_metadata(self) -> Metadata:
        await self._receive_head_quietly()
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
            return self._stream
        if self._status is not None:
            raise self._rpc_error()
        if self._opening is not None:
            await asyncio.shield(self._opening)
            if self._stream is None:
                raise self._rpc_error()
            return self._stream
        self._opening = opening = self._loop.create_future()
        try:
            if self._deadline is None:
                stream = await self._open()
            else:
                stream = await asyncio.wait_for(self._open(), self._deadline - time.monotonic())
        except asyncio.TimeoutError:
            self._finish(Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
            raise self._rpc_error() from None
        except RpcError as exc:
            self._finish(Status(exc.code(), exc.details()))
            raise
        except TransportError as exc:
            self._finish(self._status_from(exc))
            raise self._rpc_error() from None
        except asyncio.CancelledError:
            self._finish(Status(StatusCode.CANCELLED, "Locally cancelled by application!"))
            raise
        finally:
            opening.set_result(None)
        if self._status is not None:  # cancelled or expired while opening
            stream.reset(CANCEL)
            raise self._rpc_error()
        self._stream = stream
        return stream

    async def _open(self) -> Stream:
        for attempt in range(_MAX_TRANSPARENT_RETRIES + 1):
            conn = await self._channel._get_connection(self._wait_for_ready)
            try:
                return await conn.open_stream(self._headers)
            except ConnectionClosedError:
                # The connection went away (GOAWAY) between picking it and opening the stream:
                # nothing was sent, so another connection may take the call.
                if attempt == _MAX_TRANSPARENT_RETRIES:
                    raise
        raise AssertionError("unreachable")

    async def _write(self, message: Any, *, end: bool = False, compress: bool = True) -> None:
        """Frame and send one request; a failed send leaves the status to the response side."""
        stream = await self._get_stream()
        if self._status is not None:
            raise self._rpc_error()
        try:
            data = frame_message(
                self._serializer(message),
                self._encoding,
                self._channel._max_send_message_length,
                compress,
            )
        except RpcError as exc:
            self._finish(Status(exc.code(), exc.details()), CANCEL)
            raise
        try:
            await stream.send_data(data, end_stream=end)
        except TransportError as exc:
            # The call is over (reset, lost connection, or the server already answered). The
            # response side reports the real status; a direct write() gets the best we know now.
            if self._writer is not None and self._writer is asyncio.current_task():
                raise _RequestsAborted from None
            if self._status is None and stream.remote_ended and stream.trailers is not None:
                raise self._rpc_error_from(parse_trailers(stream.trailers)) from None
            raise self._rpc_error_from(self._status or self._status_from(exc)) from None
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

    def _start_writer(self, requests: Optional[RequestIterable]) -> None:
        if requests is not None and self._writer is None:
            self._writer = self._loop.create_task(self._consume_requests(requests))

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

    # ------------------------------------------------------------------ receiving

    async def _send_requests(self) -> None:
        """Start sending the request(s); each request kind says how (idempotent)."""
        raise NotImplementedError

    async def _receive_head(self) -> None:
        """Wait for the response headers (or a Trailers-Only response, which ends the call)."""
        if self._initial_metadata is not None or self._status is not None:
            return
        await self._send_requests()
        stream = await self._get_stream()
        retries = 0
        while True:
            try:
                headers = await stream.receive_response_headers()
                # The head ended the stream (Trailers-Only) if the stream is over with no trailers.
                head = parse_response_headers(
                    headers, end_stream=stream.remote_ended and stream.trailers is None
                )
                break
            except TransportError as exc:
                if retries < _MAX_TRANSPARENT_RETRIES and self._may_retry(exc):
                    # The server never saw this stream (REFUSED_STREAM, or above a GOAWAY's
                    # last-stream-id): gRPC's transparent retry sends it again.
                    await asyncio.sleep(_RETRY_PAUSE * 2**retries)
                    retries += 1
                    stream = await self._resend()
                    continue
                self._finish(self._status_from(exc), CANCEL)
                return
            except CodecError as exc:
                self._finish(self._status_from(exc), CANCEL)
                return
        self._response_encoding = head.encoding
        if head.trailers_only is not None:
            self._initial_metadata = Metadata()
            self._finish(head.trailers_only)
        else:
            self._initial_metadata = head.metadata

    async def _receive_head_quietly(self) -> None:
        with contextlib.suppress(RpcError):
            await self._receive_head()

    async def _read(self) -> Any:
        """The next response message, or EOF once the call ended OK; raises RpcError otherwise."""
        messages = self._messages
        if not messages:
            if self._status is None:
                await self._receive_head()
                await self._fill()
            if not messages:
                status = self._status
                assert status is not None
                if status.code != StatusCode.OK:
                    raise self._rpc_error()
                return EOF
        data = messages.popleft()
        try:
            return self._deserializer(data)
        except Exception as exc:
            self._finish(
                Status(StatusCode.INTERNAL, f"Failed to deserialize response message: {exc}"),
                CANCEL,
            )
            raise self._rpc_error() from None

    async def _fill(self) -> None:
        """Read body bytes until a whole message is decoded or the call has ended."""
        stream = self._stream
        if stream is None or self._status is not None:
            return
        decoder = self._decoder
        messages = self._messages
        limit = self._channel._max_receive_message_length
        while not messages and self._status is None:
            try:
                chunk = await stream.read()
            except TransportError as exc:
                self._finish(self._status_from(exc), CANCEL)
                return
            if not chunk:
                self._on_stream_end(stream)
                return
            try:
                messages.extend(decode_messages(decoder, chunk, self._response_encoding, limit))
            except RpcError as exc:
                self._finish(Status(exc.code(), exc.details()), CANCEL)

    def _on_stream_end(self, stream: Stream) -> None:
        try:
            self._decoder.finish()
        except CodecError as exc:
            self._finish(Status(StatusCode.INTERNAL, f"response stream truncated: {exc}"))
            return
        if stream.trailers is None:
            self._finish(Status(StatusCode.INTERNAL, "server closed the stream without trailers"))
        else:
            self._finish(parse_trailers(stream.trailers))

    async def _wait_status(self) -> Status:
        """Drive the call to its end (discarding unread responses) and return its status."""
        while self._status is None:
            try:
                await self._receive_head()
                if self._status is None:
                    self._messages.clear()
                    await self._fill()
            except RpcError:
                pass
        return self._status

    # ------------------------------------------------------------------ ending

    def _finish(self, status: Status, reset_code: Optional[int] = None) -> None:
        """Record the final status once; stop the timer, the writer and the stream."""
        if self._status is not None:
            return
        self._status = status
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        writer = self._writer
        if writer is not None and not writer.done() and writer is not asyncio.current_task():
            writer.cancel()
        stream = self._stream
        if stream is not None:
            if reset_code is not None:
                stream.reset(reset_code)
            elif not stream.local_closed:
                # The server has answered while we were still sending: stop, without error.
                stream.reset(NO_ERROR)

    def _may_retry(self, exc: Exception) -> bool:
        """A refused stream of a call whose requests can be sent again."""
        refused = (
            isinstance(exc, StreamResetError) and exc.remote and exc.error_code == REFUSED_STREAM
        ) or (isinstance(exc, ConnectionClosedError) and exc.refused)
        return refused and self._status is None and self._replayable()

    def _replayable(self) -> bool:
        return False

    async def _resend(self) -> Stream:
        raise NotImplementedError

    def _on_deadline(self) -> None:
        self._timer = None
        self._finish(Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), CANCEL)

    def _status_from(self, exc: Exception) -> Status:
        if self._status is not None:  # we reset the stream ourselves (cancel, deadline)
            return self._status
        if isinstance(exc, StreamResetError):
            return Status(
                status_from_reset(exc.error_code),
                f"Stream reset by peer (HTTP/2 error code {exc.error_code})",
            )
        if isinstance(exc, ConnectionClosedError):
            return Status(StatusCode.UNAVAILABLE, str(exc))
        if isinstance(exc, InvalidResponseError):
            return Status(exc.code, exc.message)
        if isinstance(exc, MessageTooLargeError):
            return Status(StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return Status(StatusCode.INTERNAL, str(exc))

    def _rpc_error(self) -> RpcError:
        assert self._status is not None
        return self._rpc_error_from(self._status)

    def _rpc_error_from(self, status: Status) -> RpcError:
        return RpcError.from_status(status, self._initial_metadata)


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
            response = await self._read()
            if response is EOF:
                raise self._rpc_error_from(
                    Status(StatusCode.UNIMPLEMENTED, "server sent no response message")
                )
            extra = await self._read()
            if extra is not EOF:
                self._finish(
                    Status(StatusCode.INTERNAL, "server sent more than one response"), CANCEL
                )
                raise self._rpc_error()
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

    async def _resend(self) -> Stream:
        self._stream = None
        self._opening = None
        self._sent = False
        await self._send_requests()
        return await self._get_stream()


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
        if self._requests is not None:
            self._start_writer(self._requests)
        else:
            await self._get_stream()


class UnaryUnaryCall(_UnaryRequestMixin, _UnaryResponseMixin):
    """One request, one response: ``response = await call``."""


class UnaryStreamCall(_UnaryRequestMixin, _StreamResponseMixin):
    """One request, a stream of responses: ``async for response in call``."""


class StreamUnaryCall(_StreamRequestMixin, _UnaryResponseMixin):
    """A stream of requests, one response: ``response = await call``."""


class StreamStreamCall(_StreamRequestMixin, _StreamResponseMixin):
    """Streams both ways: ``async for response in call`` while requests go out."""
