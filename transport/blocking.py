"""The blocking driver: threads and plain sockets, carrying out what the session and core decide.

Each connection has one reader thread (it also runs the keepalive timer) and a locked writer:
any thread that queued frames flushes them, one at a time, in queue order. All protocol state is
the shared ``Session`` (``session.py``), guarded by one lock per connection; waiting is a
``threading.Condition`` on that lock. The socket is never touched with the state lock held, so a
slow peer can stall a writer but not the reader.

TLS runs over ``ssl.MemoryBIO``: the TLS state machine is sans-I/O too, only ever used under a
lock, while the raw socket is read by the reader thread and written by the writer; so reading and
writing may proceed at once without two threads inside one OpenSSL object.
"""

from __future__ import annotations

import logging
import mmap
import select
import socket
import ssl as ssl_module
import threading
import time
from typing import Callable, Optional

from codec.http2_errors import CANCEL, NO_ERROR

from .address import Address, SocketFile, bind_listening_socket
from .core import Bytes
from .errors import ConnectionClosedError, TransportError
from .events import Headers
from .linger import Linger
from .options import ConnectionOptions
from .session import Session, SessionStream, SessionView
from .tls import TlsInfo

log = logging.getLogger(__name__)

__all__ = [
    "CANCEL",
    "NO_ERROR",
    "BlockingConnection",
    "BlockingListener",
    "BlockingStream",
    "connect_blocking",
]

_RECV_SIZE = 256 * 1024
_IDLE_POLL = 1.0  # the reader looks at timers at least this often


