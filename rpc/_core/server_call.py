"""What a server call decides, for the asyncio and the blocking server: no waiting, no sockets.

``ServerCallCore`` parses the request head and picks the handler (or the status that answers
instead: UNIMPLEMENTED, HTTP 415, ...), decodes requests, frames responses, turns every way a
handler can end (return, ``RpcError``, ``abort``, any other exception, cancellation, the deadline)
into a status in one place, and builds the trailers. It is also the part of the handler's
``context`` API that does not wait. The shells (``rpc._aio.server_call`` for asyncio,
``rpc.sync.server`` for threads) read, write and run the handler.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional, Protocol

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
from transport import TransportError
from transport.session import StreamState

from .._auth import auth_context, peer_identities, peer_identity_key
from .._errors import AbortError, RpcError
from .._handlers import MethodHandler
from .deadline import set_deadline
from .messages import EOF, WrongMessageType, decode_messages, frame_message
from .options import normalize_compression

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerCallSettings:
    """What a server call needs from its server: built once per server, handed to every call."""

    #: The handler for a path (and the call's metadata, for generic handlers), or None.
    lookup: Callable[[str, Metadata], Optional[MethodHandler]]
    max_receive_message_length: Optional[int]
    max_send_message_length: Optional[int]
    #: The default compression of responses (used when the client accepts it).
    compression: Optional[str]


class HandlerPool(Protocol):
    """What an asyncio server's call needs from its server: where plain ``def`` handlers run."""

    def executor(self) -> Executor: ...


class CallBook(Protocol):
    """What a blocking server's call needs from its server: deadline timers and its slot."""

    def watch_deadline(self, deadline: float, callback: Callable[[], None]) -> None:
        """Call ``callback()`` on the server's timer thread at ``deadline`` (monotonic)."""

    def release_slot(self, call: object) -> None:
        """The call is about to send its final status: its connection may start another."""


class StreamGone(Exception):
    """The client reset the stream or the connection died: there is nobody left to answer."""


