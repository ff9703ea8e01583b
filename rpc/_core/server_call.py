"""What a server call decides, for the asyncio and the blocking server: no waiting, no sockets.

``ServerCallCore`` parses the request head and picks the handler (or the status that answers
instead: UNIMPLEMENTED, HTTP 415, ...), decodes requests, frames responses, runs the call shape of
each cardinality, turns every way a handler can end (return, ``RpcError``, ``abort``, any other
exception, cancellation, the deadline) into a status in one place, and builds the trailers. It is
also the non-waiting half of the handler's ``context`` (``rpc._core.server_context`` is the
handler-facing surface over it).

Programs and commands
---------------------
Where a call must wait, the core does not. Its *programs* are generators: ``serve()`` (the whole
call), ``read_request()`` (``context.read()``) and ``send_message(message)`` (``context.write()``;
the same program sends a handler's returned or yielded responses). Whenever a program must wait it
yields a *command*, a tuple whose first item is one of the opcodes below, and it is resumed with the
outcome (``program.send(value)``) or the failure (``program.throw(exc)``). The shells only *drive*
programs: each performs commands its own way of waiting and hands back whatever happened; the
program decides what it means (a ``TransportError`` or ``TimeoutError`` while reading is
``StreamGone``, a handler's exception is a status, ...). A command's meaning, and how the three
drivers perform it:

========== ======================== ===================== ========================================
opcode     command                  resumed with          asyncio / blocking / def-on-asyncio
========== ======================== ===================== ========================================
READ       ``(READ,)``              the next request body ``await stream.read()`` /
                                    chunk, ``b""`` at the ``stream.read(timeout=time left)`` /
                                    half-close            the asyncio driver, on the loop
SEND       ``(SEND, data)``         None once queued      ``await stream.send_data(data)`` /
                                                          ``stream.send_data(data, timeout=...)``
                                                          / the asyncio driver, on the loop
ARM        ``(ARM, deadline)``      None                  call ``deadline_passed()`` at
                                                          ``deadline`` (``time.monotonic()``): a
                                                          loop timer / the server's deadline
                                                          watcher thread
CALL_DEF   ``(CALL_DEF, behavior,   what the plain        in the server's pool, with a context
           argument)``              ``def`` handler       bridged to the loop / in this thread
                                    returned
CALL_ASYNC ``(CALL_ASYNC, behavior, its coroutine or      called on the loop, not awaited /
           argument)``              async generator       TypeError (a def-only server)
AWAIT      ``(AWAIT, awaitable)``   its result            ``await`` / TypeError
NEXT       ``(NEXT, iterator)``     the next item, or     ``next()`` in the pool (in the
                                    ``DONE``              handler's contextvars) / ``next()``
ANEXT      ``(ANEXT, iterator)``    the next item, or     ``await iterator.__anext__()`` /
                                    ``DONE``              TypeError
HOLD       ``(HOLD,)``              None                  nothing / cork the connection: the
                                                          headers, the one response and the
                                                          trailers leave in one write (nothing is
                                                          read after this point)
SEND_NEXT  ``(SEND_NEXT, data,      the next response of  SEND, then the NEXT or ANEXT ``step``;
           step)``                  the stream, or        the step's own failure is raised as
                                    ``DONE``              ``HandlerFailed(error)``
========== ======================== ===================== ========================================

``argument`` is the request, or ``REQUEST_STREAM``: the driver passes its own iterator of the
requests (an async one for ``async def`` handlers), which drives ``read_request()``. Constant
commands are module constants (``_READ``, ``_HOLD``): no allocation per command.

Events, not hooks
-----------------
The core never calls into a shell. What happens to a call from outside arrives as an event
method that returns what the shell must do: ``stream_failed()`` (the client reset the stream or
the connection died: the shell registers its own ``stream.on_failed``) and ``deadline_passed()``
(the timer armed for ARM fired) return True when the running handler must be stopped. The shell
stops it its own way: asyncio cancels the call's task, and its driver throws ``CallCancelled``
into ``serve()`` in place of the ``CancelledError``; a thread cannot be stopped, so the blocking
shell ends the call at once with ``status_after_cancel()`` and the handler's next read or write
fails. The value of ``serve()`` is the final status; the driver ends the call with ``end(status)``,
after its own bookkeeping and under its own lock where threads race to end a call (the blocking
server frees the connection's slot first). A callback handed to the core would have done for
these few cases too; events keep the order of steps visible in one place, the driver.

Dropping a thrown error
-----------------------
Every driver (these two and the client calls') keeps the failure it is about to throw into the
program in a local, and must drop it however ``program.throw()`` ends (``try/finally``), not only
when the program goes on. When the program ends instead (its ``StopIteration``, or the error
passed back out), a kept error would hold its traceback, the traceback the driver's frame, and the
frame the error: a reference cycle, which only the cycle collector frees, seconds later on an idle
process. Everything those frames hold waited with it: the call, the message being sent, a handler's
response generator (whose ``finally`` then ran late; the fault tests' check that a cancelled
blocking handler ends saw it).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn, Optional, Protocol

from codec import (
    SUPPORTED_ENCODINGS,
    InvalidMetadataError,
    MessageDecoder,
    Metadata,
    RequestHead,
    RequestHeadCache,
    RequestRejected,
    Status,
    StatusCode,
    TruncatedMessageError,
    build_http_rejection,
    build_response_headers,
    build_trailers,
    build_trailers_only,
    is_supported_encoding,
)
from transport import TransportError
from transport.events import Headers
from transport.session import SessionView

from .._auth import auth_context, peer_identities, peer_identity_key
from .._errors import AbortError, RpcError
from .._handlers import MethodHandler
from .deadline import set_deadline
from .messages import EOF, WrongMessageType, decode_messages, frame_message
from .options import normalize_compression

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------- commands

READ = 0
SEND = 1
NEXT = 2
ANEXT = 3
CALL_DEF = 4
CALL_ASYNC = 5
AWAIT = 6
ARM = 7
HOLD = 8
SEND_NEXT = 9

#: A command: an opcode, then its operands.
Command = tuple[Any, ...]
#: A program: yields commands, is resumed with their outcomes, and returns its value.
Program = Generator[Command, Any, Any]

_READ: Command = (READ,)
_HOLD: Command = (HOLD,)


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: In place of the request in CALL_DEF / CALL_ASYNC: the handler takes the request stream.
REQUEST_STREAM: Any = _Sentinel("REQUEST_STREAM")
#: What NEXT and ANEXT resume with once the iterator is exhausted.
DONE: Any = _Sentinel("DONE")
#: What ``_begin`` returns when the handler is still to be awaited (async interceptors).
_LOOKUP_PENDING: Any = _Sentinel("LOOKUP_PENDING")


class StreamGone(Exception):
    """The client reset the stream or the connection died: there is nobody left to answer."""


class HandlerFailed(Exception):
    """What a driver raises when the handler's response iterator raised during SEND_NEXT: the
    handler's error (``error``), told apart from a failure of the send itself."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class CallCancelled(BaseException):
    """Thrown into ``serve()`` by a driver whose call was cancelled (the asyncio task's
    ``CancelledError``): a BaseException, so that no handler-level ``except Exception`` takes it."""


