"""One client call's protocol decisions, for both the asyncio and the blocking API.

``ClientCallCore`` is one call's state machine: its request head, the framing and compression of
requests, the parsing of the response head, message decoding, trailers, how every transport
failure maps to a status, and transparent retry. The shells (``rpc._aio.call``,
``rpc.sync.client``) only add the waiting.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Optional

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
    parse_response_headers,
    parse_trailers,
    status_from_reset,
)
from transport import (
    ConnectionClosedError,
    StreamResetError,
)
from transport.session import StreamState

from .._errors import RpcError, UsageError
from .._handlers import Deserializer, Serializer
from .deadline import effective_deadline
from .messages import EOF, decode_messages, frame_message
from .options import normalize_compression

log = logging.getLogger(__name__)

NO_ERROR = 0x0
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB
#: How often a call the server never saw is sent again on another stream (transparent retry).
MAX_TRANSPARENT_RETRIES = 6
#: Pause before the first transparent retry, doubled each time: a server that refused a stream
#: at its concurrency limit may count streams a little longer than we do.
RETRY_PAUSE = 0.01


class ClientCallCore:
    """One client call's protocol state; the shells add ``_get_stream`` and the waiting."""

    def __init__(
        self,
        channel: Any,
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
        self._stream: Optional[StreamState] = None
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

    def _response_complete(self, stream: StreamState) -> bool:
        """The server has answered in full: requests not yet sent are moot.

        A server may answer before the request ends and then reset our side with NO_ERROR
        (RFC 9113 §8.1); the response still counts, so sending just stops, quietly.
        """
        if stream.remote_ended:
            self._done_writing = True
            return True
        return False

    def _write_failed(self, stream: StreamState, exc: Exception) -> RpcError:
        """A request could not be sent: the error to give a direct ``write()`` caller.

        The call is over (reset, lost connection, or the server already answered); the response
        side reports the real status, this is the best we know now.
        """
        if self._status is None and stream.remote_ended and stream.trailers is not None:
            return self._rpc_error_from(parse_trailers(stream.trailers))
        return self._rpc_error_from(self._status or self._status_from(exc))

    def _on_response_head(self, stream: StreamState, headers: Any) -> None:
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
