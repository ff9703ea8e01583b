"""The asyncio driver: owns the socket and carries out what the connection core decides.

One ``asyncio.Protocol`` per connection is its single reader (``data_received``) and single writer
(``_flush``): streams only queue into the core, and the bytes the core produced during one loop
iteration leave in one ``transport.write`` (coalesced writes). Senders wait while their stream has
more than ``send_buffer_high_water`` bytes queued or while the socket buffer is full, and readers
give window credit back only as they take data: backpressure both ways.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections import deque
from typing import Callable, Optional

import h2.errors

from .address import Address, bind_listening_socket
from .core import Bytes, ConnectionCore
from .errors import (
    ConnectionClosedError,
    LocalProtocolError,
    RemoteProtocolError,
    StreamResetError,
)
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
from .options import ConnectionOptions

log = logging.getLogger(__name__)

CANCEL = int(h2.errors.ErrorCodes.CANCEL)
ENHANCE_YOUR_CALM = int(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
NO_ERROR = int(h2.errors.ErrorCodes.NO_ERROR)


class Stream:
    """One HTTP/2 stream as the application sees it: await headers and data, send yours.

    Exactly one task reads a stream and one task writes it (they may be the same task).
    """

    __slots__ = (
        "_conn",
        "_ended",
        "_error",
        "_inbox",
        "_read_waiter",
        "_write_waiter",
        "local_closed",
        "on_failed",
        "request_headers",
        "response_headers",
        "stream_id",
        "trailers",
    )

    def __init__(
        self, conn: AsyncConnection, stream_id: int, request_headers: Optional[Headers] = None
    ) -> None:
        self._conn = conn
        self.stream_id = stream_id
        #: Server role: the request header block that opened the stream.
        self.request_headers = request_headers
        #: Client role: the response header block (may be a Trailers-Only block).
        self.response_headers: Optional[Headers] = None
        #: The trailing header block, if one came.
        self.trailers: Optional[Headers] = None
        #: True once we have ended our side (END_STREAM or trailers queued) or reset the stream.
        self.local_closed = False
        self._inbox: deque[tuple[bytes, int]] = deque()
        self._ended = False
        self._error: Optional[Exception] = None
        self._read_waiter: Optional[asyncio.Future[None]] = None
        self._write_waiter: Optional[asyncio.Future[None]] = None
        #: Called once if the stream fails from outside (peer reset, GOAWAY, lost connection), so
        #: an owner that is not reading (a server handler busy elsewhere) still learns of it.
        self.on_failed: Optional[Callable[[], None]] = None

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id} on {self._conn!r}>"

    @property
    def connection(self) -> AsyncConnection:
        return self._conn

    @property
    def remote_ended(self) -> bool:
        """The peer has half-closed: everything it will send is in the inbox."""
        return self._ended

    @property
    def error(self) -> Optional[Exception]:
        """Why the stream failed (a reset or the connection's sticky error), if it did."""
        return None if self._ended else self._error

    # ---------------------------------------------------------------- reading

    async def receive_response_headers(self) -> Headers:
        """Client role: wait for the response header block."""
        while self.response_headers is None:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise LocalProtocolError("stream ended without response headers")
            await self._wait_readable()
        return self.response_headers

    async def read(self) -> bytes:
        """Return the next chunk of body bytes, or ``b""`` once the peer has ended the stream.

        Taking a chunk is what hands its window credit back to the peer.
        """
        inbox = self._inbox
        while not inbox:
            if self._ended:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait_readable()
        if self._error is not None and not self._ended:
            raise self._error
        data, flow = inbox.popleft()
        self._conn._consumed(self.stream_id, flow)
        return data

    def read_nowait(self) -> Optional[bytes]:
        """Like ``read`` but never waits: ``None`` if nothing is buffered yet."""
        if self._inbox:
            if self._error is not None and not self._ended:
                raise self._error
            data, flow = self._inbox.popleft()
            self._conn._consumed(self.stream_id, flow)
            return data
        if self._ended:
            return b""
        if self._error is not None:
            raise self._error
        return None

    async def wait_ended(self) -> None:
        """Wait until the peer ends the stream or it fails (without consuming data)."""
        while not self._ended and self._error is None:
            await self._wait_readable()

    async def _wait_readable(self) -> None:
        # One reader is the norm and awaits the future itself; a second concurrent waiter shares
        # it through a shield. Each re-checks its condition on wake-up.
        waiter = self._read_waiter
        if waiter is None or waiter.done():
            waiter = self._read_waiter = self._conn._loop.create_future()
            await waiter
        else:
            await asyncio.shield(waiter)

    # ---------------------------------------------------------------- writing

    def send_headers(self, headers: Headers, *, end_stream: bool = False) -> None:
        """Send a header block at once (headers never wait for flow control)."""
        self._check_writable()
        self._conn._core.send_headers(self.stream_id, headers, end_stream=end_stream)
        self._conn._sent_data = True
        if end_stream:
            self._local_close()
        self._conn._schedule_flush()

    async def send_data(self, data: Bytes, *, end_stream: bool = False) -> None:
        """Queue body bytes; waits while too much of this stream is queued (backpressure)."""
        self._check_writable()
        conn = self._conn
        conn._core.send_data(self.stream_id, data, end_stream=end_stream)
        conn._sent_data = True
        if end_stream:
            self._local_close()
        conn._schedule_flush()
        if conn._paused or conn._core.pending_bytes(self.stream_id) > conn._high_water:
            await self._wait_writable()

    def end(self) -> None:
        """Half-close our side after the queued data (an empty DATA frame with END_STREAM)."""
        if self.local_closed:
            return
        self._check_writable()
        self._conn._core.end_stream(self.stream_id)
        self._local_close()
        self._conn._schedule_flush()

    def send_trailers(self, headers: Headers) -> None:
        """Queue trailers: they end the stream after the queued data."""
        self._check_writable()
        self._conn._core.send_trailers(self.stream_id, headers)
        self._local_close()
        self._conn._schedule_flush()

    def reset(self, error_code: int = CANCEL) -> None:
        """Send RST_STREAM (unless the stream is already finished) and fail local waiters."""
        conn = self._conn
        if self._error is None and not (self._ended and self.local_closed):
            conn._core.reset_stream(self.stream_id, error_code)
            conn._schedule_flush()
        if self._error is None:
            self._error = StreamResetError(error_code, remote=False)
        self.local_closed = True
        self._wake_all()
        conn._release(self)

    async def drain(self) -> None:
        """Wait until every queued byte of this stream has been handed to the socket."""
        conn = self._conn
        while conn._core.pending_bytes(self.stream_id) or conn._paused:
            if self._error is not None:
                raise self._error
            await self._wait_writable()

    async def _wait_writable(self) -> None:
        waiter = self._conn._loop.create_future()
        self._write_waiter = waiter
        try:
            await waiter
        finally:
            self._write_waiter = None
        if self._error is not None and not self._ended:
            raise self._error

    def _check_writable(self) -> None:
        if self._error is not None:
            raise self._error
        if self.local_closed:
            raise LocalProtocolError(f"stream {self.stream_id} is closed for sending")

    def _local_close(self) -> None:
        self.local_closed = True
        if self._ended or not self._conn._core.client_side:
            # Server role: once our trailers are queued the call is over for us; the core resets
            # a request side the client left open, as gRPC servers do.
            self._conn._release(self)

    # ---------------------------------------------------------------- driver side

    def _wake_read(self) -> None:
        w = self._read_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake_write(self) -> None:
        w = self._write_waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _wake_all(self) -> None:
        self._wake_read()
        self._wake_write()

    def _fail(self, error: Exception) -> None:
        """The stream broke from outside: record why, wake waiters, tell the owner."""
        if self._error is None:
            self._error = error
        self._wake_all()
        callback = self.on_failed
        if callback is not None:
            self.on_failed = None
            callback()


RequestHandler = Callable[[Stream], None]


class AsyncConnection(asyncio.Protocol):
    """An HTTP/2 connection over an asyncio transport, for either role."""

    def __init__(
        self,
        *,
        client_side: bool,
        options: Optional[ConnectionOptions] = None,
        on_request: Optional[RequestHandler] = None,
        on_closed: Optional[Callable[[AsyncConnection], None]] = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._core = ConnectionCore(client_side=client_side, options=options)
        self._high_water = self._core.options.send_buffer_high_water
        self._on_request = on_request
        self._on_closed = on_closed
        self._transport: Optional[asyncio.Transport] = None
        self._streams: dict[int, Stream] = {}
        self._error: Optional[ConnectionClosedError] = None
        self._flush_scheduled = False
        self._paused = False
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._closed_waiter: asyncio.Future[None] = self._loop.create_future()
        self.peer: str = ""
        #: Set when the peer sent GOAWAY: no new streams may be opened here.
        self.goaway_received = False
        #: The GOAWAY's error code and debug data (e.g. b"too_many_pings"), once received.
        self.goaway_error_code: Optional[int] = None
        self.goaway_debug_data = b""
        options = self._core.options
        self._keepalive = KeepaliveTimer(options, self._loop.time())
        self._keepalive_handle: Optional[asyncio.TimerHandle] = None
        self._ping_policy = None if client_side else PingPolicy(options)
        self._sent_data = False  # headers or data went out since the last PING we received
        self._close_when_idle = False
        self._ready_waiter: Optional[asyncio.Future[None]] = None

    def __repr__(self) -> str:
        role = "client" if self._core.client_side else "server"
        return f"<AsyncConnection {role} peer={self.peer!r} streams={len(self._streams)}>"

    # ---------------------------------------------------------------- public

    @property
    def is_usable(self) -> bool:
        """True while new streams may be opened on this connection."""
        return (
            self._error is None
            and not self.goaway_received
            and not self._core.closed
            and not self._close_when_idle
        )

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def open_stream(self, headers: Headers, *, end_stream: bool = False) -> Stream:
        """Client role: start a request, waiting for a free slot under the peer's stream limit."""
        core = self._core
        while len(self._streams) >= core.max_outbound_streams:
            self._raise_if_unusable()
            waiter = self._loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        self._raise_if_unusable()
        stream_id = core.next_stream_id()
        stream = Stream(self, stream_id)
        self._streams[stream_id] = stream
        core.send_headers(stream_id, headers, end_stream=end_stream)
        if end_stream:
            stream.local_closed = True
        self._schedule_flush()
        return stream

    def close(self, error_code: int = NO_ERROR, message: str = "") -> None:
        """Send GOAWAY and close the socket once it is flushed; fail streams still open."""
        if self._transport is None or self._transport.is_closing():
            return
        self._core.close(error_code, message.encode() if message else None)
        self._flush()
        self._transport.close()

    def close_when_idle(self) -> None:
        """Close once the last open stream finishes (at once if there is none); no new ones."""
        self._close_when_idle = True
        if not self._streams:
            self.close()

    def goaway(self, error_code: int = NO_ERROR, message: str = "") -> None:
        """Send a graceful GOAWAY: streams already open go on; new ones are refused."""
        self._core.goaway(error_code, message.encode())
        self._schedule_flush()

    async def wait_ready(self) -> None:
        """Wait for the peer's first SETTINGS frame: it speaks HTTP/2, and its limits are known.

        gRPC clients open no call before that, so that a server's SETTINGS_MAX_CONCURRENT_STREAMS
        is honoured from the first call on.
        """
        while not self._core.settings_received:
            if self._error is not None:
                raise self._error
            if self._ready_waiter is None:
                self._ready_waiter = self._loop.create_future()
            await asyncio.shield(self._ready_waiter)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_waiter)

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            # gRPC over TLS is HTTP/2 negotiated by ALPN (RFC 9113 §3.2); anything else is
            # refused before a single frame is exchanged.
            self._error = ConnectionClosedError("TLS peer did not negotiate ALPN protocol h2")
            transport.abort()
            return
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            host = peer[0]
            self.peer = f"ipv6:[{host}]:{peer[1]}" if ":" in host else f"ipv4:{host}:{peer[1]}"
        else:
            self.peer = f"unix:{peer or ''}"
        self._core.initiate()
        self._flush()
        self._arm_keepalive()

    def data_received(self, data: bytes) -> None:
        self._keepalive.heard_from_peer(self._loop.time())
        try:
            events = self._core.receive_data(data)
        except RemoteProtocolError as exc:
            log.debug("closing %r: %s", self, exc)
            self._flush()
            self._fail(ConnectionClosedError(f"protocol error from peer: {exc}"))
            if self._transport is not None:
                self._transport.close()
            return
        if events:
            self._dispatch(events)
        ready = self._ready_waiter
        if ready is not None and self._core.settings_received:
            self._ready_waiter = None
            if not ready.done():
                ready.set_result(None)
        self._schedule_flush()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        reason = f"connection lost: {exc}" if exc else "connection closed"
        self._fail(ConnectionClosedError(reason))
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for stream in list(self._streams.values()):
            stream._wake_write()

    # ---------------------------------------------------------------- internals

    def _dispatch(self, events: list[Event]) -> None:
        streams = self._streams
        for ev in events:
            if isinstance(ev, DataReceived):
                stream = streams.get(ev.stream_id)
                if stream is None or stream._error is not None:
                    # Nobody will read it: hand the window back so other streams don't starve.
                    self._core.acknowledge_received_data(ev.stream_id, ev.flow_controlled_length)
                    continue
                stream._inbox.append((ev.data, ev.flow_controlled_length))
                stream._wake_read()
            elif isinstance(ev, StreamEnded):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._ended = True
                    stream._wake_all()
                    if stream.local_closed:
                        self._release(stream)
            elif isinstance(ev, RequestReceived):
                stream = Stream(self, ev.stream_id, ev.headers)
                streams[ev.stream_id] = stream
                if self._on_request is None:
                    stream.reset(int(h2.errors.ErrorCodes.REFUSED_STREAM))
                else:
                    self._on_request(stream)
            elif isinstance(ev, ResponseReceived):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream.response_headers = ev.headers
                    stream._wake_read()
            elif isinstance(ev, TrailersReceived):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream.trailers = ev.headers
                    stream._wake_read()
            elif isinstance(ev, StreamWritable):
                stream = streams.get(ev.stream_id)
                if (
                    stream is not None
                    and not self._paused
                    and self._core.pending_bytes(ev.stream_id) <= self._high_water
                ):
                    stream._wake_write()
            elif isinstance(ev, StreamReset):
                stream = streams.get(ev.stream_id)
                if stream is not None:
                    stream._fail(StreamResetError(ev.error_code, remote=ev.remote))
                    self._release(stream)
            elif isinstance(ev, ConnectionTerminated):
                self._on_goaway(ev)
            elif isinstance(ev, PingReceived):
                self._on_ping(ev)
            elif isinstance(ev, PingAcknowledged):
                self._keepalive.on_ping_ack(ev.data, self._loop.time())
                self._arm_keepalive()  # the watchdog is off: back to the idle interval

    def _on_ping(self, ev: PingReceived) -> None:
        policy = self._ping_policy
        if policy is None:
            return
        if self._sent_data:
            self._sent_data = False
            policy.data_sent()
        if policy.ping_received(self._loop.time(), len(self._streams)):
            log.info("%r pings too often: GOAWAY(ENHANCE_YOUR_CALM, too_many_pings)", self)
            self.close(ENHANCE_YOUR_CALM, "too_many_pings")

    def _arm_keepalive(self) -> None:
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        deadline = self._keepalive.deadline()
        if deadline is not None and self._error is None:
            self._keepalive_handle = self._loop.call_at(deadline, self._on_keepalive_timer)

    def _on_keepalive_timer(self) -> None:
        self._keepalive_handle = None
        if self._error is not None:
            return
        now = self._loop.time()
        action = self._keepalive.on_timer(now, len(self._streams))
        if action is KeepaliveAction.SEND_PING:
            self._core.send_ping(self._keepalive.ping_payload(now))
            self._schedule_flush()
        elif action is KeepaliveAction.CONNECTION_DEAD:
            log.info("%r did not answer a keepalive PING in time: closing", self)
            self._fail(ConnectionClosedError("keepalive watchdog timeout: peer not responding"))
            if self._transport is not None:
                self._transport.abort()
            return
        self._arm_keepalive()

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
        for stream in list(self._streams.values()):
            if stream.stream_id > ev.last_stream_id and (stream.stream_id % 2) == (
                1 if self._core.client_side else 0
            ):
                stream._fail(refused)
                self._release(stream)
        self._wake_slot_waiters()

    def _consumed(self, stream_id: int, flow: int) -> None:
        self._core.acknowledge_received_data(stream_id, flow)
        self._schedule_flush()

    def _release(self, stream: Stream) -> None:
        """Forget a finished stream; give back window for bytes nobody will read."""
        if self._streams.pop(stream.stream_id, None) is None:
            return
        unread = sum(flow for _, flow in stream._inbox)
        if unread and not stream._ended:
            stream._inbox.clear()
            self._core.acknowledge_received_data(stream.stream_id, unread)
            self._schedule_flush()
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
        if self._close_when_idle and not self._streams:
            self.close()

    def _wake_slot_waiters(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _raise_if_unusable(self) -> None:
        if self._error is not None:
            raise self._error
        if self.goaway_received or self._core.closed:
            raise ConnectionClosedError("connection is draining (GOAWAY): open a new one")

    def _fail(self, error: ConnectionClosedError) -> None:
        """Make ``error`` the connection's sticky error and raise it in every pending stream."""
        if self._error is None:
            self._error = error
        ready = self._ready_waiter
        if ready is not None and not ready.done():
            ready.set_result(None)  # wait_ready() raises the sticky error
        streams = list(self._streams.values())
        self._streams.clear()
        for stream in streams:
            stream._fail(self._error)
        self._wake_slot_waiters()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self._core.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)


async def connect(
    address: Address,
    *,
    options: Optional[ConnectionOptions] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    server_hostname: Optional[str] = None,
) -> AsyncConnection:
    """Open a client connection (TCP or Unix socket) and send the HTTP/2 preface."""
    loop = asyncio.get_running_loop()

    def factory() -> AsyncConnection:
        return AsyncConnection(client_side=True, options=options)

    if address.path is not None:
        _, proto = await loop.create_unix_connection(factory, address.path)
    else:
        _, proto = await loop.create_connection(
            factory, address.host, address.port, ssl=ssl, server_hostname=server_hostname
        )
    try:
        await proto.wait_ready()
    except BaseException:
        proto.close()
        raise
    return proto


class Listener:
    """A listening socket whose accepted connections are served by ``on_request``."""

    def __init__(
        self,
        address: Address,
        on_request: RequestHandler,
        *,
        options: Optional[ConnectionOptions] = None,
        ssl: Optional[ssl_module.SSLContext] = None,
    ) -> None:
        self.address = address
        self._sock = bind_listening_socket(address)
        self._on_request = on_request
        self._options = options
        self._ssl = ssl
        self._server: Optional[asyncio.AbstractServer] = None
        self.connections: set[AsyncConnection] = set()

    @property
    def port(self) -> int:
        """The bound TCP port (the real one when 0 was asked for); 0 for Unix sockets."""
        if self.address.path is not None:
            return 0
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.address.path is not None:
            self._server = await loop.create_unix_server(
                self._make_connection, sock=self._sock, ssl=self._ssl
            )
        else:
            self._server = await loop.create_server(
                self._make_connection, sock=self._sock, ssl=self._ssl
            )

    def _make_connection(self) -> AsyncConnection:
        conn = AsyncConnection(
            client_side=False,
            options=self._options,
            on_request=self._on_request,
            on_closed=self.connections.discard,
        )
        self.connections.add(conn)
        return conn

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()

    async def wait_stopped(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