# ---------------------------------------------------------------------- what a call is given


@dataclass(frozen=True)
class ServerCallSettings:
    """What a server call needs from its server: built once per server, handed to every call."""

    #: The handler for a path (and the call's metadata, for generic handlers), or None.
    lookup: Callable[[str, Metadata], Optional[MethodHandler]]
    max_receive_message_length: Optional[int]
    max_send_message_length: Optional[int]
    #: The default compression of responses (used when the client accepts it).
    compression: Optional[str]
    #: With ``rpc.Interceptor``s: ``intercept(call, handler, request)`` starts them before the
    #: handler runs and gives the handler and request to use (``rpc.interceptors``).
    intercept: Optional[Callable[[Any, MethodHandler, Any], tuple[MethodHandler, Any]]] = None
    #: The request heads parsed so far (a client repeats its heads): built once per server.
    heads: RequestHeadCache = field(default_factory=RequestHeadCache, compare=False)


class HandlerPool(Protocol):
    """What an asyncio server's call needs from its server: where plain ``def`` handlers run."""

    def executor(self) -> Executor: ...


class DeadlineWatch(Protocol):
    """A deadline timer of a blocking server's call."""

    def cancel(self) -> None:
        """The call ended: drop the callback (and what it holds) without waiting for the time."""


class CallBook(Protocol):
    """What a blocking server's call needs from its server: deadline timers and its slot."""

    def watch_deadline(self, deadline: float, callback: Callable[[], None]) -> DeadlineWatch:
        """Call ``callback()`` on the server's timer thread at ``deadline`` (monotonic)."""

    def release_slot(self, call: object) -> None:
        """The call is about to send its final status: its connection may start another."""


