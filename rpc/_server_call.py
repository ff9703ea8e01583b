"""The server side of one call: parse the request head, run the handler, send the status.

``ServicerContext`` is both the handler's API (grpcio-aio names: ``invocation_metadata``,
``send_initial_metadata``, ``set_code``, ``abort``, ``read``/``write``, ...) and the driver of the
call's stream. Every way a handler can end (return, ``RpcError``, ``abort``, any other exception,
cancellation by the client, the deadline) becomes a status in ``_run`` and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional

from codec import (
    SUPPORTED_ENCODINGS,
    InvalidMetadataError,
    MessageDecoder,
    Metadata,
    RequestHead,
    RequestRejected,
    Status,
    StatusCode,
    TruncatedMessageError,
    build_response_headers,
    build_trailers,
    build_trailers_only,
    is_supported_encoding,
    parse_request_headers,
)
from transport import Stream, TransportError

from ._call import EOF
from ._deadline import set_deadline
from ._errors import AbortError, RpcError
from ._handlers import Cardinality, MethodHandler
from ._messages import decode_messages, frame_message

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger(__name__)


class _StreamGone(Exception):
    """The client reset the stream or the connection died: there is nobody left to answer."""


class ServicerContext:
    """Per-call context handed to handlers, and the call's protocol driver."""

    def __init__(self, server: Server, stream: Stream) -> None:
        self._server = server
        self._stream = stream
        self._head: Optional[RequestHead] = None
        self._handler: Optional[MethodHandler] = None
        self._decoder = MessageDecoder(server._max_receive_message_length)
        self._messages: deque[bytes] = deque()
        self._request_ended = False
        self._headers_sent = False
        self._code: Optional[StatusCode] = None
        self._details = ""
        self._trailing_metadata: Any = None
        self._deadline: Optional[float] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._cancelled = False
        self._deadline_exceeded = False
        self._done = False
        self._abort_status: Optional[Status] = None
        self._status_details: Optional[bytes] = None
        self._request_encoding: Optional[str] = None
        self._response_encoding: Optional[str] = server._compression
        self._compress_next = True
        self._done_callbacks: list[Callable[[ServicerContext], Any]] = []

    # ------------------------------------------------------------------ handler API

    def invocation_metadata(self) -> Metadata:
        return self._head.metadata if self._head is not None else Metadata()

    def method(self) -> str:
        return self._head.path if self._head is not None else ""

    def peer(self) -> str:
        return self._stream.connection.peer

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the client's deadline, or None when it set none."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        """True once the client cancelled the call or its deadline passed."""
        return self._cancelled

    def done(self) -> bool:
        return self._done

    async def send_initial_metadata(self, metadata: Any) -> None:
        if self._headers_sent:
            raise RuntimeError("initial metadata was already sent")
        self._send_headers(metadata)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._trailing_metadata = metadata

    def trailing_metadata(self) -> Any:
        return self._trailing_metadata

    def set_code(self, code: StatusCode) -> None:
        self._code = StatusCode(code)

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> Optional[StatusCode]:
        return self._code

    def details(self) -> str:
        return self._details

    async def abort(
        self, code: StatusCode, details: str = "", trailing_metadata: Any = None
    ) -> NoReturn:
        """End the call now with ``code`` (not OK) and ``details``."""
        if code == StatusCode.OK:
            raise ValueError("abort() needs a non-OK status code")
        if trailing_metadata is not None:
            self._trailing_metadata = trailing_metadata
        self._abort_status = Status(StatusCode(code), details)
        raise AbortError(details)

    async def abort_with_status(self, status: Any) -> NoReturn:
        """grpcio's rich-error form: ``status`` has ``code``, ``details``, ``trailing_metadata``.

        A ``grpc-status-details-bin`` entry in its trailing metadata (what grpcio-status's
        ``rpc_status.to_status()`` puts there) is sent as the status details.
        """
        code = status.code
        code = StatusCode(code.value[0] if isinstance(code.value, tuple) else code)
        pairs = list(status.trailing_metadata or ())
        details = [v for k, v in pairs if k == "grpc-status-details-bin"]
        if details:
            self._status_details = bytes(details[0])
        self._trailing_metadata = [(k, v) for k, v in pairs if k != "grpc-status-details-bin"]
        await self.abort(code, status.details)

    def set_compression(self, compression: Optional[str]) -> None:
        """Compress this call's responses with ``compression`` (if the client accepts it)."""
        if compression == "identity":
            compression = None
        if not is_supported_encoding(compression):
            raise ValueError(f"unsupported compression {compression!r}")
        if self._headers_sent:
            raise RuntimeError("set_compression() after the response headers were sent")
        self._response_encoding = compression

    def disable_next_message_compression(self) -> None:
        """Send the next response message uncompressed, even in a compressed call."""
        self._compress_next = False

    def add_done_callback(self, callback: Callable[[ServicerContext], Any]) -> None:
        """Call ``callback(context)`` when the call ends, however it ends (cancelled too)."""
        if self._done:
            callback(self)
        else:
            self._done_callbacks.append(callback)

    async def read(self) -> Any:
        """The next request message, or ``rpc.EOF`` once the client half-closed."""
        return await self._read_request()

    async def write(self, message: Any) -> None:
        """Send one response message (streaming responses)."""
        await self._send_message(message)

    # ------------------------------------------------------------------ driver

    async def _run(self) -> None:
        """Serve the call to its end; never raises (the server's task must not die noisily)."""
        stream = self._stream
        stream.on_failed = self._on_stream_failed
        try:
            status = await self._serve()
        except _StreamGone:
            status = None
        except asyncio.CancelledError:
            status = self._status_after_cancel()
        except Exception:  # a bug of ours: still answer, never hang the client
            log.exception("internal error serving %s", self.method())
            status = Status(StatusCode.INTERNAL, "internal server error")
        finally:
            if self._timer is not None:
                self._timer.cancel()
        self._done = True
        if status is not None:
            self._send_status(status)
        for callback in self._done_callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("done callback of %s raised", self.method())

    async def _serve(self) -> Optional[Status]:
        stream = self._stream
        assert stream.request_headers is not None
        try:
            self._head = head = parse_request_headers(stream.request_headers)
        except RequestRejected as exc:
            self._reject(exc)
            return None
        handler = self._server._registry.lookup(head.path, head.metadata)
        if handler is None:
            return Status(StatusCode.UNIMPLEMENTED, f"Method not found: {head.path}")
        if not is_supported_encoding(head.encoding):
            return Status(
                StatusCode.UNIMPLEMENTED,
                f"grpc-encoding {head.encoding!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_ENCODINGS)})",
            )
        self._request_encoding = head.encoding
        if self._response_encoding is not None and (
            self._response_encoding not in head.accept_encoding
        ):
            self._response_encoding = None  # the client cannot decode it: send identity
        self._handler = handler
        if head.timeout is not None:
            self._deadline = time.monotonic() + head.timeout
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(head.timeout, self._on_deadline)
            set_deadline(self._deadline)  # calls the handler makes inherit it
        try:
            await self._invoke(handler)
        except RpcError as exc:
            if exc.trailing_metadata():
                self._trailing_metadata = exc.trailing_metadata()
            if exc.status_details() is not None:
                self._status_details = exc.status_details()
            return Status(exc.code(), exc.details())
        except AbortError:
            assert self._abort_status is not None
            return self._abort_status
        except (_StreamGone, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("handler for %s raised", head.path)
            # The client learns the exception type, never its text or traceback.
            return Status(StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__} in handler")
        code = self._code if self._code is not None else StatusCode.OK
        return Status(code, self._details)

    async def _invoke(self, handler: MethodHandler) -> None:
        behavior = handler.behavior
        kind = handler.cardinality
        if kind is Cardinality.UNARY_UNARY:
            request = await self._read_single_request()
            response = await behavior(request, self)
            await self._send_unary_response(response)
        elif kind is Cardinality.UNARY_STREAM:
            request = await self._read_single_request()
            await self._send_streamed(behavior(request, self))
        elif kind is Cardinality.STREAM_UNARY:
            response = await behavior(self._request_iterator(), self)
            await self._send_unary_response(response)
        else:
            await self._send_streamed(behavior(self._request_iterator(), self))

    async def _send_unary_response(self, response: Any) -> None:
        if self._code is not None and self._code != StatusCode.OK:
            return  # the handler chose an error status with set_code()
        if response is None:
            raise RpcError(StatusCode.INTERNAL, "handler returned no response message")
        await self._send_message(response)

    async def _send_streamed(self, result: Any) -> None:
        if hasattr(result, "__aiter__"):
            async for response in result:
                await self._send_message(response)
        elif inspect.isawaitable(result):
            await result  # the handler wrote its responses with context.write()
        else:
            raise TypeError("streaming handler must be an async generator or coroutine")

    # ------------------------------------------------------------------ requests

    async def _read_single_request(self) -> Any:
        request = await self._read_request()
        if request is EOF:
            raise RpcError(StatusCode.INTERNAL, "request stream ended without a request message")
        if await self._read_request() is not EOF:
            raise RpcError(StatusCode.INTERNAL, "more than one request message for a unary method")
        return request

    async def _request_iterator(self) -> AsyncIterator[Any]:
        while True:
            request = await self._read_request()
            if request is EOF:
                return
            yield request

    async def _read_request(self) -> Any:
        messages = self._messages
        if not messages:
            if self._request_ended:
                return EOF
            await self._fill()
            if not messages:
                return EOF
        data = messages.popleft()
        handler = self._handler
        assert handler is not None
        try:
            return handler.request_deserializer(data)
        except Exception as exc:
            raise RpcError(
                StatusCode.INTERNAL, f"Failed to deserialize request message: {type(exc).__name__}"
            ) from None

    async def _fill(self) -> None:
        stream = self._stream
        decoder = self._decoder
        messages = self._messages
        while not messages:
            try:
                chunk = await stream.read()
            except TransportError:
                raise _StreamGone from None
            if not chunk:
                self._request_ended = True
                try:
                    decoder.finish()
                except TruncatedMessageError:
                    raise RpcError(
                        StatusCode.INTERNAL, "request stream ended inside a message"
                    ) from None
                return
            messages.extend(
                decode_messages(
                    decoder,
                    chunk,
                    self._request_encoding,
                    self._server._max_receive_message_length,
                )
            )

    # ------------------------------------------------------------------ responses

    def _send_headers(self, metadata: Any = None) -> None:
        try:
            headers = build_response_headers(
                metadata=metadata,
                encoding=self._response_encoding,
                accept_encoding=SUPPORTED_ENCODINGS,
            )
        except InvalidMetadataError as exc:
            raise RpcError(StatusCode.INTERNAL, f"invalid initial metadata: {exc}") from None
        try:
            self._stream.send_headers(headers)
        except TransportError:
            raise _StreamGone from None
        self._headers_sent = True

    async def _send_message(self, message: Any) -> None:
        if self._done:
            raise RuntimeError("the call is already finished")
        if not self._headers_sent:
            self._send_headers()
        handler = self._handler
        assert handler is not None
        compressed, self._compress_next = self._compress_next, True
        data = frame_message(
            handler.response_serializer(message),
            self._response_encoding,
            self._server._max_send_message_length,
            compressed,
        )
        try:
            await self._stream.send_data(data)
        except TransportError:
            raise _StreamGone from None

    def _send_status(self, status: Status) -> None:
        stream = self._stream
        if stream.error is not None or stream.local_closed:
            return  # reset or already answered: nothing may be sent any more
        metadata = self._trailing_metadata
        details = self._status_details
        try:
            try:
                if self._headers_sent:
                    trailers = build_trailers(
                        status.code, status.message, metadata=metadata, details=details
                    )
                else:  # Trailers-Only: also say which encodings we accept
                    trailers = build_trailers_only(
                        status.code,
                        status.message,
                        metadata=metadata,
                        details=details,
                        accept_encoding=SUPPORTED_ENCODINGS,
                    )
            except InvalidMetadataError as exc:
                log.error("invalid trailing metadata from handler of %s: %s", self.method(), exc)
                build = build_trailers if self._headers_sent else build_trailers_only
                trailers = build(StatusCode.INTERNAL, "invalid trailing metadata")
            stream.send_trailers(trailers)
        except TransportError:
            pass

    def _reject(self, exc: RequestRejected) -> None:
        """Answer a request that is not valid gRPC (wrong content-type, method, ...)."""
        trailers = build_trailers_only(exc.code, exc.message)
        if exc.http_status != 200:
            trailers = [(b":status", str(exc.http_status).encode())] + [
                h for h in trailers if h[0] != b":status"
            ]
        with contextlib.suppress(TransportError):
            self._stream.send_trailers(trailers)

    # ------------------------------------------------------------------ cancellation

    def _on_stream_failed(self) -> None:
        """The client reset the stream (or vanished): stop the handler."""
        if self._done:
            return
        self._cancelled = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    def _on_deadline(self) -> None:
        self._timer = None
        if self._done:
            return
        self._cancelled = True
        self._deadline_exceeded = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    def _status_after_cancel(self) -> Optional[Status]:
        if self._deadline_exceeded:
            return Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if self._cancelled:
            return None  # the client is gone: nothing to send
        return Status(StatusCode.UNAVAILABLE, "server is shutting down")
