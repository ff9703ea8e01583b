"""One client call's protocol decisions, for both the asyncio and the blocking API.

``ClientCallCore`` is one call's state machine: its request head, the framing and compression of
requests, the parsing of the response head, message decoding, trailers, how every transport
failure maps to a status, transparent retry, and the order of the steps of each operation
(send the requests, take the response head, read a message, wait for the status).

The steps are *programs*: generator methods that hold every decision and, whenever they must
wait, yield a *command* (a tuple, its first item one of the opcodes below) and get back its
outcome, or the exception it raised. A shell only *drives* programs, performing each command its
own way: ``rpc._aio.call`` awaits the asyncio transport, ``rpc.sync.client`` blocks on the
threaded one with the deadline as timeout, and its futures perform commands only when they need
not wait, resuming the program when the connection's reader thread has news. So the blocking,
the asyncio and the future form of a call cannot drift apart: there is one program. (Generating
the blocking shell from the asyncio one, httpcore's ``unasync``, was the other way measured; it
cannot give futures, which must never block.)

A deadline reaches a program as ``TimeoutError`` from a command (blocking waits), or as the
status the shell's timer set while it waited (asyncio): either way the program reads the status.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from codec import (
    SUPPORTED_ENCODINGS,
    CodecError,
    InvalidMetadataError,
    InvalidResponseError,
    MessageDecoder,
    MessageTooLargeError,
    Metadata,
    ResponseCache,
    Status,
    StatusCode,
    build_request_headers,
    parse_response_headers,
    parse_trailers,
    status_from_reset,
)
from codec.http2_errors import CANCEL, NO_ERROR, REFUSED_STREAM
from transport import ConnectionClosedError, StreamResetError, TransportError
from transport.session import SessionStream

from .._errors import RpcError, UsageError
from .._handlers import Cardinality, Deserializer, Serializer
from ..client.retry import PREVIOUS_ATTEMPTS_KEY, CallRetry, ChannelRetry, pushback_of
from ..client.service_config import ServiceConfig
from .deadline import effective_deadline
from .messages import EOF, decode_messages, frame_message
from .options import normalize_compression

log = logging.getLogger(__name__)

#: How often a call the server never saw is sent again on another stream (transparent retry).
MAX_TRANSPARENT_RETRIES = 6
#: Pause before the first transparent retry, doubled each time: a server that refused a stream
#: at its concurrency limit may count streams a little longer than we do.
RETRY_PAUSE = 0.01


# Commands of the client call programs: what a shell's driver performs, and what it returns.
#: ``(STREAM,)``: the call's stream, opened if need be by running ``_open_stream()`` (one opener
#: at a time; the others wait for it); RpcError if the call ended meanwhile.
STREAM = 0
#: ``(OPEN,)``: a connection from the channel (connecting as its policy says), then a new stream
#: on it for the call's request head.
OPEN = 1
#: ``(SEND, data, end_stream)``: send request bytes on the call's stream.
SEND = 2
#: ``(HEAD,)``: the response headers of the call's stream.
HEAD = 3
#: ``(READ,)``: the next chunk of response body (``b""``: the stream ended).
READ = 4
#: ``(PAUSE, seconds)``: wait before a transparent retry.
PAUSE = 5
#: ``(NEXT_REQUEST, iterator)``: the next request from the application's (async) iterator, EOF
#: after the last.
NEXT_REQUEST = 6
#: ``(START_WRITER,)``: start sending the request iterator concurrently (a task or a thread
#: driving ``_write_requests()``).
START_WRITER = 7

# 8 was CONNECT, the channel's own connection attempt, before the balancer's subchannels.

#: ``(DELIVER, message)``: hand a response (EOF after the last) to the consumer of a response
#: stream: the driver returns it, and the next drive of the same program goes on from there.
DELIVER = 9

#: ``(WAIT_ANY, streams, seconds)``: wait until one of ``streams`` has news for its reader
#: (headers, data, its end or failure; see ``has_news``) or ``seconds`` pass (None: no limit).
#: Hedging waits so for the first of its attempts to answer.
WAIT_ANY = 10

#: ``(SEND_ON, stream, data, end_stream)``: send request bytes on one given stream (a hedged
#: request stream sends each request on every attempt still alive, not only the call's stream).
SEND_ON = 11

#: What ``_ready_message()`` returns when the next message must be waited for.
NOT_READY: Any = object()

_STREAM = (STREAM,)
_OPEN = (OPEN,)
_HEAD = (HEAD,)
_READ = (READ,)
_START_WRITER = (START_WRITER,)

#: A program: yields commands, gets their outcomes, returns its result.
Program = Generator[tuple[Any, ...], Any, Any]


@dataclass(frozen=True)
class CallSettings:
    """What every call of a channel needs from it, built once per channel."""

    authority: str
    scheme: str
    user_agent: str
    compression: Optional[str]
    max_receive_message_length: Optional[int]
    max_send_message_length: Optional[int]
    #: Request heads without timeout or metadata, by (path, encoding): built once per method.
    heads: dict[tuple[str, Optional[str]], Any] = field(default_factory=dict, compare=False)
    #: Response heads and trailers parsed so far (a server repeats them): one per channel.
    responses: ResponseCache = field(default_factory=ResponseCache, compare=False)
    #: The service config, if it has method configs (None: nothing to look up per call).
    service_config: Optional[ServiceConfig] = field(default=None, compare=False)
    #: The channel's retry throttle and buffer (None: retries disabled).
    retry: Optional[ChannelRetry] = field(default=None, compare=False)


def has_news(stream: SessionStream) -> bool:
    """``stream`` has something for its reader: response headers, its end, or its failure."""
    return stream.response_headers is not None or stream.remote_ended or stream.error is not None


class _NoGuard:
    """The asyncio shell needs no lock around the retry bookkeeping (one thread)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_GUARD = _NoGuard()
