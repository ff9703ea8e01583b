"""What a client decides, for both the asyncio and the blocking API: no waiting, no sockets.

``ChannelCore`` holds a channel's settings and its connection policy (gRPC connection backoff,
fail-fast versus wait-for-ready, what to do with a connection that received GOAWAY).
``ClientCallCore`` is one call's state machine: its request head, the framing and compression of
requests, the parsing of the response head, message decoding, trailers, how every transport
failure maps to a status, and transparent retry. The async classes (``_call.py``,
``_channel.py``) and the blocking ones (``sync.py``) only add the waiting.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

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
from codec.http2_errors import CANCEL as CANCEL  # re-exported: the shells cancel calls with it
from codec.http2_errors import ENHANCE_YOUR_CALM, NO_ERROR, REFUSED_STREAM
from transport import (
    Address,
    ConnectionClosedError,
    ConnectionOptions,
    StreamResetError,
    parse_address,
)
from transport.session import SessionStream

from ._backoff import Backoff, BackoffOptions
from ._deadline import effective_deadline
from ._errors import RpcError, UsageError
from ._handlers import Cardinality, Deserializer, Serializer, _identity
from ._messages import decode_messages, frame_message
from ._options import (
    CHANNEL_GRPC_OPTIONS,
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    merge_grpc_options,
    size_limit,
)
from ._options import connection_options as build_connection_options
from ._tls import require_alpn_h2
from ._trace import TraceOption, with_tracer
from ._version import USER_AGENT

log = logging.getLogger(__name__)

#: How often a call the server never saw is sent again on another stream (transparent retry).
MAX_TRANSPARENT_RETRIES = 6
#: Pause before the first transparent retry, doubled each time: a server that refused a stream
#: at its concurrency limit may count streams a little longer than we do.
RETRY_PAUSE = 0.01


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


def no_call_credentials(credentials: object) -> UsageError:
    """The error for grpcio's ``credentials=`` call argument: h2rpc has no call credentials."""
    return UsageError(
        f"h2rpc has no call credentials (credentials={credentials!r}): send a token as metadata, "
        "e.g. metadata=[('authorization', 'Bearer <token>')], on a TLS channel "
        "(ssl_context=rpc.ssl_channel_context())"
    )


def normalize_compression(compression: Optional[str]) -> Optional[str]:
    """``identity`` and None mean no compression; anything else must be supported."""
    if compression == "identity":
        return None
    if not is_supported_encoding(compression):
        raise UsageError(f"unsupported compression {compression!r}: use gzip or deflate")
    return compression