class ServerStream(Protocol):
    """What the core uses of a transport stream (``transport.Stream`` or ``BlockingStream``);
    reading and writing data is the drivers' part."""

    @property
    def request_headers(self) -> Optional[Headers]: ...

    @property
    def local_closed(self) -> bool: ...

    @property
    def error(self) -> Optional[Exception]: ...

    @property
    def connection(self) -> SessionView: ...

    def send_headers(self, headers: Headers, *, end_stream: bool = False) -> None: ...

    def send_trailers(self, headers: Headers) -> None: ...

    def respond(self, headers: Headers, body: bytes) -> None: ...


# ---------------------------------------------------------------------- the call


class ServerCallCore:
    """One server call: the protocol decisions, its programs, and the non-waiting context API."""

    #: The call's running ``rpc.Interceptor``s (``rpc.interceptors``), if the server has any:
    #: the final status goes through them.
    _interception: Any = None
    #: The awaitable an async ``intercept_service`` chain gave for the handler, until awaited.
    _pending_handler: Any = None

    def __init__(self, settings: ServerCallSettings, stream: ServerStream) -> None:
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

    # ------------------------------------------------------------------ the programs

    def serve(self) -> Program:
        """The whole call, as a program; its value is the final status (None: nobody to tell).

        Parse the head and pick the handler, arm the deadline, read the request (unary), call
        the handler in the shape of its cardinality, send what it returns or yields, and turn
        how it ended into the status. The driver ends the call with ``end(status)``.
        """
        status: Optional[Status]
        try:
            status = self._begin()
            if status is _LOOKUP_PENDING:  # an async def intercept_service: await its handler
                status = yield from self._await_handler()
            if status is None:
                if self._deadline is not None:
                    yield (ARM, self._deadline)
                try:
                    yield from self._invoke()
                    status = self._status_of_return()
                except Exception as exc:
                    status = self._status_of_exception(exc)
        except StreamGone:
            status = None
        except CallCancelled:
            status = self.status_after_cancel()
        except GeneratorExit:  # the driver dropped the program: nothing more to do
            raise
        except BaseException:  # a bug of ours: still answer, never hang the client
            log.exception("internal error serving %s", self.method())
            status = Status(StatusCode.INTERNAL, "internal server error")
        if self._cancelled:  # the client is gone, or the deadline passed, whatever the handler did
            status = self.status_after_cancel()
        interception = self._interception
        if interception is not None:
            status = interception.finish(self, status)
        return status

    def _invoke(self) -> Program:
        """The call shape of each cardinality, for ``async def`` and plain ``def`` handlers."""
        handler = self._handler
        assert handler is not None
        kind = handler.cardinality
        if kind.request_streaming:
            argument = REQUEST_STREAM
        else:
            first = yield from self.read_request()
            second = (yield from self.read_request()) if first is not EOF else EOF
            argument = self._check_single_request(first, second)
        intercept = self._settings.intercept
        if intercept is not None:
            handler, argument = intercept(self, handler, argument)
            self._handler = handler
        is_async = handler.is_async
        result = yield (CALL_ASYNC if is_async else CALL_DEF, handler.behavior, argument)
        if not kind.response_streaming:
            if is_async:
                result = yield (AWAIT, result)
            if self._unary_response_wanted(result):
                yield _HOLD  # nothing is read from here on: headers, message, trailers
                yield from self._send(result, None)
            return
        if is_async:
            if not hasattr(result, "__aiter__"):
                # A coroutine: it writes its responses with context.write(); it returns nothing.
                returned = yield (AWAIT, result)
                if returned is not None:
                    log.warning(
                        "handler for %s is an async def returning a %s, which is ignored: a "
                        "server-streaming handler must yield its responses (an async generator) "
                        "or send them with 'await context.write(response)'",
                        self.method(),
                        type(returned).__name__,
                    )
                return
            step: Command = (ANEXT, result.__aiter__())
        elif result is None:
            return  # it wrote its responses with context.write()
        else:
            try:
                responses = iter(result)
            except TypeError:
                log.error(
                    "handler for %s returned a %s: a server-streaming def handler must return an "
                    "iterable of responses (or be a generator), or send them with "
                    "context.write()",
                    self.method(),
                    type(result).__name__,
                )
                raise RpcError(StatusCode.UNKNOWN, "Exception iterating responses") from None
            step = (NEXT, responses)
        response = yield step
        if response is not DONE:
            yield from self._send(response, step)

    def read_request(self) -> Program:
        """The next request (``EOF`` after the half-close), as a program: ``context.read()``."""
        while not self._messages and not self._request_ended:
            try:
                chunk = yield _READ
            except (TransportError, TimeoutError):
                raise StreamGone from None
            self._on_chunk(chunk)
        return self._next_request()

    def send_message(self, message: Any) -> Program:
        """Send one response (the headers first, if not yet sent): ``context.write()``."""
        return self._send(message, None)

    def _send(self, response: Any, step: Optional[Command]) -> Program:
        """Send ``response``; then, given ``step`` (the NEXT or ANEXT of a handler's responses),
        each next response until ``DONE``: one program for a whole response stream.

        In a stream, each response is sent and the next one taken in one command (SEND_NEXT):
        one resumption per message. The driver tells the handler's failure (HandlerFailed)
        from the send's.
        """
        if step is None:
            data = self._frame_response(response)
            try:
                yield (SEND, data)
            except (TransportError, TimeoutError):
                raise StreamGone from None
            return
        while response is not DONE:
            data = self._frame_response(response)
            try:
                response = yield (SEND_NEXT, data, step)
            except (TransportError, TimeoutError):
                raise StreamGone from None
            except HandlerFailed as failed:
                raise failed.error from None

    # ------------------------------------------------------------------ events

    def stream_failed(self) -> bool:
        """The client reset the stream, or its connection died. True: stop the handler."""
        if self._done:
            return False
        self._cancelled = True
        return True

    def deadline_passed(self) -> bool:
        """The deadline armed by ARM passed. True: stop the handler."""
        if self._done:
            return False
        self._cancelled = True
        self._deadline_passed = True
        return True

    def status_after_cancel(self) -> Optional[Status]:
        """The status of a call stopped from outside (None: the client is gone)."""
        if self._deadline_passed:
            return Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if self._cancelled:
            return None  # the client is gone: nothing to send
        return Status(StatusCode.UNAVAILABLE, "server is shutting down")

    def end(self, status: Optional[Status]) -> None:
        """Send the final status (unless there is nobody to send it to) and run the callbacks.

        Only the first call counts. Also how a server answers a call it refuses.
        """
        if self._done:
            return
        self._done = True
        if status is not None:
            self._send_status(status)
        for callback in self._done_callbacks:
            try:
                callback()
            except Exception:
                log.exception("done callback of %s raised", self.method())

    # ------------------------------------------------------------------ context API

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

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Call ``callback()`` when the call ends; False (never called) if it has ended."""
        if self._done:
            return False
        self._done_callbacks.append(callback)
        return True

    def auth_context(self) -> dict[str, list[bytes]]:
        """grpcio's authentication properties: TLS, and the client certificate under mTLS."""
        return auth_context(self._stream.connection.session.tls)

    def peer_identities(self) -> Optional[list[bytes]]:
        """The client's certificate identities (SANs, else common name); None without one."""
        return peer_identities(self.auth_context())

    def peer_identity_key(self) -> Optional[str]:
        """The ``auth_context()`` key that ``peer_identities()`` come from, or None."""
        return peer_identity_key(self.auth_context())

    def send_initial_metadata(self, metadata: Any = None) -> None:
        """Send the response headers now (they never wait: no program needed)."""
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

    def abort(self, code: StatusCode, details: str, trailing_metadata: Any) -> NoReturn:
        """End the call now with ``code`` (not OK): raises, for the handler to unwind."""
        if code == StatusCode.OK:
            raise ValueError("abort() needs a non-OK status code")
        if trailing_metadata is not None:
            self._trailing_metadata = trailing_metadata
        self._abort_status = Status(StatusCode(code), details)
        raise AbortError(details)

    def abort_with_status(self, status: Any) -> NoReturn:
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
            self.abort(status.code(), status.details(), status.trailing_metadata() or None)
        if isinstance(status, Status):
            self._status_details = status.details
            self.abort(status.code, status.message, status.metadata or None)
        if hasattr(status, "SerializeToString"):  # google.rpc.Status
            self._status_details = status.SerializeToString()
            self.abort(StatusCode(status.code), status.message, None)
        pairs = list(status.trailing_metadata or ())
        details = [v for k, v in pairs if k == "grpc-status-details-bin"]
        if details:
            self._status_details = bytes(details[0])
        metadata = [(k, v) for k, v in pairs if k != "grpc-status-details-bin"]
        self.abort(StatusCode(status.code), status.details, metadata)

    # ------------------------------------------------------------------ the request head

    def _begin(self) -> Optional[Status]:
        """Parse the head and pick the handler. None: run it. A status: answer with it now.

        A request that is not gRPC at all is answered here (HTTP 415, 405, ...) and raises
        StreamGone: nothing more is to be done for it.
        """
        request_headers = self._stream.request_headers
        assert request_headers is not None
        try:
            self._head = head = self._settings.heads.parse(request_headers)
        except RequestRejected as exc:
            self._reject(exc)
            raise StreamGone from None
        try:
            handler = self._settings.lookup(head.path, head.metadata)
        except Exception as exc:  # a generic handler or an interceptor failed, or refused
            return self._status_of_exception(exc)
        if handler is None:
            return Status(StatusCode.UNIMPLEMENTED, f"Method not found: {head.path}")
        if not isinstance(handler, MethodHandler):  # an awaitable of one (async interceptors)
            self._pending_handler = handler
            return _LOOKUP_PENDING
        return self._accept(head, handler)

    def _await_handler(self) -> Program:
        """The handler from an ``async def intercept_service`` chain (rpc.Server only)."""
        head = self._head
        assert head is not None
        pending, self._pending_handler = self._pending_handler, None
        try:
            handler = yield (AWAIT, pending)
        except Exception as exc:
            return self._status_of_exception(exc)
        if handler is None:
            return Status(StatusCode.UNIMPLEMENTED, f"Method not found: {head.path}")
        return self._accept(head, handler)

    def _accept(self, head: RequestHead, handler: MethodHandler) -> Optional[Status]:
        """The call will run ``handler``: None, or the status that answers instead."""
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
        # Calls the handler makes inherit the deadline (gRPC deadline propagation). Every driver
        # runs serve() in the context the handler runs in: the call's task, or a fresh
        # contextvars.Context per call on a handler thread (so nothing leaks to the next call).
        set_deadline(self._deadline)
        return None

    def _reject(self, exc: RequestRejected) -> None:
        """Answer a request that is not valid gRPC (wrong content-type, method, ...)."""
        try:
            if exc.http_status == 200:
                self._stream.send_trailers(build_trailers_only(exc.code, exc.message))
            else:
                self._stream.respond(*build_http_rejection(exc.http_status, exc.code, exc.message))
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

    def _next_request(self) -> Any:
        """The next request (EOF after the half-close), once one is decoded or the stream ended."""
        messages = self._messages
        if not messages:
            return EOF
        data = messages.popleft()
        handler = self._handler
        assert handler is not None
        try:
            return handler.request_deserializer(data)
        except RpcError:  # an interceptor's request wrapper refused it
            raise
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

    def _frame_response(self, message: Any) -> bytes:
        """Headers (if not yet sent), then the framed message: what ``write`` must send."""
        if self._cancelled:
            raise StreamGone
        if self._done:
            raise RuntimeError("the call is already finished")
        if not self._headers_sent:
            self.send_initial_metadata()
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
            return self.status_after_cancel() if self._deadline_passed else None
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
