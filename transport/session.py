"""Streams over one connection, for both drivers: the part of the transport above the core.

``ConnectionCore`` turns bytes into HTTP/2 events; a ``Session`` turns those events into stream
state (the inbox of each stream, its headers and trailers, whether it ended or failed), decides
when a stream is finished and forgotten, hands flow-control credit back as data is consumed,
applies GOAWAY and sticky connection errors, and runs the keepalive policies. It never waits and
never touches a socket: the asyncio driver (``aio.py``) and the blocking driver (``blocking.py``)
implement ``Driver`` to wake whoever waits and to move bytes. So a protocol decision lives here
once, for both.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable, Optional, Protocol

from codec.http2_errors import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    REFUSED_STREAM,
    SETTINGS_TIMEOUT,
)

from .core import Bytes, ConnectionCore
from .errors import ConnectionClosedError, LocalProtocolError, RemoteProtocolError, TransportError
from .errors import StreamResetError as StreamResetError
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    Headers,
    PingAcknowledged,
    PingReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    StreamWritable,
    TrailersReceived,
)
from .keepalive import KeepaliveAction, KeepaliveTimer, PingPolicy
from .lifetime import ConnectionLifetime, LifetimeAction
from .options import ConnectionOptions
from .tls import TlsInfo

log = logging.getLogger(__name__)

#: The debug data of the GOAWAY that ends a connection whose handshake timed out.
HANDSHAKE_TIMEOUT_MESSAGE = b"did not receive HTTP/2 settings before handshake timeout"


class Driver(Protocol):
    """What a session asks of the driver that owns the socket and the waiting."""

    def new_stream(self, stream_id: int, request_headers: Optional[Headers]) -> SessionStream: ...

    def wake_read(self, stream: SessionStream) -> None: ...

    def wake_write(self, stream: SessionStream) -> None: ...

    def wake_connection(self) -> None:
        """Connection-level waiters: SETTINGS arrived, GOAWAY, or a failure: everyone looks."""

    def slot_freed(self) -> None:
        """A stream finished: one caller waiting for a stream slot may go ahead."""

    def request_received(self, stream: SessionStream) -> None: ...

    def schedule_flush(self, now: bool = False) -> None:
        """Send ``core.data_to_send()`` soon (coalescing is the driver's business).

        ``now``: the only open stream just finished sending, so nothing else is coming to
        coalesce with, and the peer is waiting for exactly this: write without delay.
        """

    def close_transport(self) -> None:
        """Flush what is queued, then close the socket."""

    def abort_transport(self) -> None:
        """Close the socket now, dropping anything unsent."""

    def rearm_timer(self) -> None:
        """``session.timer_deadline()`` changed: reschedule the timer."""

    def now(self) -> float: ...


class SessionStream:
    """One stream of a ``Session``: its inbox, header blocks, trailers, whether it ended or failed.

    The drivers subclass it with waiting ``read``/``send_data``. h2 keeps its own per-stream state
    machine below this record (``h2.stream.H2Stream``, whose states are ``h2.stream.StreamState``).
    """

    __slots__ = (
        "_ended",
        "_error",
        "_inbox",
        "_session",
        "local_closed",
        "on_failed",
        "on_news",
        "read_waiter",
        "request_headers",
        "response_headers",
        "stream_id",
        "trailers",
        "write_waiter",
    )

    def __init__(
        self, session: Session, stream_id: int, request_headers: Optional[Headers] = None
    ) -> None:
        self._session = session
        self.stream_id = stream_id
        #: Server role: the request header block that opened the stream.
        self.request_headers = request_headers
        #: Client role: the response header block (may be a Trailers-Only block).
        self.response_headers: Optional[Headers] = None
        #: The trailing header block, if one came.
        self.trailers: Optional[Headers] = None
        #: True once we have ended our side (END_STREAM or trailers queued) or reset the stream.
        self.local_closed = False
        #: Called once if the stream fails from outside (peer reset, GOAWAY, lost connection), so
        #: an owner that is not reading (a server handler busy elsewhere) still learns of it.
        self.on_failed: Optional[Callable[[], None]] = None
        #: Called (by a driver that supports it, under the connection's lock) whenever the
        #: stream has news for its reader: headers, data, its end, or its failure. For an owner
        #: that does not wait on the stream but is told (the blocking API's futures).
        self.on_news: Optional[Callable[[], None]] = None
        #: Opaque slots for the driver's waiting primitives.
        self.read_waiter: object = None
        self.write_waiter: object = None
        self._inbox: deque[tuple[bytes, int]] = deque()
        self._ended = False
        self._error: Optional[TransportError] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stream_id}>"

    @property
    def remote_ended(self) -> bool:
        """The peer has half-closed: everything it will send is in the inbox."""
        return self._ended

    @property
    def error(self) -> Optional[TransportError]:
        """Why the stream failed (a reset or the connection's sticky error), if it did."""
        return None if self._ended else self._error

    # ---------------------------------------------------------------- non-waiting steps

    def _take(self) -> Optional[bytes]:
        """The next body chunk (handing its window credit back), ``b""`` at the end of the
        stream, or None when the caller must wait; raises the stream's error."""
        inbox = self._inbox
        if inbox:
            if self._error is not None and not self._ended:
                raise self._error.fresh()
            data, flow = inbox.popleft()
            self._session._consumed(self.stream_id, flow)
            return data
        if self._ended:
            return b""
        if self._error is not None:
            raise self._error.fresh()
        return None

    def _take_response_headers(self) -> Optional[Headers]:
        """Client role: the response head, or None when the caller must wait."""
        if self.response_headers is not None:
            return self.response_headers
        if self._error is not None:
            raise self._error.fresh()
        if self._ended:
            raise LocalProtocolError("stream ended without response headers")
        return None

    def _queue_data(self, data: Bytes, end_stream: bool) -> None:
        self._check_writable()
        session = self._session
        session.core.send_data(self.stream_id, data, end_stream=end_stream)
        session.sent_data = True
        if end_stream:
            self._local_close()
        self._flush(end_stream)

    def _is_only_stream(self) -> bool:
        """No other stream is open on the connection: nothing else will join our next write."""
        streams = self._session.streams
        return len(streams) == (self.stream_id in streams)

    def _flush(self, ended: bool) -> None:
        """Have the queued frames written; at once if this ended the only open stream."""
        self._session.driver.schedule_flush(ended and self._is_only_stream())

    def _write_blocked(self) -> bool:
        """True while the sender must wait: too much queued, or the socket buffer is full."""
        if self._error is not None and not self._ended:
            raise self._error.fresh()
        session = self._session
        return session.paused or session.core.pending_bytes(self.stream_id) > session.high_water

    def _drained(self) -> bool:
        if self._error is not None and not self._ended:
            raise self._error.fresh()
        session = self._session
        return not session.paused and not session.core.pending_bytes(self.stream_id)

    # ---------------------------------------------------------------- commands (no waiting)

    def send_headers(self, headers: Headers, *, end_stream: bool = False) -> None:
        """Send a header block at once (headers never wait for flow control)."""
        self._check_writable()
        session = self._session
        session.core.send_headers(self.stream_id, headers, end_stream=end_stream)
        session.sent_data = True
        if end_stream:
            self._local_close()
        self._flush(end_stream)

    def respond(self, headers: Headers, body: bytes) -> None:
        """Send a whole response at once: a header block, then ``body`` ending the stream.

        For short answers that are not gRPC (a plain HTTP error with a text body): the body is
        queued without waiting, since it is too small to need backpressure.
        """
        self._check_writable()
        session = self._session
        session.core.send_headers(self.stream_id, headers)
        self._queue_data(body, True)

    def end(self) -> None:
        """Half-close our side after the queued data (an empty DATA frame with END_STREAM)."""
        if self.local_closed:
            return
        self._check_writable()
        self._session.core.end_stream(self.stream_id)
        self._local_close()
        self._flush(True)

    def send_trailers(self, headers: Headers) -> None:
        """Queue trailers: they end the stream after the queued data."""
        self._check_writable()
        self._session.core.send_trailers(self.stream_id, headers)
        self._local_close()
        self._flush(True)

    def reset(self, error_code: int = CANCEL) -> None:
        """Send RST_STREAM (unless the stream is already finished) and fail local waiters."""
        session = self._session
        if self._error is None and not (self._ended and self.local_closed):
            session.core.reset_stream(self.stream_id, error_code)
            session.driver.schedule_flush()
        if self._error is None:
            self._error = StreamResetError(error_code, remote=False)
        self.local_closed = True
        self._wake_all()
        session._release(self)

    # ---------------------------------------------------------------- internals

    def _check_writable(self) -> None:
        if self._error is not None:
            raise self._error.fresh()
        if self.local_closed:
            raise LocalProtocolError(f"stream {self.stream_id} is closed for sending")

    def _local_close(self) -> None:
        self.local_closed = True
        if self._ended or not self._session.core.client_side:
            # Server role: once our trailers are queued the call is over for us; the core resets
            # a request side the client left open, as gRPC servers do.
            self._session._release(self)

    def _wake_all(self) -> None:
        driver = self._session.driver
        driver.wake_read(self)
        driver.wake_write(self)

    def _fail(self, error: TransportError) -> None:
        """The stream broke from outside: record why, wake waiters, tell the owner."""
        if self._error is None:
            self._error = error
        self._wake_all()
        callback = self.on_failed
        if callback is not None:
            self.on_failed = None
            callback()


class Session:
    """The streams of one connection and everything that happens to them."""

    def __init__(
        self,
        driver: Driver,
        *,
        client_side: bool,
        options: Optional[ConnectionOptions] = None,
        accept_requests: bool = True,
    ) -> None:
        self.driver = driver
        self.core = core = ConnectionCore(client_side=client_side, options=options)
        self.high_water = core.options.send_buffer_high_water
        self.streams: dict[int, SessionStream] = {}
        #: The sticky error: once set, every stream operation on this connection raises it.
        self.error: Optional[ConnectionClosedError] = None
        #: The socket's send buffer is full (the driver says so): senders wait.
        self.paused = False
        #: Headers or data went out since the last PING we received (ping-strike policy).
        self.sent_data = False
        #: The peer sent GOAWAY: no new streams may be opened here.
        self.goaway_received = False
        #: The GOAWAY's error code and debug data (e.g. b"too_many_pings"), once received.
        self.goaway_error_code: Optional[int] = None
        self.goaway_debug_data = b""
        self.closing_when_idle = False
        self.peer = ""
        #: What the TLS handshake established (None for cleartext), set by connection_made.
        self.tls: Optional[TlsInfo] = None
        self._accept_requests = accept_requests
        now = driver.now()
        self.keepalive = KeepaliveTimer(core.options, now)
        options = core.options
        #: Servers: the client must finish the HTTP/2 handshake by then.
        self._handshake_deadline = None if client_side else now + options.handshake_timeout
        #: max_connection_idle / _age / _age_grace: when to drain and close (lifetime.py).
        self.lifetime = ConnectionLifetime(options, now)
        #: A lifetime drain's reason while it waits for the last stream to close the connection.
        self._close_drained: Optional[str] = None
        self._new_requests: list[SessionStream] = []
        self._ping_policy = None if client_side else PingPolicy(core.options)

    def __repr__(self) -> str:
        role = "client" if self.core.client_side else "server"
        return f"<Session {role} peer={self.peer!r} streams={len(self.streams)}>"

    # ---------------------------------------------------------------- state

    @property
    def is_usable(self) -> bool:
        """True while new streams may be opened on this connection."""
        return (
            self.error is None
            and not self.goaway_received
            and not self.core.closed
            and not self.closing_when_idle
        )

    @property
    def has_free_slot(self) -> bool:
        """Client role: a new stream stays within the peer's SETTINGS_MAX_CONCURRENT_STREAMS."""
        return len(self.streams) < self.core.max_outbound_streams

    @property
    def ready(self) -> bool:
        """The peer's first SETTINGS arrived: it speaks HTTP/2 and its limits are known."""
        return self.core.settings_received

    def raise_if_unusable(self) -> None:
        if self.error is not None:
            raise self.error.fresh()
        if self.goaway_received or self.core.closed or self.closing_when_idle:
            raise ConnectionClosedError("connection is draining (GOAWAY): open a new one")

    # ---------------------------------------------------------------- socket events

    def connection_made(self, peer: object, tls: Optional[TlsInfo], local: object = None) -> bool:
        """The socket is up; False (and the connection fails) if TLS did not agree on h2."""
        self.core.socket_opened(local, peer)
        if isinstance(peer, tuple):
            host = peer[0]
            self.peer = f"ipv6:[{host}]:{peer[1]}" if ":" in host else f"ipv4:{host}:{peer[1]}"
        else:
            self.peer = f"unix:{peer or ''}"
        self.tls = tls
        if tls is not None and tls.alpn != "h2":
            # gRPC over TLS is HTTP/2 negotiated by ALPN (RFC 9113 §3.2); anything else is
            # refused before a single frame is exchanged.
            self.fail(ConnectionClosedError("TLS peer did not negotiate ALPN protocol h2"))
            return False
        self.core.initiate()
        self.driver.schedule_flush()
        return True

    def data_received(self, data: Bytes) -> None:
        """Bytes from the socket: update every stream they concern and wake its waiters."""
        driver = self.driver
        self.keepalive.heard_from_peer(driver.now())
        was_ready = self.core.settings_received
        was_draining = self.core.draining
        try:
            events = self.core.receive_data(data, driver.now())
        except RemoteProtocolError as exc:
            log.debug("closing %r: %s", self, exc)
            self.fail(ConnectionClosedError(f"protocol error from peer: {exc}"))
            driver.close_transport()  # flushes the GOAWAY h2 queued first
            return
        if events:
            self._dispatch(events)
        if not was_ready and self.core.settings_received:
            self._handshake_deadline = None
            driver.wake_connection()
        if was_draining and not self.core.draining:  # the shutdown PING's ACK: final GOAWAY
            driver.rearm_timer()
            driver.wake_connection()
            self._close_if_drained()
        new = self._new_requests
        if new:
            # Streams opened and reset in the same read never start a handler (rapid reset).
            self._new_requests = []
            for stream in new:
                if stream._error is None:
                    driver.request_received(stream)
        driver.schedule_flush()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.core.socket_closed()
        reason = f"connection lost: {exc}" if exc else "connection closed"
        self.fail(ConnectionClosedError(reason))

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        driver = self.driver
        for stream in list(self.streams.values()):
            driver.wake_write(stream)

    # ---------------------------------------------------------------- commands

    def open_stream(self, headers: Headers, *, end_stream: bool = False) -> SessionStream:
        """Client role: start a request now (the caller waited for ``has_free_slot``)."""
        self.raise_if_unusable()
        core = self.core
        stream_id = core.next_stream_id()
        stream = self.driver.new_stream(stream_id, None)
        self.streams[stream_id] = stream
        self.lifetime.busy()
        core.send_headers(stream_id, headers, end_stream=end_stream)
        if end_stream:
            stream.local_closed = True
        self.driver.schedule_flush()
        return stream

    def close(self, error_code: int = NO_ERROR, message: str = "") -> None:
        """Send a final GOAWAY and close the socket once it is flushed."""
        self.core.close(error_code, message.encode() if message else None)
        self.driver.close_transport()

    def close_when_idle(self) -> None:
        """Close once the last open stream finishes (at once if there is none); no new ones."""
        self.closing_when_idle = True
        if not self.streams:
            self.close()

    def goaway(self, error_code: int = NO_ERROR, message: str = "") -> None:
        """Send a graceful GOAWAY: streams already open go on; new ones are refused."""
        self.core.goaway(error_code, message.encode())
        self.driver.schedule_flush()

    def shut_down(self) -> None:
        """Begin a graceful shutdown (``ConnectionCore.shut_down``): GOAWAY(2^31-1) and a PING
        now, the final GOAWAY once the PING is answered or ``shutdown_ping_timeout`` has passed.
        ``draining`` is True until then; connection waiters are woken when it ends."""
        core = self.core
        core.shut_down(self.driver.now(), core.options.shutdown_ping_timeout)
        self.driver.schedule_flush()
        self.driver.rearm_timer()

    @property
    def draining(self) -> bool:
        """A graceful shutdown waits for the peer to answer its PING; it may still open streams."""
        return self.error is None and self.core.draining

    def fail(self, error: ConnectionClosedError) -> None:
        """Make ``error`` the connection's sticky error and raise it in every pending stream."""
        if self.error is None:
            self.error = error
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream._fail(self.error)
        self.driver.wake_connection()

    # ---------------------------------------------------------------- keepalive

    def timer_deadline(self) -> Optional[float]:
        """When ``on_timer`` must run next: keepalive, the handshake, the idle timeout and a
        graceful shutdown's wait for the ACK of its PING."""
        if self.error is not None:
            return None
        deadlines = [
            self.keepalive.deadline(),
            self._handshake_deadline,
            self.core.shutdown_deadline,
        ]
        if self.lifetime.enabled:
            deadlines.append(self.lifetime.deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def on_timer(self) -> None:
        """The driver's timer fired: the shutdown PING's, handshake and idle timeouts,
        keepalive PING or death."""
        if self.error is not None:
            return
        driver = self.driver
        now = driver.now()
        if self.core.draining:
            self.core.on_timer(now)
            if not self.core.draining:  # the shutdown PING went unanswered: final GOAWAY sent
                driver.schedule_flush()
                driver.wake_connection()
                if self._close_if_drained():
                    return
        if self._handshake_deadline is not None and now >= self._handshake_deadline:
            if not self.core.settings_received:
                # A silent or dripping peer. Say why in a GOAWAY, as grpc-core does (it says
                # INTERNAL_ERROR; SETTINGS_TIMEOUT is RFC 9113's code for SETTINGS that went
                # unacknowledged, ours among them), then close without waiting for more.
                log.info("%r did not complete the HTTP/2 handshake in time: closing", self)
                self.fail(ConnectionClosedError("HTTP/2 handshake timed out"))
                self.core.close(SETTINGS_TIMEOUT, HANDSHAKE_TIMEOUT_MESSAGE)
                driver.close_transport()
                return
            self._handshake_deadline = None
        if self.lifetime.enabled and self._lifetime_timer(now):
            return
        action = self.keepalive.on_timer(now, len(self.streams))
        if action is KeepaliveAction.SEND_PING:
            self.core.send_ping(self.keepalive.ping_payload(now))
            driver.schedule_flush()
        elif action is KeepaliveAction.CONNECTION_DEAD:
            log.info("%r did not answer a keepalive PING in time: closing", self)
            self.fail(ConnectionClosedError("keepalive watchdog timeout: peer not responding"))
            driver.abort_transport()
            return
        driver.rearm_timer()

    # ---------------------------------------------------------------- connection lifetime

    def _lifetime_timer(self, now: float) -> bool:
        """Carry out what max_connection_idle/age/grace decide; True if the connection ended."""
        action = self.lifetime.on_timer(now)
        if action is LifetimeAction.NOTHING:
            return False
        if action is LifetimeAction.CLOSE:
            log.info("%r: max_connection_age_grace is over: closing, cancelling its calls", self)
            # The final GOAWAY went out with the drain; streams still open end with the socket
            # (the client sees UNAVAILABLE, the handlers are cancelled), as in grpc-go.
            self.fail(ConnectionClosedError("max_connection_age_grace passed: connection closed"))
            self.core.finish()
            self.driver.close_transport()
            return True
        reason = action.value
        log.info("%r: %s: draining (GOAWAY)", self, reason)
        core = self.core
        core.shut_down(now, core.options.shutdown_ping_timeout, reason.encode())
        self._close_drained = reason
        self.driver.schedule_flush()
        self.driver.wake_connection()
        return self._close_if_drained()

    def _close_if_drained(self) -> bool:
        """After a lifetime drain's final GOAWAY, close once no stream is open; True if closed."""
        if self._close_drained is None or self.streams or self.core.draining:
            return False
        if self.error is None:
            self.core.finish()
            self.driver.close_transport()
            self.fail(ConnectionClosedError(f"connection drained ({self._close_drained})"))
        return True

    # ---------------------------------------------------------------- internals

    def _dispatch(self, events: list[Event]) -> None:
        streams = self.streams
        driver = self.driver
        for ev in events:
            if isinstance(ev, DataReceived):
                stream = streams.get(ev.stream_id)
                if stream is None or stream._error is not None:
                    # Nobody will read it: hand the window back so other streams don't starve.
                    self.core.acknowledge_received_data(ev.stream_id, ev.flow_controlled_length)
                    continue
                stream._inbox.append((ev.data, ev.flow_controlled_length))
                driver.wake_read(stream)
            elif isinstance(ev, StreamEnded):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._ended = True
                    stream._wake_all()
                    if stream.local_closed:
                        self._release(stream)
            elif isinstance(ev, RequestReceived):
                stream = driver.new_stream(ev.stream_id, ev.headers)
                streams[ev.stream_id] = stream
                self.lifetime.busy()
                if not self._accept_requests:
                    stream.reset(REFUSED_STREAM)
                else:
                    self._new_requests.append(stream)  # started once the read is processed
            elif isinstance(ev, ResponseReceived):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream.response_headers = ev.headers
                    driver.wake_read(stream)
            elif isinstance(ev, TrailersReceived):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream.trailers = ev.headers
                    driver.wake_read(stream)
            elif isinstance(ev, StreamWritable):
                stream = streams.get(ev.stream_id)
                if (
                    stream is not None
                    and not self.paused
                    and self.core.pending_bytes(ev.stream_id) <= self.high_water
                ):
                    driver.wake_write(stream)
            elif isinstance(ev, StreamReset):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._fail(StreamResetError(ev.error_code, remote=ev.remote))
                    self._release(stream)
            elif isinstance(ev, ConnectionTerminated):
                self._on_goaway(ev)
            elif isinstance(ev, PingReceived):
                self._on_ping()
            elif isinstance(ev, PingAcknowledged):
                self.keepalive.on_ping_ack(ev.data, driver.now())
                driver.rearm_timer()  # the watchdog is off: back to the idle interval

    def _on_ping(self) -> None:
        policy = self._ping_policy
        if policy is None:
            return
        if self.sent_data:
            self.sent_data = False
            policy.data_sent()
        if policy.ping_received(self.driver.now(), len(self.streams)):
            log.info("%r pings too often: GOAWAY(ENHANCE_YOUR_CALM, too_many_pings)", self)
            self.close(ENHANCE_YOUR_CALM, "too_many_pings")

    def _on_goaway(self, ev: ConnectionTerminated) -> None:
        self.goaway_received = True
        self.goaway_error_code = ev.error_code
        self.goaway_debug_data = ev.additional_data
        detail = ev.additional_data.decode("utf-8", "replace")
        refused = ConnectionClosedError(
            f"GOAWAY (error code {ev.error_code}{', ' + detail if detail else ''}): "
            "stream not processed by the peer",
            error_code=ev.error_code,
            refused=True,
        )
        # Streams the peer never saw are safe to retry elsewhere; the rest may still finish.
        ours = 1 if self.core.client_side else 0
        for stream in list(self.streams.values()):
            if stream.stream_id > ev.last_stream_id and stream.stream_id % 2 == ours:
                stream._fail(refused)
                self._release(stream)
        self.driver.wake_connection()

    def _consumed(self, stream_id: int, flow: int) -> None:
        if flow:  # (0: credited already, when its finished stream was released)
            self.core.acknowledge_received_data(stream_id, flow)
            self.driver.schedule_flush()

    def _release(self, stream: SessionStream) -> None:
        """Forget a finished stream; give back the connection window its unread bytes hold.

        A failed stream's bytes will never be read: they are dropped. An ended stream's bytes
        are still the application's to read, but the stream is over on the wire, and the peer
        must not be kept from other streams by bytes an application may never read (a caller
        that stops iterating a finished stream): they stop counting against the connection
        window now, and reading them later gives no credit twice.
        """
        if self.streams.pop(stream.stream_id, None) is None:
            return
        inbox = stream._inbox
        if inbox:
            unread = sum(flow for _, flow in inbox)
            if stream._ended:
                stream._inbox = deque((data, 0) for data, _ in inbox)
            else:
                inbox.clear()
            if unread:
                self.core.acknowledge_received_data(stream.stream_id, unread)
                self.driver.schedule_flush()
        self.driver.slot_freed()
        if not self.streams:
            if self.lifetime.enabled:
                self.lifetime.idle(self.driver.now())
                self.driver.rearm_timer()
                if self._close_if_drained():
                    return
            if self.closing_when_idle:
                self.close()


class SessionView:
    """Read-only connection facts both drivers expose, all taken from their ``session``."""

    session: Session

    @property
    def peer(self) -> str:
        return self.session.peer

    @property
    def is_usable(self) -> bool:
        """True while new streams may be opened on this connection."""
        return self.session.is_usable

    @property
    def active_streams(self) -> int:
        return len(self.session.streams)

    @property
    def goaway_received(self) -> bool:
        return self.session.goaway_received

    @property
    def goaway_error_code(self) -> Optional[int]:
        return self.session.goaway_error_code

    @property
    def goaway_debug_data(self) -> bytes:
        return self.session.goaway_debug_data