class ChannelCore:
    """A channel's settings and connection policy, shared by the async and blocking channels.

    Options use grpcio's names and units (seconds, bytes); grpcio's ``options=[("grpc.xxx", v)]``
    form is accepted too. A size limit of ``-1`` or ``None`` means unlimited. See the README for
    the table of options.
    """

    def __init__(
        self,
        target: str,
        *,
        max_receive_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: Optional[int] = None,
        max_metadata_size: Optional[int] = None,
        compression: Optional[str] = None,
        keepalive_time: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        keepalive_permit_without_calls: Optional[bool] = None,
        initial_reconnect_backoff: Optional[float] = None,
        max_reconnect_backoff: Optional[float] = None,
        min_connect_timeout: Optional[float] = None,
        user_agent: Optional[str] = None,
        authority: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        connection_options: Optional[ConnectionOptions] = None,
        options: Sequence[tuple[str, Any]] = (),
        trace: TraceOption = None,
    ) -> None:
        settings: dict[str, Any] = {
            "max_receive_message_length": max_receive_message_length,
            "max_send_message_length": max_send_message_length,
            "max_metadata_size": max_metadata_size,
            "keepalive_time": keepalive_time,
            "keepalive_timeout": keepalive_timeout,
            "keepalive_permit_without_calls": keepalive_permit_without_calls,
            "initial_reconnect_backoff": initial_reconnect_backoff,
            "max_reconnect_backoff": max_reconnect_backoff,
            "min_connect_timeout": min_connect_timeout,
            "user_agent": user_agent,
            "authority": authority,
            "server_hostname": server_hostname,
        }
        merge_grpc_options(settings, options, CHANNEL_GRPC_OPTIONS, "channel")
        try:
            self._compression = normalize_compression(compression)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        self.target = target
        self._address: Address = parse_address(target)
        self._authority: str = settings["authority"] or self._address.authority
        self._scheme = "https" if ssl_context is not None else "http"
        self._ssl = None if ssl_context is None else require_alpn_h2(ssl_context)
        self._server_hostname: Optional[str] = settings["server_hostname"]
        self._max_receive_message_length = size_limit(settings["max_receive_message_length"])
        self._max_send_message_length = size_limit(settings["max_send_message_length"])
        agent = settings["user_agent"]
        self._user_agent = f"{agent} {USER_AGENT}" if agent else USER_AGENT
        self._connection_options = build_connection_options(connection_options, settings)
        # Wire tracing (rpc._trace): this option, an active rpc.trace() block, or H2RPC_TRACE.
        self._connection_options = with_tracer(self._connection_options, trace)
        backoff = {
            name: settings[key]
            for key, name in (
                ("initial_reconnect_backoff", "initial_backoff"),
                ("max_reconnect_backoff", "max_backoff"),
                ("min_connect_timeout", "min_connect_timeout"),
            )
            if settings[key] is not None
        }
        self._backoff = Backoff(BackoffOptions(**backoff))
        self._retry_at = 0.0  # after a failed attempt: no new attempt before this (monotonic)
        self._last_failure: Optional[RpcError] = None
        self._closed = False
        #: Request heads without timeout or metadata, by (path, encoding): built once.
        self._heads: dict[tuple[str, Optional[str]], Any] = {}
        self._setup()

    def _setup(self) -> None:
        """The driver's own state (the async and blocking channels differ only in waiting)."""

    # ------------------------------------------------------------------ multi-callables

    def unary_unary(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for one request and one response (grpcio's name).

        ``_registered_method`` is accepted and ignored: stubs generated by recent grpcio-tools
        pass ``_registered_method=True`` so that grpcio's C core registers the path once; h2rpc
        needs no such step (a method's request head is built once per channel anyway), so the
        generated stubs run unchanged on ``rpc.Channel`` and ``rpc.sync.Channel``.
        """
        return self._multi_callable(
            Cardinality.UNARY_UNARY, method, request_serializer, response_deserializer
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for one request and a stream of responses.

        ``_registered_method``: ignored, as in ``unary_unary``.
        """
        return self._multi_callable(
            Cardinality.UNARY_STREAM, method, request_serializer, response_deserializer
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for a stream of requests and one response.

        ``_registered_method``: ignored, as in ``unary_unary``.
        """
        return self._multi_callable(
            Cardinality.STREAM_UNARY, method, request_serializer, response_deserializer
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for streams both ways.

        ``_registered_method``: ignored, as in ``unary_unary``.
        """
        return self._multi_callable(
            Cardinality.STREAM_STREAM, method, request_serializer, response_deserializer
        )

    #: The driver's multi-callable class for each call kind (async: awaitable calls; blocking:
    #: calls that block), set by each channel class.
    _multi_callables: Mapping[Cardinality, Callable[..., Any]] = {}

    def _multi_callable(
        self,
        kind: Cardinality,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> Any:
        return self._multi_callables[kind](self, method, request_serializer, response_deserializer)

    # ------------------------------------------------------------------ connection policy

    def _connect_delay(self, wait_for_ready: bool) -> float:
        """Seconds to wait before the next connection attempt (0: now).

        While backing off after a failure (gRPC's TRANSIENT_FAILURE) a fail-fast call gets the
        last failure at once; a wait-for-ready call waits for the next attempt.
        """
        if self._closed:
            raise RpcError(StatusCode.CANCELLED, "channel is closed")
        delay = self._retry_at - time.monotonic()
        if delay > 0 and not wait_for_ready and self._last_failure is not None:
            raise self._last_failure
        return max(delay, 0.0)

    def _connect_timeout(self) -> float:
        return self._backoff.connect_timeout()

    def _connect_failed(self, exc: BaseException) -> RpcError:
        reason = str(exc) or type(exc).__name__
        self._last_failure = RpcError(
            StatusCode.UNAVAILABLE, f"failed to connect to {self.target}: {reason}"
        )
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        return self._last_failure

    def _connected(self) -> None:
        self._backoff.reset()
        self._retry_at = 0.0
        self._last_failure = None

    def _learn_from_goaway(self, error_code: Optional[int], debug_data: bytes) -> None:
        """gRPC clients double their keepalive interval when told they ping too much."""
        if error_code == ENHANCE_YOUR_CALM and debug_data == b"too_many_pings":
            options = self._connection_options
            if options.keepalive_time is not None:
                log.warning("server %s said too_many_pings: keepalive time doubled", self.target)
                self._connection_options = dataclasses.replace(
                    options, keepalive_time=options.keepalive_time * 2
                )


class ClientCallCore:
    """One client call's protocol state; the shells add ``_get_stream`` and the waiting."""

    def __init__(
        self,
        channel: ChannelCore,
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
        self._encoding = normalize_compression(
            channel._compression if compression is None else compression
        )
        self._response_encoding: Optional[str] = None
        # The deadline is the tighter of our timeout and the one inherited from a handler.
        self._deadline = deadline = effective_deadline(timeout)
        if deadline is None and not metadata:
            # The common case has the same head every time: build it once per method.
            key = (path, self._encoding)
            headers = channel._heads.get(key)
            if headers is None:
                headers = channel._heads[key] = self._build_headers(path, None, None)
            self._headers = headers
        else:
            self._headers = self._build_headers(path, deadline, metadata)
        self._stream: Optional[SessionStream] = None
        self._decoder = MessageDecoder(channel._max_receive_message_length)
        self._messages: deque[bytes] = deque()
        self._initial_metadata: Optional[Metadata] = None
        self._status: Optional[Status] = None
        self._done_writing = False
        self._retries = 0

    def _build_headers(self, path: str, deadline: Optional[float], metadata: Any) -> Any:
        channel = self._channel
        try:
            return build_request_headers(
                path,
                channel._authority,
                scheme=channel._scheme,
                timeout=None if deadline is None else deadline - time.monotonic(),
                metadata=metadata,
                encoding=self._encoding,
                accept_encoding=SUPPORTED_ENCODINGS,
                user_agent=channel._user_agent,
            )
        except InvalidMetadataError as exc:
            if isinstance(exc, TypeError):  # not pairs at all (a dict...): say so as TypeError
                raise
            raise UsageError(f"invalid metadata: {exc}") from None

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

    # ------------------------------------------------------------------ decisions

    def _frame(self, message: Any, compress: bool) -> bytes:
        """Serialize, compress and length-prefix one request; RpcError ends the call."""
        try:
            return frame_message(
                self._serializer(message),
                self._encoding,
                self._channel._max_send_message_length,
                compress,
            )
        except RpcError as exc:
            self._finish(Status(exc.code(), exc.details()), CANCEL)
            raise

    def _response_complete(self, stream: SessionStream) -> bool:
        """The server has answered in full: requests not yet sent are moot.

        A server may answer before the request ends and then reset our side with NO_ERROR
        (RFC 9113 §8.1); the response still counts, so sending just stops, quietly.
        """
        if stream.remote_ended:
            self._done_writing = True
            return True
        return False

    def _write_failed(self, stream: SessionStream, exc: Exception) -> RpcError:
        """A request could not be sent: the error to give a direct ``write()`` caller.

        The call is over (reset, lost connection, or the server already answered); the response
        side reports the real status, this is the best we know now.
        """
        if self._status is None and stream.remote_ended and stream.trailers is not None:
            return self._rpc_error_from(parse_trailers(stream.trailers))
        return self._rpc_error_from(self._status or self._status_from(exc))

    def _on_response_head(self, stream: SessionStream, headers: Any) -> None:
        """Parse the response head: initial metadata, or a Trailers-Only status."""
        try:
            # The head ended the stream (Trailers-Only) if the stream is over with no trailers.
            head = parse_response_headers(
                headers, end_stream=stream.remote_ended and stream.trailers is None
            )
        except CodecError as exc:
            self._finish(self._status_from(exc), CANCEL)
            return
        self._response_encoding = head.encoding
        if head.trailers_only is not None:
            self._initial_metadata = Metadata()
            self._finish(head.trailers_only)
        else:
            self._initial_metadata = head.metadata

    def _retry_pause(self, exc: Exception) -> Optional[float]:
        """After a failure waiting for the head: the pause before a transparent retry, or None
        (and the call ends) when it may not be retried.

        A stream the server never saw (REFUSED_STREAM, or above a GOAWAY's last-stream-id) is
        sent again, if the call's requests can be replayed.
        """
        refused = (
            isinstance(exc, StreamResetError) and exc.remote and exc.error_code == REFUSED_STREAM
        ) or (isinstance(exc, ConnectionClosedError) and exc.refused)
        if (
            refused
            and self._status is None
            and self._replayable()
            and self._retries < MAX_TRANSPARENT_RETRIES
        ):
            pause = RETRY_PAUSE * float(2**self._retries)
            self._retries += 1
            self._stream = None
            return pause
        self._finish(self._status_from(exc), CANCEL)
        return None

    def _on_chunk(self, chunk: bytes) -> None:
        """Body bytes arrived (``b""``: the stream ended): decode them, or finish the call."""
        if not chunk:
            self._on_stream_end()
            return
        try:
            self._messages.extend(
                decode_messages(
                    self._decoder,
                    chunk,
                    self._response_encoding,
                    self._channel._max_receive_message_length,
                )
            )
        except RpcError as exc:
            self._finish(Status(exc.code(), exc.details()), CANCEL)

    def _on_read_error(self, exc: Exception) -> None:
        self._finish(self._status_from(exc), CANCEL)

    def _on_stream_end(self) -> None:
        stream = self._stream
        try:
            self._decoder.finish()
        except CodecError as exc:
            self._finish(Status(StatusCode.INTERNAL, f"response stream truncated: {exc}"))
            return
        if stream is None or stream.trailers is None:
            self._finish(Status(StatusCode.INTERNAL, "server closed the stream without trailers"))
        else:
            self._finish(parse_trailers(stream.trailers))

    def _needs_data(self) -> bool:
        """True when the next message must still be read from the stream."""
        return not self._messages and self._status is None and self._stream is not None

    def _next_message(self) -> Any:
        """The next decoded response, EOF after an OK end; RpcError for a failed call.

        Only called when ``_needs_data()`` is false.
        """
        messages = self._messages
        if not messages:
            status = self._status
            assert status is not None
            if status.code is not StatusCode.OK:
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

    def _single_from(self, first: Any, second: Any) -> Any:
        """Check a unary response: exactly one message before an OK end."""
        if first is EOF:
            raise self._rpc_error_from(
                Status(StatusCode.UNIMPLEMENTED, "server sent no response message")
            )
        if second is not EOF:
            self._finish(Status(StatusCode.INTERNAL, "server sent more than one response"), CANCEL)
            raise self._rpc_error()
        return first

    def _replayable(self) -> bool:
        return False

    # ------------------------------------------------------------------ ending

    def _finish(self, status: Status, reset_code: Optional[int] = None) -> None:
        """Record the final status once; stop the stream and whatever the shell runs."""
        if self._status is not None:
            return
        self._status = status
        self._on_finished()
        stream = self._stream
        if stream is not None:
            if reset_code is not None:
                stream.reset(reset_code)
            elif not stream.local_closed:
                # The server has answered while we were still sending: stop, without error.
                stream.reset(NO_ERROR)

    def _on_finished(self) -> None:
        """The shell's hook: stop its deadline timer and request writer."""

    def _status_from(self, exc: BaseException) -> Status:
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
        if isinstance(exc, RpcError):
            return Status(exc.code(), exc.details())
        return Status(StatusCode.INTERNAL, str(exc))

    def _deadline_exceeded(self) -> None:
        self._finish(Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), CANCEL)

    def _rpc_error(self) -> RpcError:
        assert self._status is not None
        return self._rpc_error_from(self._status)

    def _rpc_error_from(self, status: Status) -> RpcError:
        return RpcError.from_status(status, self._initial_metadata)


class MultiCallableBase:
    """A method bound to a channel (the async and blocking ones differ only in their calls)."""

    def __init__(
        self,
        channel: Any,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> None:
        if not method.startswith("/"):
            raise ValueError(f"method must be a path like /package.Service/Method: {method!r}")
        self._channel = channel
        self._method = method
        self._serializer = request_serializer or _identity
        self._deserializer = response_deserializer or _identity

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._method}>"