_STREAM_UNARY = Cardinality.STREAM_UNARY
_STREAM_STREAM = Cardinality.STREAM_STREAM


def _smaller(a: Optional[int], b: Optional[int]) -> Optional[int]:
    """The tighter of two size limits (None: unlimited)."""
    if a is None:
        return b
    return a if b is None else min(a, b)


class ClientCallCore:
    """One client call: its state, its decisions, and the programs the shells drive."""

    #: Called once when the call ends, however it ends (the shells stop their deadline timer
    #: and request writer; a future sets its outcome).
    when_finished: Optional[Callable[[], None]] = None

    def __init__(
        self,
        settings: CallSettings,
        kind: Cardinality,
        request: Any,
        path: str,
        serializer: Serializer,
        deserializer: Deserializer,
        *,
        timeout: Optional[float],
        metadata: Any,
        compression: Optional[str] = None,
        wait_for_ready: Optional[bool] = None,
    ) -> None:
        self._settings = settings
        self._kind = kind
        max_receive = settings.max_receive_message_length
        max_send = settings.max_send_message_length
        #: Retry state (None: no policy and nothing to replay, the common case).
        self._retry: Optional[CallRetry] = None
        config = settings.service_config
        retry = settings.retry
        if config is not None:
            # The service config's defaults for this method: the tighter timeout and size
            # limits win; waitForReady applies unless the call says otherwise.
            method = config.method_config(path)
            if method is not None:
                if method.timeout is not None and (timeout is None or method.timeout < timeout):
                    timeout = method.timeout
                if wait_for_ready is None:
                    wait_for_ready = method.wait_for_ready
                max_receive = _smaller(max_receive, method.max_response_message_bytes)
                max_send = _smaller(max_send, method.max_request_message_bytes)
                hedging = method.hedging_policy
                if retry is not None and (method.retry_policy or hedging):
                    self._retry = retry.call_retry(method.retry_policy, hedging)
        if (
            retry is not None
            and self._retry is None
            and (
                kind is _STREAM_UNARY or kind is _STREAM_STREAM  # (no enum property call per call)
            )
        ):
            self._retry = retry.call_retry(None, None)  # streamed requests kept for replay
        self._max_receive = max_receive
        self._max_send = max_send
        self._metadata = metadata
        #: The request (one), or the iterable of requests (None: ``write()`` calls will send).
        self._request = request
        self._path = path
        self._serializer = serializer
        self._deserializer = deserializer
        self._wait_for_ready = bool(wait_for_ready)
        self._encoding = normalize_compression(
            settings.compression if compression is None else compression
        )
        self._response_encoding: Optional[str] = None
        # The deadline is the tighter of our timeout and the one inherited from a handler.
        self._deadline = deadline = effective_deadline(timeout)
        if deadline is None and not metadata:
            # The common case has the same head every time: build it once per method.
            key = (path, self._encoding)
            headers = settings.heads.get(key)
            if headers is None:
                headers = settings.heads[key] = self._build_headers(path, None, None)
            self._headers = headers
        else:
            self._headers = self._build_headers(path, deadline, metadata)
        self._stream: Optional[SessionStream] = None
        self._decoder = MessageDecoder(max_receive)
        self._messages: deque[bytes] = deque()
        self._initial_metadata: Optional[Metadata] = None
        self._status: Optional[Status] = None
        self._requests_started = False
        self._done_writing = False
        self._retries = 0
        self._response: Any = None
        self._response_ready = False
        #: Request streams with retry state: the application has half-closed; the writer task
        #: stopped because its attempt failed (the next attempt restarts it); the stream whose
        #: opener is still replaying the kept requests.
        self._requests_ended = False
        self._writer_parked = False
        self._replaying: Optional[SessionStream] = None
        self._replay_messages: list[bytes] = []
        #: Hedging: the attempts' streams in flight (of a request stream: those that have been
        #: sent every kept request, so that the writer sends each new one to all of them).
        self._attempts: list[SessionStream] = []
        #: Hedging of a request stream: the hedge program has begun (it opens the attempts).
        self._hedging = False
        #: A hedged request stream outgrew the retry buffer while no attempt was in flight: the
        #: call is committed, its kept requests wait for the one stream that will carry them.
        self._hedge_pending = False
        #: Held around the retry bookkeeping shared by a reader and a writer (the blocking shell
        #: sets a lock: its writer is a thread).
        self._guard: Any = _NO_GUARD

    def _build_headers(self, path: str, deadline: Optional[float], metadata: Any) -> Any:
        settings = self._settings
        try:
            return build_request_headers(
                path,
                settings.authority,
                scheme=settings.scheme,
                timeout=None if deadline is None else deadline - time.monotonic(),
                metadata=metadata,
                encoding=self._encoding,
                accept_encoding=SUPPORTED_ENCODINGS,
                user_agent=settings.user_agent,
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

    # ------------------------------------------------------------------ programs

    def _open_stream(self, hedged: bool = False) -> Program:
        """Open the call's stream (run by the shells' STREAM, one opener at a time).

        A connection may go away (GOAWAY) between picking it and opening the stream: nothing
        was sent, so another connection may take the call (a transparent retry). A failure to
        get a connection at all (fail-fast UNAVAILABLE) is an attempt the retry policy may
        repeat. A retry first waits its backoff; a request stream's kept requests are replayed
        on the new stream before the writer may use it. ``hedged``: a hedge of a request
        stream, returned as it is (``_hedge()`` replays on it, it is not the call's stream yet).
        """
        transparent = 0
        while True:
            if self._status is not None:
                raise self._rpc_error()
            retry = self._retry
            if retry is not None and retry.resume_at:
                yield from self._pause_until(retry.resume_at)
                retry.resume_at = 0.0
                self._headers = self._attempt_headers(retry.attempts - 1)
            try:
                stream = yield _OPEN
            except TimeoutError:
                self._deadline_exceeded()
                raise self._rpc_error() from None
            except (RpcError, TransportError) as exc:
                if isinstance(exc, ConnectionClosedError) and transparent < MAX_TRANSPARENT_RETRIES:
                    transparent += 1
                    continue
                status = self._status_from(exc)
                if (
                    retry is not None
                    and self._status is None
                    and retry.retry_delay(status.code, None) is not None
                ):
                    continue
                if self._attempts and self._status is None:
                    raise self._rpc_error_from(status) from None  # one hedge: the others go on
                self._finish(status)
                raise self._rpc_error() from None
            if self._status is not None:  # cancelled or expired while opening
                stream.reset(CANCEL)
                raise self._rpc_error()
            if hedged:
                return stream
            if retry is not None and self._kind.request_streaming:
                yield from self._replay(stream, retry)
                if self._writer_parked and self._status is None:
                    self._writer_parked = False
                    yield _START_WRITER
                return stream
            self._stream = stream
            return stream

    def _replay(self, stream: SessionStream, retry: CallRetry) -> Program:
        """Send the kept requests of a request stream on a new attempt's stream, and the
        half-close if the application has ended its requests.

        The stream is the call's from the start; a request written meanwhile joins the end of
        the list being replayed (under the guard, so that none is missed or sent twice), and a
        half-close meanwhile is left to this loop too.
        """
        with self._guard:
            self._stream = stream
            self._hedge_pending = False
            messages = self._replay_messages = retry.messages
            self._replaying = stream if messages or self._requests_ended else None
        sent = 0
        end = False
        while self._replaying is stream:
            with self._guard:
                if sent >= len(messages):
                    self._replaying = None
                    end = self._requests_ended
                    break
            try:
                yield (SEND, messages[sent], False)
            except TimeoutError:
                self._replaying = None
                self._deadline_exceeded()
                raise self._rpc_error() from None
            except TransportError:
                self._replaying = None
                return  # this attempt failed too: the response side decides what next
            sent += 1
        if end and not stream.local_closed:
            try:
                stream.end()
            except TransportError:
                pass

    def _replay_hedge(self, stream: SessionStream, retry: CallRetry) -> Program:
        """Send the kept requests of a hedged request stream on a new attempt, then make it one
        that the writer sends every new request to (and half-closes, once the application has).

        A request written meanwhile is kept in the same list, so this loop sends it; the
        attempt joins the others under the guard once it has sent every kept request, so that
        no request is sent to it twice or not at all. If the call commits meanwhile (its
        requests outgrew the retry buffer) to another attempt, this one is cancelled.
        """
        with self._guard:
            messages = self._replay_messages = retry.messages
            self._replaying = stream
        sent = 0
        failed = cancelled = end = False
        while True:
            with self._guard:
                lost = self._status is not None or (retry.committed and self._stream is not stream)
                if not lost and not failed and sent < len(messages):
                    data = messages[sent]
                else:
                    self._replaying = None
                    if lost:
                        cancelled = True
                    else:
                        if not retry.committed:
                            self._attempts.append(stream)  # failed or not: its head tells
                        end = self._requests_ended and not failed
                    break
            try:
                yield (SEND_ON, stream, data, False)
            except TimeoutError:
                with self._guard:
                    self._replaying = None
                stream.reset(CANCEL)
                self._deadline_exceeded()
                raise self._rpc_error() from None
            except TransportError:
                failed = True  # this attempt failed: its response (or reset) says why
            sent += 1
        if cancelled:
            stream.reset(CANCEL)
        elif end and not stream.local_closed:
            try:
                stream.end()
            except TransportError:
                pass

    def _pause_until(self, when: float) -> Program:
        """Wait until ``when`` (a retry's backoff), or until the deadline if that is sooner."""
        delay = when - time.monotonic()
        deadline = self._deadline
        if deadline is not None and time.monotonic() + delay >= deadline:
            delay = deadline - time.monotonic()
            if delay > 0:
                try:
                    yield (PAUSE, delay)
                except TimeoutError:
                    pass
            self._deadline_exceeded()
            raise self._rpc_error()
        if delay > 0:
            try:
                yield (PAUSE, delay)
            except TimeoutError:
                self._deadline_exceeded()
        if self._status is not None:
            raise self._rpc_error()

    def _attempt_headers(self, previous: int) -> Any:
        """The request head of a retry: the timeout left, and how many attempts came before."""
        headers = list(self._build_headers(self._path, self._deadline, self._metadata))
        if previous:
            headers.append((PREVIOUS_ATTEMPTS_KEY, str(previous).encode("ascii")))
        return headers

    def _send_requests(self) -> Program:
        """Start sending: the single request (with END_STREAM), or the request iterator (on a
        writer the shell starts); without one, ``write()`` calls send. Done once per stream."""
        if self._requests_started:
            return
        retry = self._retry
        if retry is not None and retry.hedging is not None and not retry.committed:
            # Sends on each attempt and takes the first head; False: a hedged request stream
            # committed (outgrew the retry buffer) and its stream still takes the head here.
            if (yield from self._hedge(retry)) or self._status is not None:
                return
            if self._stream is None:
                yield _STREAM  # opens the one stream, replaying the requests kept meanwhile
            return
        self._requests_started = True
        if not self._kind.request_streaming:
            try:
                yield from self._write(self._request, True, True)
            except RpcError:
                if self._status is not None:
                    raise
                # The send failed, the call goes on: the response side learns why (and retries a
                # stream the server refused).
            return
        if self._stream is None:
            yield _STREAM
        if self._request is not None:
            yield _START_WRITER

    def _write(self, message: Any, end: bool, compress: bool) -> Program:
        """Frame and send one request; a failed send leaves the status to the response side.

        Framed before the stream opens: a request that cannot be serialized opens none. A
        request stream that may still be retried keeps each request for replay first.
        """
        if self._status is not None:
            raise self._rpc_error()
        data = self._frame(message, compress)
        retry = self._retry
        if retry is not None:
            if self._kind.request_streaming:
                if retry.hedging is not None:
                    sent = yield from self._write_hedged(data, retry)
                    if sent is not None:
                        return sent
                return (yield from self._write_kept(data, retry))
            if not retry.messages:
                retry.keep(data)  # counts toward the retry buffers; too big: committed
        stream = self._stream
        if stream is None:
            stream = yield _STREAM
        if self._response_complete(stream):
            return
        try:
            yield (SEND, data, end)
        except TimeoutError:
            self._deadline_exceeded()
            raise self._rpc_error() from None
        except TransportError as exc:
            if self._response_complete(stream):
                return
            raise self._write_failed(stream, exc) from None
        if end:
            self._done_writing = True

    def _write_hedged(self, data: bytes, retry: CallRetry) -> Program:
        """Send one request of a hedged request stream to every attempt still alive (gRFC A6);
        None when the call is committed to one stream (``_write_kept()`` sends it then).

        The request is kept first, under the guard: an attempt still being replayed sends it
        itself. A request that no longer fits the retry buffer commits the call (``keep()``)
        to the attempt that has been sent the most requests: one that has been sent them all,
        else the one being replayed; the others are cancelled. If no attempt is in flight, the
        kept requests wait for the one stream the call opens next.
        """
        with self._guard:
            if self._hedge_pending:
                retry.messages.append(data)  # the replay of the call's one stream sends it
                return False
            if retry.committed:
                return None
            kept = retry.messages
            if retry.keep(data):
                targets: Optional[list[SessionStream]] = list(self._attempts)
            else:
                targets = self._commit_overflow(retry, kept, data)
        if targets is None:
            return None
        for stream in targets:
            try:
                yield (SEND_ON, stream, data, False)
            except TimeoutError:
                self._deadline_exceeded()
                raise self._rpc_error() from None
            except TransportError:
                pass  # that attempt failed: the hedge program reads why from its stream
        return False

    def _commit_overflow(
        self, retry: CallRetry, kept: list[bytes], data: bytes
    ) -> Optional[list[SessionStream]]:
        """(Under the guard.) ``data`` did not fit the retry buffer, so the hedged call has
        just committed: choose its attempt as gRFC A6 says and cancel the others. The streams
        to send ``data`` on, or None when the call's one stream is still to be opened."""
        attempts = self._attempts
        replaying = self._replaying
        if attempts:
            winner = attempts[0]  # every attempt that joined has been sent every request
        elif replaying is not None:
            winner = replaying
        else:
            retry.messages = kept  # no longer counted: replayed once on the call's stream
            if not self._hedging:
                return None  # nothing opened yet: the writer opens the stream as usual
            self._hedge_pending = True
            kept.append(data)
            return []
        self._stream = winner
        for stream in attempts:
            if stream is not winner:
                stream.reset(CANCEL)
        self._attempts = []
        if winner is replaying:
            self._replay_messages.append(data)  # its replay goes on and sends this one last
            return []
        if replaying is not None:
            replaying.reset(CANCEL)
        return [winner]

    def _write_kept(self, data: bytes, retry: CallRetry) -> Program:
        """Send one request of a request stream that may be retried (gRFC A6 buffering);
        True if the writer must stop (its attempt failed; the next one restarts it).

        The request is kept first. If a replay is under way it joins that; if no stream is
        open, the next attempt's replay sends it. If its attempt fails before the call
        commits, nothing is lost: it is kept for the next attempt.
        """
        with self._guard:
            stream = self._stream
            if stream is not None and stream is self._replaying:
                self._replay_messages.append(data)  # sent by the replay, in order
                return False
            kept = retry.keep(data)
        if stream is None:
            stream = yield _STREAM  # opens (and replays) it now: backpressure as usual
            if kept:
                return False  # the replay sent it
        # (Not _response_complete(): an answer now may be a failure the call retries, and the
        # next attempt still needs the rest of the requests and the half-close.)
        if not stream.remote_ended:
            try:
                yield (SEND, data, False)
                return False
            except TimeoutError:
                self._deadline_exceeded()
                raise self._rpc_error() from None
            except TransportError as exc:
                if not kept or retry.committed or self._status is not None:
                    if self._response_complete(stream):
                        return False
                    raise self._write_failed(stream, exc) from None
        elif not kept or retry.committed:
            return False
        # The attempt is over before the call committed: the response side decides whether
        # to retry; the kept request goes out with the replay if it does.
        if self._request is None:
            return False  # write(): the caller goes on; the replay sends what it wrote
        with self._guard:
            if self._stream is stream or self._stream is None:
                self._writer_parked = True
                return True
        return False

    def _end_requests(self) -> Program:
        """Half-close: no more requests."""
        if self._done_writing:
            return
        retry = self._retry
        if retry is not None and self._kind.request_streaming:
            with self._guard:
                self._done_writing = self._requests_ended = True
                if retry.hedging is not None and not retry.committed:
                    # Hedged: every attempt that has all the requests ends now; one being
                    # replayed, or the next one, ends after its replay.
                    targets = list(self._attempts)
                elif self._hedge_pending:
                    targets = []  # the replay of the call's one stream ends it
                else:
                    targets = None
                stream = self._stream
                if stream is not None and stream is self._replaying:
                    return  # the replay ends it
            if targets is not None:
                for attempt in targets:
                    if not attempt.local_closed:
                        try:
                            attempt.end()
                        except TransportError:
                            pass  # that attempt failed: the hedge program reads why
                return
            if stream is None:
                stream = yield _STREAM  # its replay ends it
        else:
            stream = self._stream
            if stream is None:
                stream = yield _STREAM
            self._done_writing = True
        if self._status is None and not stream.local_closed:
            try:
                stream.end()
            except TransportError:
                pass

    def _write_requests(self, requests: Any) -> Program:
        """The writer's program: send every request of the application's iterator, then
        half-close. A failure to send stops it quietly (the response side tells the status);
        the iterator's own failure ends the call."""
        try:
            while self._status is None:
                message = yield (NEXT_REQUEST, requests)
                if message is EOF:
                    yield from self._end_requests()
                    return
                if (yield from self._write(message, False, True)):
                    return  # parked: the next attempt's opener starts a writer again
        except RpcError:
            pass
        except Exception as exc:  # the application's iterator (or serializer) failed
            self._finish(
                Status(StatusCode.UNKNOWN, f"Exception iterating requests: {exc!r}"), CANCEL
            )

    def _receive_head(self) -> Program:
        """Take the response headers (or a Trailers-Only response, which ends the call); a
        stream the server never saw is sent again (transparent retry), and a failed attempt
        the retry policy allows is tried again (its opener waits for the backoff)."""
        if self._initial_metadata is not None or self._status is not None:
            return
        retry = self._retry
        if (
            retry is not None
            and retry.hedging is not None
            and not retry.committed
            and (yield from self._hedge(retry))
        ):
            return  # (else a hedged request stream committed: its stream's head follows)
        if not self._requests_started:
            yield from self._send_requests()
        while True:
            stream = self._stream
            if stream is None:
                stream = yield _STREAM
            try:
                headers = yield _HEAD
            except TimeoutError:
                self._deadline_exceeded()
                return
            except TransportError as exc:
                pause = self._retry_pause(exc)
                if pause is None:
                    return
                if pause:
                    yield (PAUSE, pause)
                yield from self._send_requests()
                continue
            if self._on_response_head(stream, headers):
                yield from self._send_requests()  # a retry: the opener waits for the backoff
                continue
            return

    def _hedge(self, retry: CallRetry) -> Program:
        """gRFC A6 hedging: the requests go out on up to maxAttempts streams, hedgingDelay
        apart; the first response headers win and the other attempts are cancelled. A
        non-fatal status brings the next attempt forward (or after the server's pushback); a
        fatal one ends the call; the last failure ends it too.

        A request stream's attempts each get the kept requests replayed, then every new one
        from the writer (``_write_hedged()``). True once the call has its head (or its end);
        False if the writer committed the call (its requests outgrew the retry buffer): the
        caller then takes the head of the call's one stream as without hedging.
        """
        hedging = retry.hedging
        assert hedging is not None
        attempts = self._attempts
        streaming = self._kind.request_streaming
        data = b""
        if streaming:
            with self._guard:
                self._hedging = True
            self._requests_started = True
        else:
            data = self._frame(self._request, True)
            self._requests_started = self._done_writing = True
            retry.keep(data)  # too big for the retry buffers: committed, one attempt
        writer = streaming and self._request is not None
        last: Optional[Status] = None
        while self._status is None:
            if streaming and retry.committed:
                # By the writer, its requests outgrowing the retry buffer. With no attempt in
                # flight (all failed, the next waiting for a pushback) no more may start: the
                # last failure is the call's (gRFC A6). Else the chosen stream is the call.
                if self._hedge_pending and self._stream is None and last is not None:
                    self._initial_metadata = Metadata()
                    self._finish(last)
                    return True
                return False
            if retry.resume_at <= time.monotonic() and (
                (not attempts and last is None) or retry.may_hedge()
            ):
                # Start an attempt: open a stream (its opener builds the head of a hedge, with
                # grpc-previous-rpc-attempts), send the request(s).
                if attempts or last is not None:
                    retry.attempts += 1
                if not streaming:
                    self._stream = None
                try:
                    stream = yield from self._open_stream(streaming)
                except RpcError as exc:
                    if self._status is not None:
                        return True
                    if self._hedge_failed(None, exc.code(), None):
                        last = Status(exc.code(), exc.details())
                        continue
                    if not self._win(None):
                        continue
                    self._finish(Status(exc.code(), exc.details()))
                    return True
                retry.hedge_started(hedging.hedging_delay)
                if streaming:
                    with self._guard:
                        committed = retry.committed
                        take = committed and self._hedge_pending
                    if take:
                        yield from self._replay(stream, retry)  # the call's one stream
                        return False
                    if committed:
                        stream.reset(CANCEL)
                        return False
                    yield from self._replay_hedge(stream, retry)
                    if writer:
                        writer = False
                        yield _START_WRITER
                    attempts = self._attempts
                    continue
                attempts.append(stream)
                try:
                    yield (SEND, data, True)
                except TimeoutError:
                    self._deadline_exceeded()
                    return True
                except TransportError:
                    pass  # its head tells why
                continue
            if not attempts:
                if not retry.may_hedge():
                    break  # nothing in flight and no attempt may start: the last one's status
                yield from self._pause_until(retry.resume_at)  # a pushback's delay
                continue
            waiting = retry.may_hedge()
            delay = max(0.0, retry.resume_at - time.monotonic()) if waiting else None
            if not any(has_news(s) for s in attempts):
                try:
                    yield (WAIT_ANY, attempts, delay)
                except TimeoutError:
                    self._deadline_exceeded()
                    return True
                continue
            for stream in list(attempts):
                if not has_news(stream):
                    continue
                if retry.committed and self._stream is not stream:
                    continue  # cancelled: the call committed to another (``_win()`` rechecks)
                try:
                    headers = stream._take_response_headers()
                except (TransportError, CodecError) as exc:
                    status = self._status_from(exc)
                    if self._hedge_failed(stream, status.code, None):
                        last = status
                        continue
                    if not self._win(stream):
                        continue
                    self._finish(status, CANCEL)
                    return True
                assert headers is not None
                end = stream.remote_ended and stream.trailers is None
                try:
                    head = parse_response_headers(headers, end_stream=end)
                except CodecError as exc:
                    if not self._win(stream):
                        continue
                    self._finish(self._status_from(exc), CANCEL)
                    return True
                failed = head.trailers_only
                if failed is not None and failed.code != StatusCode.OK:
                    if self._hedge_failed(stream, failed.code, pushback_of(failed.metadata)):
                        last = failed
                        continue
                    if not self._win(stream):
                        continue
                    self._initial_metadata = Metadata()
                    self._finish(failed)
                    return True
                # The first answer: this attempt is the call.
                if not self._win(stream):
                    continue
                retry.recorded = False  # how it ends counts for throttling
                self._on_response_head(stream, headers)
                return True
        if self._status is None:
            assert last is not None
            self._stream = None
            self._initial_metadata = Metadata()
            self._finish(last)
        return True

    def _hedge_failed(
        self, stream: Optional[SessionStream], code: StatusCode, pushback: Optional[float]
    ) -> bool:
        """An attempt failed with ``code``: True if that was non-fatal and the call goes on
        without it (the hedge program may start the next one); False if it ends the call."""
        retry = self._retry
        assert retry is not None
        with self._guard:
            if retry.committed or not retry.hedge_failed(code, pushback):
                return False
            if stream is not None and stream in self._attempts:
                self._attempts.remove(stream)
            return True

    def _win(self, stream: Optional[SessionStream]) -> bool:
        """``stream``'s answer (or failure) is the call's: commit to it, cancel the others.
        False if the writer committed the call to another attempt first."""
        retry = self._retry
        assert retry is not None
        with self._guard:
            if retry.committed and self._stream is not stream:
                return False
            self._stream = stream
            self._end_hedging(stream)
            return True

    def _end_hedging(self, winner: Optional[SessionStream]) -> None:
        """One attempt is the call's now: cancel the others, keep no more."""
        retry = self._retry
        assert retry is not None
        retry.commit()
        for stream in self._attempts:
            if stream is not winner:
                stream.reset(CANCEL)
        self._attempts = []

    def _read(self, deliver_all: bool = False) -> Program:
        """The next response message, or EOF once the call ended OK; RpcError otherwise.

        ``deliver_all``: the program of an iterating consumer, one for the whole stream: it
        sends the requests if need be, then yields ``(DELIVER, message)`` for every message in
        turn (EOF last), so that no program is started per message.
        """
        if deliver_all and not self._requests_started:
            yield from self._send_requests()
        while True:
            if not self._messages and self._status is None:
                if self._initial_metadata is None:
                    yield from self._receive_head()
                while self._needs_data():
                    try:
                        chunk = yield _READ
                    except TimeoutError:
                        self._deadline_exceeded()
                        break
                    except TransportError as exc:
                        self._on_read_error(exc)
                        break
                    self._on_chunk(chunk)
            message = self._next_message()
            if not deliver_all:
                return message
            yield (DELIVER, message)
            if message is EOF:
                return

    def _ready_message(self) -> Any:
        """``read()``'s answer when it needs no waiting (a message already decoded, or the
        end), else ``NOT_READY``: then drive ``_read_any()``. Saves a program per message of a
        response stream whose messages arrive several to a chunk."""
        if self._requests_started and (self._messages or self._status is not None):
            return self._next_message()
        return NOT_READY

    def _read_any(self) -> Program:
        """``read()`` of a streaming-response call: send the requests first."""
        if not self._requests_started:
            yield from self._send_requests()
        if self._messages or self._status is not None:
            return self._next_message()  # nothing to wait for
        return (yield from self._read())

    def _single_response(self) -> Program:
        """The response of a unary-response call: exactly one message before an OK end."""
        if self._response_ready:
            return self._response
        if not self._requests_started:
            yield from self._send_requests()
        first = yield from self._read()
        if first is EOF:
            second = EOF
        elif self._messages or self._status is not None:
            second = self._next_message()  # nothing to wait for
        else:
            second = yield from self._read()
        self._response = response = self._single_from(first, second)
        self._response_ready = True
        return response

    def _initial_metadata_of(self) -> Program:
        """The response's initial metadata (empty if the call failed before it)."""
        try:
            yield from self._receive_head()
        except RpcError:
            pass
        return self._initial_metadata if self._initial_metadata is not None else Metadata()

    def _final_status(self) -> Program:
        """Drive the call to its end (unread responses of a stream are dropped): its status.

        A unary response is kept, so that the call can still give it afterwards.
        """
        if not self._kind.response_streaming:
            try:
                yield from self._single_response()
            except RpcError:
                pass
        while self._status is None:
            self._messages.clear()
            try:
                yield from self._read()
            except RpcError:
                pass
        return self._status

    # ------------------------------------------------------------------ decisions

    def _frame(self, message: Any, compress: bool) -> bytes:
        """Serialize, compress and length-prefix one request; RpcError ends the call.

        A request the serializer rejects (a message of the wrong type, say) ends the call
        INTERNAL, as grpcio's "Exception serializing request!" does.
        """
        try:
            payload = self._serializer(message)
        except Exception as exc:
            self._finish(Status(StatusCode.INTERNAL, f"Exception serializing request: {exc!r}"))
            raise self._rpc_error() from exc
        try:
            return frame_message(payload, self._encoding, self._max_send, compress)
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

    def _on_response_head(self, stream: SessionStream, headers: Any) -> bool:
        """Parse the response head: initial metadata, or a Trailers-Only status. True when the
        attempt failed and the retry policy tries again (the call then has no stream)."""
        try:
            # The head ended the stream (Trailers-Only) if the stream is over with no trailers.
            head = self._settings.responses.head(
                headers, end_stream=stream.remote_ended and stream.trailers is None
            )
        except CodecError as exc:
            failed = self._status_from(exc)
            if self._retry_uncommitted(failed):
                # Not a gRPC server's answer (a proxy's HTTP 502, say): no response headers came
                # from the server, so the attempt is not committed (grpc-core retries these too).
                return True
            self._finish(failed, CANCEL)
            return False
        retry = self._retry
        if retry is not None and not retry.committed:
            status = head.trailers_only
            if (
                status is not None
                and status.code != StatusCode.OK
                and self._status is None
                and retry.retry_delay(status.code, pushback_of(status.metadata)) is not None
            ):
                self._new_attempt()
                return True
            retry.commit()  # response headers (or the status): never retried after this
        self._response_encoding = head.encoding
        if head.trailers_only is not None:
            self._initial_metadata = Metadata()
            self._finish(head.trailers_only)
        else:
            self._initial_metadata = head.metadata
        return False

    def _retry_uncommitted(self, status: Status) -> bool:
        """Start the next attempt if the call is not committed and ``status`` may be retried."""
        retry = self._retry
        if (
            retry is None
            or retry.committed
            or self._status is not None
            or status.code == StatusCode.OK
            or retry.retry_delay(status.code, pushback_of(status.metadata)) is None
        ):
            return False
        self._new_attempt()
        return True

    def _new_attempt(self) -> None:
        """The current attempt failed and another follows: forget its stream."""
        stream = self._stream
        self._stream = None
        if stream is not None and not (stream.local_closed and stream.remote_ended):
            stream.reset(CANCEL)
        if self._kind.request_streaming:
            self._done_writing = self._requests_ended  # the next stream still needs its end
        else:
            self._requests_started = False  # the request goes out again on the next stream

    def _retry_pause(self, exc: Exception) -> Optional[float]:
        """After a failure waiting for the head: the pause before the next attempt (0: its
        opener waits the retry policy's backoff), or None (and the call ends).

        A stream the server never saw (REFUSED_STREAM, or above a GOAWAY's last-stream-id) is
        sent again whatever the policy (a transparent retry), if the call's requests can be
        replayed (a request stream: while it is kept); it counts as no attempt. Any other
        failure is an attempt the retry policy may repeat.
        """
        refused = (
            isinstance(exc, StreamResetError) and exc.remote and exc.error_code == REFUSED_STREAM
        ) or (isinstance(exc, ConnectionClosedError) and exc.refused)
        retry = self._retry
        if (
            refused
            and self._status is None
            and (not self._kind.request_streaming or (retry is not None and not retry.committed))
            and self._retries < MAX_TRANSPARENT_RETRIES
        ):
            pause = RETRY_PAUSE * float(2**self._retries)
            self._retries += 1
            self._stream = None
            self._requests_started = self._kind.request_streaming  # unary: sent again
            if self._kind.request_streaming:
                self._done_writing = self._requests_ended
            return pause
        if retry is not None and self._status is None:
            status = self._status_from(exc)
            if retry.retry_delay(status.code, None) is not None:
                self._new_attempt()
                return 0.0
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
                    self._max_receive,
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
            self._finish(self._settings.responses.trailers(stream.trailers))

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

    # ------------------------------------------------------------------ ending

    def _finish(self, status: Status, reset_code: Optional[int] = None) -> None:
        """Record the final status once, tell ``when_finished``, and stop the stream."""
        if self._status is not None:
            return
        self._status = status
        retry = self._retry
        if retry is not None:
            retry.call_ended(status.code)
            if self._attempts:
                for attempt in self._attempts:
                    attempt.reset(CANCEL)
                self._attempts = []
            replaying = self._replaying
            if replaying is not None and replaying is not self._stream:
                replaying.reset(CANCEL)  # a hedge still being sent the kept requests
        listener = self.when_finished
        if listener is not None:
            listener()
        stream = self._stream
        if stream is not None:
            if reset_code is not None:
                stream.reset(reset_code)
            elif not stream.local_closed:
                # The server has answered while we were still sending: stop, without error.
                stream.reset(NO_ERROR)

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