def _readable(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``sock`` to be readable (poll: no FD_SETSIZE limit)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    return bool(select.select([sock], [], [], timeout)[0])


class _Deadline:
    """Remaining time of an optional timeout, for repeated condition waits."""

    __slots__ = ("_end",)

    def __init__(self, timeout: Optional[float]) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> Optional[float]:
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left


class BlockingStream(SessionStream):
    """One HTTP/2 stream for threads: blocking reads and writes, each with an optional timeout.

    ``TimeoutError`` means only that the wait ran out; the stream is left as it was.
    """

    __slots__ = ()

    @property
    def connection(self) -> BlockingConnection:
        driver = self._session.driver
        assert isinstance(driver, BlockingConnection)
        return driver

    def _waiter(self, conn: BlockingConnection) -> threading.Condition:
        """This stream's own condition (on the connection's lock), made on first wait.

        Only this stream's threads wait on it, so news for one stream wakes only them: with
        one condition per connection, every response woke every thread waiting on any call.
        """
        waiter = self.read_waiter
        if waiter is None:
            waiter = self.read_waiter = threading.Condition(conn.lock)
        assert isinstance(waiter, threading.Condition)
        return waiter

    def receive_response_headers(self, timeout: Optional[float] = None) -> Headers:
        conn = self.connection
        deadline = _Deadline(timeout)
        with conn.lock:
            while True:
                headers = self._take_response_headers()
                if headers is not None:
                    break
                self._waiter(conn).wait(deadline.remaining())
        conn.flush()
        return headers

    def read(self, timeout: Optional[float] = None) -> bytes:
        """The next chunk of body bytes, or ``b""`` once the peer has ended the stream."""
        conn = self.connection
        deadline = _Deadline(timeout)
        with conn.lock:
            while True:
                data = self._take()
                if data is not None:
                    break
                self._waiter(conn).wait(deadline.remaining())
        conn.flush()  # the window credit handed back
        return data

    def send_data(
        self, data: Bytes, *, end_stream: bool = False, timeout: Optional[float] = None
    ) -> None:
        """Queue body bytes and send them; waits while too much is queued (backpressure)."""
        conn = self.connection
        deadline = _Deadline(timeout)
        with conn.lock:
            self._queue_data(data, end_stream)
        conn.flush()
        if self._write_blocked():  # a racy first look; the wait itself looks under the lock
            # The window opens only once the peer has what is queued: corked or not, send it.
            conn.flush(even_corked=True)
            with conn.lock:
                while self._write_blocked():
                    self._waiter(conn).wait(deadline.remaining())

    def send_headers(self, headers: Headers, *, end_stream: bool = False) -> None:
        with self.connection.lock:
            super().send_headers(headers, end_stream=end_stream)
        self.connection.flush()

    def end(self) -> None:
        with self.connection.lock:
            super().end()
        self.connection.flush()

    def send_trailers(self, headers: Headers) -> None:
        with self.connection.lock:
            super().send_trailers(headers)
        self.connection.flush()

    def reset(self, error_code: int = CANCEL) -> None:
        with self.connection.lock:
            super().reset(error_code)
        self.connection.flush(wait=False)


RequestHandler = Callable[[BlockingStream], None]


class _TlsPipe:
    """TLS over memory BIOs: the TLS object is used only under its lock, never in a socket call."""

    def __init__(
        self,
        sock: socket.socket,
        context: ssl_module.SSLContext,
        *,
        server_side: bool,
        server_hostname: Optional[str],
    ) -> None:
        self._sock = sock
        self._incoming = ssl_module.MemoryBIO()
        self._outgoing = ssl_module.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._lock = threading.Lock()

    def handshake(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl_module.SSLWantReadError:
                self._sock.sendall(self._outgoing.read())
                left = end - time.monotonic()
                if left <= 0 or not _readable(self._sock, left):
                    raise TimeoutError("TLS handshake timed out") from None
                data = self._sock.recv(_RECV_SIZE)
                if not data:
                    raise ConnectionClosedError("connection closed in the TLS handshake") from None
                self._incoming.write(data)
        pending = self._outgoing.read()
        if pending:
            self._sock.sendall(pending)

    def info(self) -> TlsInfo:
        return TlsInfo.of(self._tls)

    def decrypt(self, raw: Bytes) -> tuple[bytes, bytes]:
        """Feed raw bytes; return (application data, TLS bytes that must be sent back)."""
        with self._lock:
            self._incoming.write(raw)
            chunks = []
            while True:
                try:
                    chunk = self._tls.read(_RECV_SIZE)
                except (ssl_module.SSLWantReadError, ssl_module.SSLZeroReturnError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks), self._outgoing.read()

    def encrypt(self, data: bytes) -> bytes:
        with self._lock:
            self._tls.write(data)
            return self._outgoing.read()


class BlockingConnection(SessionView):
    """An HTTP/2 connection driven by threads, for either role."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        client_side: bool,
        options: Optional[ConnectionOptions] = None,
        on_request: Optional[RequestHandler] = None,
        on_closed: Optional[Callable[[BlockingConnection], None]] = None,
        tls: Optional[_TlsPipe] = None,
    ) -> None:
        self._sock = sock
        self._tls = tls
        self._on_request = on_request
        self._on_closed = on_closed
        #: The connection's lock: the session, its core and every stream are used under it.
        self.lock = threading.RLock()
        #: Connection-level waits (SETTINGS, a free stream slot); streams have their own.
        self.cond = threading.Condition(self.lock)
        self._write_lock = threading.Lock()
        self._close_after_flush = False
        self._linger: Optional[Linger] = None
        self._closed = False
        self._reader: Optional[threading.Thread] = None
        self._deferred: list[Callable[[], None]] = []
        self._local = threading.local()
        self.session = Session(
            self, client_side=client_side, options=options, accept_requests=on_request is not None
        )
        self._core = self.session.core

    def __repr__(self) -> str:
        return f"<BlockingConnection {self.session!r}>"

    # ---------------------------------------------------------------- public

    def start(self) -> None:
        """Send the preface and SETTINGS and start the reader thread."""
        try:
            peer = self._sock.getpeername()
            local = self._sock.getsockname()
        except OSError:
            peer = local = None
        tls = self._tls.info() if self._tls is not None else None
        with self.cond:
            ok = self.session.connection_made(peer, tls, local)
        if not ok:
            self.abort_transport()
            raise (self.session.error or ConnectionClosedError("connection refused")).fresh()
        self.flush()
        role = "client" if self.session.core.client_side else "server"
        self._reader = threading.Thread(
            target=self._read_loop, name=f"h2rpc-{role}-reader", daemon=True
        )
        self._reader.start()

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Wait for the peer's first SETTINGS frame (see ``AsyncConnection.wait_ready``)."""
        deadline = _Deadline(timeout)
        with self.cond:
            while not self.session.ready:
                if self.session.error is not None:
                    raise self.session.error.fresh()
                self.cond.wait(deadline.remaining())

    def open_stream(
        self,
        headers: Headers,
        *,
        end_stream: bool = False,
        timeout: Optional[float] = None,
        flush: bool = True,
    ) -> BlockingStream:
        """Client role: start a request, waiting for a free slot under the peer's limit.

        ``flush=False`` leaves the HEADERS frame queued for the caller's next write, so that
        a unary request leaves in one ``send``.
        """
        deadline = _Deadline(timeout)
        with self.cond:
            session = self.session
            while not session.has_free_slot:
                session.raise_if_unusable()
                self.cond.wait(deadline.remaining())
            stream = session.open_stream(headers, end_stream=end_stream)
        if flush:
            self.flush()
        assert isinstance(stream, BlockingStream)
        return stream

    def cork(self) -> None:
        """Hold back this thread's sends until ``uncork()``, so that they leave together.

        Other threads flush as usual (and may carry these bytes with theirs). Only for a stretch
        with no reads in it: a read's window credit must not be held back.
        """
        self._local.corked = True

    def uncork(self) -> None:
        self._local.corked = False
        self.flush()

    def close(self, error_code: int = NO_ERROR, message: str = "") -> None:
        with self.cond:
            if self._closed:
                return
            self.session.close(error_code, message)
        self.flush()

    def close_when_idle(self) -> None:
        with self.cond:
            self.session.close_when_idle()
        self.flush()

    def goaway(self, error_code: int = NO_ERROR, message: str = "") -> None:
        with self.cond:
            self.session.goaway(error_code, message)
        self.flush()

    def shut_down(self) -> None:
        """Server role: begin a graceful shutdown (``Session.shut_down``): GOAWAY(2^31-1) and a
        PING now, the final GOAWAY when the PING is answered or times out."""
        with self.cond:
            self.session.shut_down()
        self.flush()

    def wait_drained(self, timeout: Optional[float] = None) -> bool:
        """Wait until a graceful shutdown has sent its final GOAWAY (or the connection is gone);
        False if ``timeout`` passed first. The waiter runs the shutdown's timer itself, to the
        moment: the reader thread looks at timers only between reads."""
        end = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            session = self.session
            while session.draining:
                now = time.monotonic()
                deadline = session.core.shutdown_deadline
                if deadline is not None and now >= deadline:
                    session.on_timer()
                    continue
                if end is not None and now >= end:
                    return False
                wait = None if deadline is None else deadline - now
                if end is not None:
                    wait = end - now if wait is None else min(wait, end - now)
                self.cond.wait(wait)
        self.flush()
        return True

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the reader thread once it has released the connection's lock.

        For work that sends (sending flushes, and flushing must not happen under the lock)
        decided inside a ``request_received`` callback.
        """
        self._deferred.append(callback)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
            return not reader.is_alive()
        return True

    # ---------------------------------------------------------------- Driver (under the lock)

    def new_stream(self, stream_id: int, request_headers: Optional[Headers]) -> SessionStream:
        return BlockingStream(self.session, stream_id, request_headers)

    def wake_read(self, stream: SessionStream) -> None:
        waiter = stream.read_waiter
        if waiter is not None:
            waiter.notify_all()  # type: ignore[attr-defined]
        listener = stream.on_news
        if listener is not None:
            listener()

    wake_write = wake_read

    def wake_connection(self) -> None:
        self._wake_everyone()

    def _wake_everyone(self) -> None:
        self.cond.notify_all()
        for stream in list(self.session.streams.values()):
            self.wake_read(stream)

    def slot_freed(self) -> None:
        self.cond.notify_all()

    def request_received(self, stream: SessionStream) -> None:
        assert self._on_request is not None and isinstance(stream, BlockingStream)
        self._on_request(stream)

    def schedule_flush(self, now: bool = False) -> None:
        pass  # every path that queues frames calls flush() once it has released the lock

    def close_transport(self) -> None:
        self._close_after_flush = True

    def abort_transport(self) -> None:
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self.lock:  # called with or without the (reentrant) lock held; notify needs it
            self._wake_everyone()

    def rearm_timer(self) -> None:
        pass  # the reader thread recomputes its wait from the session on every pass

    def now(self) -> float:
        return time.monotonic()

    # ---------------------------------------------------------------- I/O

    def _flush_needed(self) -> bool:
        """Frames are queued, or a half-close waits for the writer (an unlocked look)."""
        return bool(self._core.pending_output()) or self._close_after_flush

    def flush(self, *, even_corked: bool = False, wait: bool = True) -> None:
        """Send everything queued, in order; only one thread writes at a time.

        A corked thread's flushes wait for ``uncork()``, except ``even_corked`` ones: a thread
        about to wait for the peer (for window) must first send what the peer is waiting for.

        ``wait=False``: if another thread is writing, leave our frames to it instead of waiting
        for the lock. A writer can be stuck in ``sendall()`` for as long as the peer does not
        read: the reader thread must keep reading meanwhile (else two peers writing to each other
        deadlock), and a call ending on its deadline must not wait to queue its RST_STREAM. The
        writer looks again once it lets the lock go, so frames queued meanwhile are not left.
        """
        while self._flush_needed() and not self._closed:
            # (Nothing queued, a read that handed back no window credit say: every path that
            # queues frames calls flush() after it, so there is nothing for us to carry.)
            if not even_corked and getattr(self._local, "corked", False):
                return
            if not self._write_lock.acquire(blocking=wait):
                return  # the writer will see our frames when it lets the lock go
            try:
                self._flush_locked()
            finally:
                self._write_lock.release()

    def _output_over_limit(self) -> bool:
        """More than ``max_write_buffer`` waits to be sent: the reader then waits for the writer
        (and so stops reading), so a peer that sends but never reads cannot pile up our
        automatic replies. Below it, the reader leaves its frames to a writer busy sending."""
        return self.session.core.pending_output() > self.session.core.options.max_write_buffer

    def _flush_locked(self) -> None:
        while True:
            with self.cond:
                data = self.session.core.data_to_send()
                close = self._close_after_flush and not self._closed
            if data and not self._closed:
                try:
                    if self._tls is not None:
                        data = self._tls.encrypt(data)
                    self._sock.sendall(data)
                except (OSError, ssl_module.SSLError) as exc:
                    self._on_io_error(exc)
                    return
                if not self._flush_needed():
                    return  # nothing came in meanwhile: spare the lock
                continue
            if close:
                # Lingering close (see aio.py): half-close, let the reader drain a moment.
                self._close_after_flush = False
                self._linger = Linger(time.monotonic())
                try:
                    self._sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            return

    def _read_loop(self) -> None:
        sock = self._sock
        # Read into one buffer per connection: a fresh 256 KiB bytes per recv() is mmapped,
        # mremapped and munmapped by malloc every time (three system calls and page faults per
        # read). An anonymous mapping, unlike a bytearray, is not zero-filled by us: the kernel
        # brings in only the pages reads have filled, so an idle connection holds one page of
        # it. h2 copies what it keeps: the view handed on is never held past ``data_received``.
        buffer = mmap.mmap(-1, _RECV_SIZE)
        view = memoryview(buffer)
        error: Optional[BaseException] = None
        try:
            while not self._closed:
                linger = self._linger
                if linger is not None:
                    # Discard what the peer still sends after our GOAWAY, for a bounded time
                    # and number of bytes (linger.py).
                    if not _readable(sock, max(0.0, linger.deadline - time.monotonic())):
                        break
                    received = sock.recv_into(buffer)
                    if not received or not linger.discard(received, time.monotonic()):
                        break
                    continue
                with self.cond:
                    deadline = self.session.timer_deadline()
                wait = _IDLE_POLL if deadline is None else max(0.0, deadline - time.monotonic())
                if not _readable(sock, min(wait, _IDLE_POLL)):
                    with self.cond:
                        deadline = self.session.timer_deadline()
                        if deadline is not None and time.monotonic() >= deadline:
                            self.session.on_timer()
                    self.flush(wait=self._output_over_limit())
                    continue
                received = sock.recv_into(buffer)
                if not received:
                    break
                data: Bytes = view[:received]
                if self._tls is not None:
                    data, reply = self._tls.decrypt(data)
                    if reply:
                        with self._write_lock:
                            sock.sendall(reply)
                    if not data:
                        continue
                with self.cond:
                    self.session.data_received(data)
                    # A peer that keeps the socket readable (dripping bytes) must not keep the
                    # timers (the handshake's first) from running.
                    deadline = self.session.timer_deadline()
                    if deadline is not None and time.monotonic() >= deadline:
                        self.session.on_timer()
                deferred, self._deferred = self._deferred, []
                for callback in deferred:
                    try:
                        callback()
                    except Exception:
                        log.exception("deferred callback failed")
                self.flush(wait=self._output_over_limit())
        except (OSError, ValueError, ssl_module.SSLError) as exc:
            error = exc
        finally:
            self._closed = True
            with self.cond:
                self.session.connection_lost(error if isinstance(error, Exception) else None)
            try:
                sock.close()
            except OSError:
                pass
            if self._on_closed is not None:
                self._on_closed(self)

    def _on_io_error(self, exc: BaseException) -> None:
        with self.cond:
            self.session.fail(ConnectionClosedError(f"connection lost: {exc}"))
        self.abort_transport()


def connect_blocking(
    address: Address,
    *,
    options: Optional[ConnectionOptions] = None,
    ssl: Optional[ssl_module.SSLContext] = None,
    server_hostname: Optional[str] = None,
    timeout: float = 20.0,
    on_closed: Optional[Callable[[BlockingConnection], None]] = None,
) -> BlockingConnection:
    """Open a client connection and wait for the server's SETTINGS (within ``timeout``);
    ``on_closed(conn)`` once it is closed (on its reader thread)."""
    if address.path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address.path)
        except BaseException:
            sock.close()
            raise
    else:
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        tls = None
        if ssl is not None:
            tls = _TlsPipe(
                sock, ssl, server_side=False, server_hostname=server_hostname or address.host
            )
            tls.handshake(timeout)
        sock.settimeout(None)
        conn = BlockingConnection(
            sock, client_side=True, options=options, tls=tls, on_closed=on_closed
        )
        conn.start()
    except BaseException:
        sock.close()
        raise
    try:
        conn.wait_ready(timeout)
    except BaseException:
        conn.abort_transport()
        raise
    return conn


class BlockingListener:
    """A listening socket served by an accept thread; each connection gets its reader thread."""

    def __init__(
        self,
        address: Address,
        on_request: RequestHandler,
        *,
        options: Optional[ConnectionOptions] = None,
        ssl: Optional[ssl_module.SSLContext] = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.address = address
        self._sock = bind_listening_socket(address)
        self._socket_file = SocketFile.of(address)
        self._on_request = on_request
        self._options = options
        self._ssl = ssl
        self._handshake_timeout = handshake_timeout
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.connections: set[BlockingConnection] = set()

    @property
    def port(self) -> int:
        if self.address.path is not None:
            return 0
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="h2rpc-accept", daemon=True)
        self._thread.start()

    def stop_accepting(self) -> None:
        """Close the listening socket (and remove its file, for a Unix socket)."""
        if self._socket_file is not None:
            self._socket_file.remove()  # first: the open socket pins the file's inode
            self._socket_file = None
        self._stopping = True
        if self._thread is not None:
            self._thread.join(5)
        try:
            self._sock.close()
        except OSError:
            pass

    def snapshot(self) -> list[BlockingConnection]:
        with self._lock:
            return list(self.connections)

    def _accept_loop(self) -> None:
        sock = self._sock
        while not self._stopping:
            try:
                if not _readable(sock, 0.2):
                    continue
                client, _ = sock.accept()
            except (OSError, ValueError):
                if self._stopping:
                    return
                continue
            threading.Thread(
                target=self._serve_connection, args=(client,), name="h2rpc-handshake", daemon=True
            ).start()

    def _serve_connection(self, client: socket.socket) -> None:
        try:
            client.setblocking(True)
            if client.family != socket.AF_UNIX:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = None
            if self._ssl is not None:
                tls = _TlsPipe(client, self._ssl, server_side=True, server_hostname=None)
                tls.handshake(self._handshake_timeout)
            conn = BlockingConnection(
                client,
                client_side=False,
                options=self._options,
                on_request=self._on_request,
                on_closed=self._forget,
                tls=tls,
            )
            with self._lock:
                self.connections.add(conn)
            conn.start()
        except (OSError, ssl_module.SSLError, TimeoutError, TransportError) as exc:
            log.debug("connection setup failed: %s", exc)
            try:
                client.close()
            except OSError:
                pass

    def _forget(self, conn: BlockingConnection) -> None:
        with self._lock:
            self.connections.discard(conn)
