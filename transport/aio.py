"""The asyncio driver: owns the socket and carries out what the session and core decide.

One ``asyncio.BufferedProtocol`` per connection is its single reader (``buffer_updated``) and
single writer (``_flush``): streams only queue into the core, and the bytes the core produced
during one loop iteration leave in one ``transport.write`` (coalesced writes), or in a few when
the iteration queues more than ``FLUSH_EVERY`` frames (so the peer can start on them early), or
at once when the only open stream has just finished sending. Senders wait while their stream
has more than ``send_buffer_high_water`` bytes queued or while the socket buffer is full, and
readers give window credit back only as they take data: backpressure both ways. Waiting is
done with futures; every decision is the shared ``Session``'s (``session.py``).
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import sys
import threading
from collections import deque
from typing import Callable, Optional, cast

from codec.http2_errors import CANCEL, NO_ERROR

from .address import Address, SocketFile, bind_listening_socket
from .core import Bytes
from .events import Headers
from .linger import LINGER_SECONDS, Linger
from .options import ConnectionOptions
from .session import Session, SessionStream, SessionView
from .tls import TlsInfo

__all__ = ["CANCEL", "NO_ERROR", "AsyncConnection", "Listener", "Stream", "connect"]

#: At most this many frame-producing commands wait for the end-of-iteration flush; the next one
#: flushes at once. Coalescing everything a busy iteration produces (64 unary responses, or
#: hundreds of stream messages) into one write makes the two peers take turns: the other side
#: sits idle until the whole batch is built, then this side idles while it is consumed. Writing
#: every 16 commands (about five unary calls' frames, or 16 KiB of 1 KiB messages) lets the peer
#: start on the first calls while the rest are built. One call in flight is unaffected: its
#: iteration queues fewer commands than this.
FLUSH_EVERY = 16

#: ... and at most this many bytes: bulk data is written as it is produced instead of piling
#: up for the end of the iteration. The best piece size depends on the interpreter: PyPy streams
#: fastest writing every 1 MiB, CPython, which pays more per write, every 4 MiB.
FLUSH_BYTES = (1 if sys.implementation.name == "pypy" else 4) * 1024 * 1024

#: Size of the read buffer (asyncio's own default read size).
READ_BUFFER_SIZE = 256 * 1024


class _ReadBuffer(threading.local):
    """One read buffer per thread, shared by every connection its event loop serves.

    A plain ``asyncio.Protocol`` gets a new ``bytes`` per read: asyncio allocates its full read
    size (256 KiB) and shrinks it to what arrived. At that size glibc's malloc serves it with
    mmap, mremap and munmap, three system calls and fresh page faults on every read (seen with
    strace: one of each per unary call). As a ``BufferedProtocol`` we lend asyncio this buffer
    instead; the loop reads into it and hands each chunk to ``buffer_updated`` before the next
    read, and h2 copies what it keeps, so one buffer per loop thread serves all connections.
    """

    def __init__(self) -> None:
        self.view = memoryview(bytearray(READ_BUFFER_SIZE))


_read_buffer = _ReadBuffer()


def _wake(waiter: object) -> bool:
    """Wake a task waiting on ``waiter`` (a future, or None); True if one was waiting."""
    if isinstance(waiter, asyncio.Future) and not waiter.done():
        waiter.set_result(None)
        return True
    return False


class Stream(SessionStream):
    """One HTTP/2 stream as an asyncio task sees it: await headers and data, send yours.

    One task reads a stream and one writes it (they may be the same task); a second concurrent
    reader is tolerated.
    """

    __slots__ = ()

    @property
    def connection(self) -> AsyncConnection:
        driver = self._session.driver
        assert isinstance(driver, AsyncConnection)
        return driver

    async def receive_response_headers(self) -> Headers:
        """Client role: wait for the response header block."""
        while True:
            headers = self._take_response_headers()
            if headers is not None:
                return headers
            await self._wait_readable()

    async def read(self) -> bytes:
        """The next chunk of body bytes, or ``b""`` once the peer has ended the stream.

        Taking a chunk is what hands its window credit back to the peer.
        """
        while True:
            data = self._take()
            if data is not None:
                return data
            await self._wait_readable()

    async def send_data(self, data: Bytes, *, end_stream: bool = False) -> None:
        """Queue body bytes; waits while too much of this stream is queued (backpressure)."""
        self._queue_data(data, end_stream)
        while self._write_blocked():
            await self._wait_writable()

    async def drain(self) -> None:
        """Wait until every queued byte of this stream has been handed to the socket."""
        while not self._drained():
            await self._wait_writable()

    async def _wait_readable(self) -> None:
        # One reader is the norm and awaits the future itself; a second concurrent waiter shares
        # it through a shield. Each re-checks its condition on wake-up.
        waiter = self.read_waiter
        if isinstance(waiter, asyncio.Future) and not waiter.done():
            await asyncio.shield(waiter)
            return
        conn = self.connection
        if conn._flush_scheduled and self._is_only_stream():
            # The only open stream now waits for its peer, who may be waiting for what it just
            # queued (a bidi ping-pong): write it now rather than an iteration later.
            conn.flush_now()
        waiter = self.read_waiter = conn._loop.create_future()
        await waiter

    async def _wait_writable(self) -> None:
        waiter = self.write_waiter = self.connection._loop.create_future()
        try:
            await waiter
        finally:
            self.write_waiter = None


RequestHandler = Callable[[Stream], None]


class AsyncConnection(SessionView, asyncio.BufferedProtocol):
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
        self._on_request = on_request
        self._on_closed = on_closed
        self._transport: Optional[asyncio.Transport] = None
        self._flush_scheduled = False
        self._queued = 0
        #: Inside ``buffer_updated``: flushing is decided at its end.
        self._receiving = False
        #: A waiting task was woken during the current ``buffer_updated``.
        self._woke = False
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._state_waiter: Optional[asyncio.Future[None]] = None
        self._closed_waiter: asyncio.Future[None] = self._loop.create_future()
        self._timer_handle: Optional[asyncio.TimerHandle] = None
        self._reading_paused = False
        self._lingering: Optional[Linger] = None
        self.session = Session(
            self, client_side=client_side, options=options, accept_requests=on_request is not None
        )
        self._max_write_buffer = self.session.core.options.max_write_buffer
        self._core = self.session.core

    def __repr__(self) -> str:
        return f"<AsyncConnection {self.session!r}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this connection runs on."""
        return self._loop

    # ---------------------------------------------------------------- public

    async def open_stream(self, headers: Headers, *, end_stream: bool = False) -> Stream:
        """Client role: start a request, waiting for a free slot under the peer's stream limit."""
        session = self.session
        while not session.has_free_slot:
            session.raise_if_unusable()
            waiter = self._loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        stream = session.open_stream(headers, end_stream=end_stream)
        assert isinstance(stream, Stream)
        return stream

    def close(self, error_code: int = NO_ERROR, message: str = "") -> None:
        """Send a final GOAWAY and close the socket once it is flushed."""
        if self._transport is None or self._transport.is_closing():
            return
        self.session.close(error_code, message)

    def close_when_idle(self) -> None:
        """Close once the last open stream finishes (at once if there is none); no new ones."""
        self.session.close_when_idle()

    def goaway(self, error_code: int = NO_ERROR, message: str = "") -> None:
        """Send a graceful GOAWAY: streams already open go on; new ones are refused."""
        self.session.goaway(error_code, message)

    def shut_down(self) -> None:
        """Server role: begin a graceful shutdown (``Session.shut_down``): GOAWAY(2^31-1) and a
        PING now, the final GOAWAY when the PING is answered or times out."""
        self.session.shut_down()

    async def wait_drained(self) -> None:
        """Wait until a graceful shutdown has sent its final GOAWAY (or the connection is gone):
        from then on no new stream can start here."""
        session = self.session
        while session.draining:
            if self._state_waiter is None or self._state_waiter.done():
                self._state_waiter = self._loop.create_future()
            await asyncio.shield(self._state_waiter)

    async def wait_ready(self) -> None:
        """Wait for the peer's first SETTINGS frame: it speaks HTTP/2, and its limits are known.

        gRPC clients open no call before that, so that a server's SETTINGS_MAX_CONCURRENT_STREAMS
        is honoured from the first call on.
        """
        session = self.session
        while not session.ready:
            if session.error is not None:
                raise session.error.fresh()
            if self._state_waiter is None or self._state_waiter.done():
                self._state_waiter = self._loop.create_future()
            await asyncio.shield(self._state_waiter)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed_waiter)

    # ---------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        tls = TlsInfo.of(ssl_object) if ssl_object is not None else None
        peer = transport.get_extra_info("peername")
        if not self.session.connection_made(peer, tls, transport.get_extra_info("sockname")):
            self._transport.abort()
            return
        self._flush()
        self.rearm_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        return _read_buffer.view

    def buffer_updated(self, nbytes: int) -> None:
        linger = self._lingering
        if linger is not None:
            if not linger.discard(nbytes, self._loop.time()) and self._transport is not None:
                self._transport.abort()  # the drain is bounded by bytes too (linger.py)
            return
        self._receiving = True
        self._woke = False
        try:
            self.session.data_received(_read_buffer.view[:nbytes])
        finally:
            self._receiving = False
        # What the read queued (automatic replies, and the answers of handlers that ran inside
        # it, see rpc/_aio/eager.py) leaves now, unless a task was woken: then the loop runs
        # another iteration anyway, and a flush scheduled for it takes in whatever the woken
        # tasks queue there too, in one write. Nothing woken, nothing queued: no flush, and no
        # loop iteration spent on one (a server whose handler answered inside the read).
        if self._woke:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        elif self._core.pending_output():
            self.flush_now()

    def eof_received(self) -> Optional[bool]:
        return False  # close our side too

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        self.session.connection_lost(exc)
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)

    def pause_writing(self) -> None:
        self.session.pause_writing()

    def resume_writing(self) -> None:
        self.session.resume_writing()
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()

    # ---------------------------------------------------------------- Driver (for the session)

    def new_stream(self, stream_id: int, request_headers: Optional[Headers]) -> SessionStream:
        return Stream(self.session, stream_id, request_headers)

    def wake_read(self, stream: SessionStream) -> None:
        if _wake(stream.read_waiter):
            self._woke = True

    def wake_write(self, stream: SessionStream) -> None:
        if _wake(stream.write_waiter):
            self._woke = True

    def wake_connection(self) -> None:
        _wake(self._state_waiter)
        while self._slot_waiters:
            _wake(self._slot_waiters.popleft())
        self._woke = True

    def slot_freed(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woke = True
                break

    def request_received(self, stream: SessionStream) -> None:
        assert self._on_request is not None and isinstance(stream, Stream)
        self._on_request(stream)

    def schedule_flush(self, now: bool = False) -> None:
        if now or self._core.pending_output() >= FLUSH_BYTES:
            # ``now`` saves the loop iteration a scheduled flush would wait for (an epoll_wait
            # and the loop's own overhead): one call in flight is a ping-pong of such waits.
            self.flush_now()
            return
        if self._receiving:
            # Inside our read callback: its end decides (``buffer_updated``).
            self._queued += 1
            if self._queued >= FLUSH_EVERY:
                self.flush_now()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._queued = 1
            self._loop.call_soon(self._flush)
            return
        self._queued += 1
        if self._queued >= FLUSH_EVERY:
            self.flush_now()

    def close_transport(self) -> None:
        self._flush()
        transport = self._transport
        if transport is None or transport.is_closing() or self._lingering is not None:
            return
        if transport.can_write_eof():
            # Lingering close: half-close so our last frames (the GOAWAY) reach the peer, and
            # drop what it still sends for a moment. Closing at once with unread input makes
            # the kernel send RST, which can destroy the GOAWAY before the peer reads it.
            self._lingering = Linger(self._loop.time())
            if self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
            try:
                transport.write_eof()
            except OSError:  # the peer is already gone
                transport.close()
                return
            self._loop.call_later(LINGER_SECONDS, transport.close)
        else:
            # TLS: close() sends close_notify and waits for the peer's, which gRPC peers do not
            # always send; bound the wait like the lingering close above.
            transport.close()
            self._loop.call_later(LINGER_SECONDS, transport.abort)

    def abort_transport(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def rearm_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        deadline = self.session.timer_deadline()
        if deadline is not None:
            self._timer_handle = self._loop.call_at(deadline, self._on_timer)

    def now(self) -> float:
        return self._loop.time()

    # ---------------------------------------------------------------- internals

    def _on_timer(self) -> None:
        self._timer_handle = None
        self.session.on_timer()

    @staticmethod
    def _write_buffer_size(transport: asyncio.Transport) -> int:
        try:
            return transport.get_write_buffer_size()
        except AttributeError:  # a TLS transport torn down under us (seen on PyPy 3.9)
            return 0

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.flush_now()

    def flush_now(self) -> None:
        """Write what is queued at once, without waiting for the end of the iteration."""
        self._queued = 0
        data = self._core.data_to_send()
        transport = self._transport
        if data and transport is not None and not transport.is_closing():
            transport.write(data)
            if not self._reading_paused and self._write_buffer_size(transport) > (
                self._max_write_buffer
            ):
                # The peer sends but does not read: stop reading it until it drains what we
                # owe it, so that our automatic replies cannot pile up without bound.
                self._reading_paused = True
                transport.pause_reading()


async def connect(
    address: Address,
    *,
    options: Optional[ConnectionOptions] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    server_hostname: Optional[str] = None,
    on_closed: Optional[Callable[[AsyncConnection], None]] = None,
) -> AsyncConnection:
    """Open a client connection (TCP or Unix socket) and wait for the server's SETTINGS.

    ``on_closed(conn)``: called once the connection is closed (the channel's balancer learns
    that the address needs a new connection)."""
    loop = asyncio.get_running_loop()

    def factory() -> AsyncConnection:
        return AsyncConnection(client_side=True, options=options, on_closed=on_closed)

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
        reuse_port: bool = False,
    ) -> None:
        self.address = address
        self._sock = bind_listening_socket(address, reuse_port=reuse_port)
        self._socket_file = SocketFile.of(address)
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
        handshake = None
        if self._ssl is not None:
            handshake = (self._options or ConnectionOptions()).handshake_timeout
        if self.address.path is not None:
            self._server = await loop.create_unix_server(
                self._make_connection,
                sock=self._sock,
                ssl=self._ssl,
                ssl_handshake_timeout=handshake,
            )
        else:
            self._server = await loop.create_server(
                self._make_connection,
                sock=self._sock,
                ssl=self._ssl,
                ssl_handshake_timeout=handshake,
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
        """Close the listening socket (and remove its file, for a Unix socket)."""
        if self._socket_file is not None:
            self._socket_file.remove()  # first: the open socket pins the file's inode
            self._socket_file = None
        if self._server is not None:
            self._server.close()
        else:
            self._sock.close()

    async def wait_stopped(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