class ServerCallCore:
    """One server call: the protocol decisions, and the non-waiting half of the context API."""

    def __init__(self, settings: ServerCallSettings, stream: StreamState) -> None:
        self._settings = settings
        self._stream = stream
        self._head: Optional[RequestHead] = None
        self._handler: Optional[MethodHandler] = None
        self._decoder = MessageDecoder(settings.max_receive_message_length)
        self._messages: deque[bytes] = deque()
        self._request_ended = False
        self._headers_sent = False
        self._code: Optional[StatusCode] = None
        self._details = ""
        self._trailing_metadata: Any = None
        self._deadline: Optional[float] = None
        self._cancelled = False
        self._deadline_passed = False
        self._done = False
        self._abort_status: Optional[Status] = None
        self._status_details: Optional[bytes] = None
        self._request_encoding: Optional[str] = None
        self._response_encoding: Optional[str] = settings.compression
        self._compress_next = True
        self._done_callbacks: list[Callable[[], Any]] = []

    # ------------------------------------------------------------------ context API

    def invocation_metadata(self) -> Metadata:
        return self._head.metadata if self._head is not None else Metadata()

    def method(self) -> str:
        return self._head.path if self._head is not None else ""

    def peer(self) -> str:
        return self._stream._session.peer

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the client's deadline, or None when it set none."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        """True once the client cancelled the call or its deadline passed."""
        return self._cancelled

    def is_active(self) -> bool:
        """grpcio's name: the call is still going (not finished, not cancelled)."""
        return not self._done and not self._cancelled

    def done(self) -> bool:
        return self._done

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

    def set_compression(self, compression: Optional[str]) -> None:
        """Compress this call's responses with ``compression`` (if the client accepts it)."""
        encoding = normalize_compression(compression)
        if self._headers_sent:
            raise RuntimeError("set_compression() after the response headers were sent")
        head = self._head
        if encoding is not None and head is not None and encoding not in head.accept_encoding:
            encoding = None  # the client cannot decode it: send identity
        self._response_encoding = encoding

    def disable_next_message_compression(self) -> None:
        """Send the next response message uncompressed, even in a compressed call."""
        self._compress_next = False

    def add_done_callback(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(context)`` when the call ends, however it ends (grpc.aio's form).

        Called at once if the call has already ended.
        """
        if self._done:
            callback(self)
        else:
            self._done_callbacks.append(functools.partial(callback, self))

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Call ``callback()`` when the call ends (grpcio's synchronous form: no argument).

        False, and the callback is never called, if the call has already ended.
        """
        if self._done:
            return False
        self._done_callbacks.append(callback)
        return True

    def auth_context(self) -> dict[str, list[bytes]]:
        """grpcio's authentication properties: TLS, and the client certificate under mTLS."""
        return auth_context(self._stream._session.tls)

    def peer_identities(self) -> Optional[list[bytes]]:
        """The client's certificate identities (SANs, else common name); None without one."""
        return peer_identities(self.auth_context())

    def peer_identity_key(self) -> Optional[str]:
        """The ``auth_context()`` key that ``peer_identities()`` come from, or None."""
        return peer_identity_key(self.auth_context())

    def _abort(self, code: StatusCode, details: str, trailing_metadata: Any) -> NoReturn:
        if code == StatusCode.OK:
            raise ValueError("abort() needs a non-OK status code")
        if trailing_metadata is not None:
            self._trailing_metadata = trailing_metadata
        self._abort_status = Status(StatusCode(code), details)
        raise AbortError(details)

    def _abort_with_status(self, status: Any) -> NoReturn:
        """End the call with a status given as an object, in any of the forms users have:

        - grpcio's ``grpc.Status`` (``code``, ``details``, ``trailing_metadata``), e.g. from
          grpcio-status's ``rpc_status.to_status()``: a ``grpc-status-details-bin`` entry in its
          trailing metadata is sent as the rich status details;
        - a ``google.rpc.Status`` message (``code``, ``message``, ``details``): sent as the code,
          the message and, serialized, the rich status details;
        - h2rpc's own ``rpc.Status`` (or an ``rpc.RpcError``, e.g. from ``rpc.rich_error``).
        """
        if isinstance(status, RpcError):
            self._status_details = status.status_details()
            self._abort(status.code(), status.details(), status.trailing_metadata() or None)
        if isinstance(status, Status):
            self._status_details = status.details
            self._abort(status.code, status.message, status.metadata or None)
        if hasattr(status, "SerializeToString"):  # google.rpc.Status
            self._status_details = status.SerializeToString()
            self._abort(StatusCode(status.code), status.message, None)
        pairs = list(status.trailing_metadata or ())
        details = [v for k, v in pairs if k == "grpc-status-details-bin"]
        if details:
            self._status_details = bytes(details[0])
        metadata = [(k, v) for k, v in pairs if k != "grpc-status-details-bin"]
        self._abort(StatusCode(status.code), status.details, metadata)

    # ------------------------------------------------------------------ the request head

    def _begin(self) -> Optional[Status]:
        """Parse the head and pick the handler. None: run it. A status: answer with it now.

        A request that is not gRPC at all is answered here (HTTP 415, 405, ...) and raises
        StreamGone: nothing more is to be done for it.
        """
        stream = self._stream
        stream.on_failed = self._on_stream_failed
        assert stream.request_headers is not None
        try:
            self._head = head = parse_request_headers(stream.request_headers)
        except RequestRejected as exc:
            self._reject(exc)
            raise StreamGone from None
        handler = self._settings.lookup(head.path, head.metadata)
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
        # Calls the handler makes inherit the deadline (gRPC deadline propagation). Every shell
        # calls _begin in the context the handler runs in: the call's task, or a fresh
        # contextvars.Context per call on a handler thread (so nothing leaks to the next call).
        set_deadline(self._deadline)
        return None

    def _reject(self, exc: RequestRejected) -> None:
        """Answer a request that is not valid gRPC (wrong content-type, method, ...)."""
        trailers = build_trailers_only(exc.code, exc.message)
        if exc.http_status != 200:
            trailers = [(b":status", str(exc.http_status).encode())] + [
                h for h in trailers if h[0] != b":status"
            ]
        try:
            self._stream.send_trailers(trailers)
        except TransportError:
            pass

    # ------------------------------------------------------------------ requests

    def _on_chunk(self, chunk: bytes) -> None:
        """Request bytes arrived (``b""``: the client half-closed); RpcError if they are bad."""
        if not chunk:
            self._request_ended = True
            try:
                self._decoder.finish()
            except TruncatedMessageError:
                raise RpcError(
                    StatusCode.INTERNAL, "request stream ended inside a message"
                ) from None
            return
        self._messages.extend(
            decode_messages(
                self._decoder,
                chunk,
                self._request_encoding,
                self._settings.max_receive_message_length,
            )
        )

    def _needs_data(self) -> bool:
        return not self._messages and not self._request_ended

    def _next_request(self) -> Any:
        """The next request (EOF after the half-close); only when ``_needs_data()`` is false."""
        messages = self._messages
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

    @staticmethod
    def _check_single_request(request: Any, extra: Any) -> Any:
        if request is EOF:
            raise RpcError(StatusCode.INTERNAL, "request stream ended without a request message")
        if extra is not EOF:
            raise RpcError(StatusCode.INTERNAL, "more than one request message for a unary method")
        return request

    # ------------------------------------------------------------------ responses

    def _send_headers(self, metadata: Any = None) -> None:
        if self._headers_sent:
            raise RuntimeError("initial metadata was already sent")
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
            raise StreamGone from None
        self._headers_sent = True

    def _frame_response(self, message: Any) -> bytes:
        """Headers (if not yet sent), then the framed message: what ``write`` must send."""
        if self._cancelled:
            raise StreamGone
        if self._done:
            raise RuntimeError("the call is already finished")
        if not self._headers_sent:
            self._send_headers()
        handler = self._handler
        assert handler is not None
        compressed, self._compress_next = self._compress_next, True
        try:
            return frame_message(
                handler.response_serializer(message),
                self._response_encoding,
                self._settings.max_send_message_length,
                compressed,
            )
        except RpcError:
            raise
        except Exception as exc:
            raise self._serialize_failed(message, exc) from None

    def _serialize_failed(self, message: Any, exc: Exception) -> RpcError:
        """A response could not be serialized (a handler returned the wrong type, say): the
        call fails INTERNAL, as in grpcio, and the log says which method and why."""
        if isinstance(exc, WrongMessageType):  # from a service's descriptor: says it all
            log.error("handler for %s gave a wrong response: %s", self.method(), exc)
        else:
            log.error(
                "could not serialize the response of %s (a %s) with its response_serializer",
                self.method(),
                type(message).__name__,
                exc_info=exc,
            )
        return RpcError(StatusCode.INTERNAL, "Failed to serialize response!")

    def _unary_response_wanted(self, response: Any) -> bool:
        """Whether a unary handler's return value must be sent (not after ``set_code``)."""
        if self._code is not None and self._code is not StatusCode.OK:
            return False  # the handler chose an error status with set_code()
        if response is None:
            raise RpcError(StatusCode.INTERNAL, "handler returned no response message")
        return True

    # ------------------------------------------------------------------ the status

    def _status_of_return(self) -> Status:
        code = self._code if self._code is not None else StatusCode.OK
        return Status(code, self._details)

    def _status_of_exception(self, exc: BaseException) -> Optional[Status]:
        """The one place where a handler's failure becomes a status (None: nobody to tell).

        ``RpcError`` and ``abort`` carry their status; any other exception is UNKNOWN, unless the
        handler had already chosen a non-OK code with ``set_code`` (then that code and its
        ``set_details``, as grpcio does).
        """
        if isinstance(exc, RpcError):
            if exc.trailing_metadata():
                self._trailing_metadata = exc.trailing_metadata()
            if exc.status_details() is not None:
                self._status_details = exc.status_details()
            return Status(exc.code(), exc.details())
        if isinstance(exc, AbortError) and self._abort_status is not None:
            return self._abort_status
        if isinstance(exc, StreamGone):
            return self._status_after_cancel() if self._deadline_passed else None
        # The client learns the exception type, never its text or traceback.
        generic_details = f"Unexpected {type(exc).__name__} in handler"
        code = self._code
        if code is not None and code is not StatusCode.OK:
            # The handler chose a status with set_code() and then raised: grpcio sends that code
            # and the details it set (its _server.py, _abortion_code), not UNKNOWN. Generated
            # servicer bases rely on it: their unimplemented methods do set_code(UNIMPLEMENTED),
            # set_details('Method not implemented!'), then raise NotImplementedError.
            log.info(
                "handler for %s raised after set_code(%s)", self.method(), code.name, exc_info=exc
            )
            return Status(code, self._details or generic_details)
        log.error("handler for %s raised", self.method(), exc_info=exc)
        return Status(StatusCode.UNKNOWN, generic_details)

    def _status_after_cancel(self) -> Optional[Status]:
        if self._deadline_passed:
            return Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if self._cancelled:
            return None  # the client is gone: nothing to send
        return Status(StatusCode.UNAVAILABLE, "server is shutting down")

    def _end(self, status: Optional[Status]) -> None:
        """Send the final status (unless there is nobody to send it to) and run callbacks."""
        if self._done:
            return
        self._done = True
        self._finishing()
        if status is not None:
            self._send_status(status)
        for callback in self._done_callbacks:
            try:
                callback()
            except Exception:
                log.exception("done callback of %s raised", self.method())

    def _finishing(self) -> None:
        """Just before the final status is queued (a hook for the servers' bookkeeping)."""

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

    # ------------------------------------------------------------------ cancellation

    def _on_stream_failed(self) -> None:
        """The client reset the stream (or vanished): stop the handler."""
        if self._done:
            return
        self._cancelled = True
        self._interrupt()

    def _on_deadline(self) -> None:
        if self._done:
            return
        self._cancelled = True
        self._deadline_passed = True
        self._interrupt()

    def _interrupt(self) -> None:
        """The shell's hook: stop the running handler (cancel its task, or wake its thread)."""


def invoke_blocking(
    core: ServerCallCore,
    context: Any,
    read: Callable[[], Any],
    send: Callable[[Any], None],
) -> None:
    """Run a plain ``def`` handler to its end: the call shape of each cardinality, for threads.

    ``read`` returns the next request (EOF after the half-close) and ``send`` writes one
    response; both block. Used by the blocking server, and by the async server for ``def``
    handlers.
    """
    handler = core._handler
    assert handler is not None
    behavior = handler.behavior
    kind = handler.cardinality

    def requests() -> Iterator[Any]:
        while True:
            request = read()
            if request is EOF:
                return
            yield request

    if kind.request_streaming:
        result = behavior(requests(), context)
    else:
        first = read()
        request = core._check_single_request(first, read() if first is not EOF else EOF)
        result = behavior(request, context)
    if not kind.response_streaming:
        if core._unary_response_wanted(result):
            send(result)
    elif result is not None:
        try:
            responses = iter(result)
        except TypeError:
            log.error(
                "handler for %s returned a %s: a server-streaming def handler must return an "
                "iterable of responses (or be a generator), or send them with context.write()",
                core.method(),
                type(result).__name__,
            )
            raise RpcError(StatusCode.UNKNOWN, "Exception iterating responses") from None
        for response in responses:
            send(response)
