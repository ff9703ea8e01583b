"""Two sessions joined by an in-memory link, on a clock advanced by hand: decisions without sockets.

``CorePair`` (pair.py) joins two connection cores. ``SessionPair`` joins two ``Session`` objects,
the layer above the cores that decides when streams finish, hands window credit back, applies
GOAWAY and runs keepalive, idle and handshake timers. Each session gets a ``FakeDriver``: it
wakes nobody (tests look at the stream state themselves), records what the session asked of it,
and reads the time from a ``FakeClock`` that only ``SessionPair.advance`` moves. So keepalive,
idle timeouts, handshake deadlines and flow control are tested deterministically: no sockets,
threads or sleeps.

``pump()`` moves bytes until both sides are quiet. Like the asyncio driver, a fake driver writes
only what the session asked it to flush (``schedule_flush``, ``close_transport``), and fires its
timer at the deadline it was given at the last ``rearm_timer``; bytes a session queued without
asking, or a deadline brought forward without a rearm, are bugs the pump reports (on a real
connection the bytes would sit unsent, the timer fire late or never). A side can be held
(``hold``: what it writes waits on the link, as for a peer that stopped reading or a network
that stalls) or corked (``FakeDriver.corked``: it writes nothing, as a blocking thread holding
its sends back).

One side may instead be a real ``BlockingConnection`` on an in-memory socket, stepped by hand
(``BlockingEnd``): the blocking driver's own code paths, without its reader thread.
"""

from __future__ import annotations

import socket
from typing import Any, NamedTuple, Optional, Union

from transport.blocking import BlockingConnection, BlockingStream
from transport.core import Bytes
from transport.errors import TransportError
from transport.events import Headers
from transport.options import ConnectionOptions
from transport.session import Session, SessionStream

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_TYPES = {
    0: "DATA",
    1: "HEADERS",
    2: "PRIORITY",
    3: "RST_STREAM",
    4: "SETTINGS",
    5: "PUSH_PROMISE",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
    9: "CONTINUATION",
}
ACK = 0x1
END_STREAM = 0x1


class FakeClock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Frame(NamedTuple):
    """One frame seen on the link (the payload is kept: tests look into PING and GOAWAY)."""

    type: str
    flags: int
    stream_id: int
    payload: bytes


class FrameLog:
    """Splits one direction's bytes into frames, across deliveries, for assertions."""

    def __init__(self, expect_preface: bool) -> None:
        self.frames: list[Frame] = []
        self._buffer = bytearray()
        self._preface = expect_preface

    def feed(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        if self._preface:
            if len(buf) < len(PREFACE):
                return
            assert buf[: len(PREFACE)] == PREFACE, "the client must start with the preface"
            pos, self._preface = len(PREFACE), False
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            end = pos + 9 + length
            if len(buf) < end:
                break
            kind = FRAME_TYPES.get(buf[pos + 3], f"UNKNOWN({buf[pos + 3]})")
            stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFF_FFFF
            self.frames.append(Frame(kind, buf[pos + 4], stream_id, bytes(buf[pos + 9 : end])))
            pos = end
        del buf[:pos]


class FakeStream(SessionStream):
    """A stream with the non-waiting steps the real drivers wait around, under plain names."""

    __slots__ = ("received",)

    def __init__(
        self, session: Session, stream_id: int, request_headers: Optional[Headers] = None
    ) -> None:
        super().__init__(session, stream_id, request_headers)
        #: What ``FakeDriver.auto_read`` has read of this stream so far.
        self.received = bytearray()

    def read(self) -> Optional[bytes]:
        """The next chunk (handing its credit back), ``b""`` at the end, None: would wait."""
        return self._take()

    def read_available(self) -> bytes:
        """Every chunk that can be read now, joined."""
        chunks = []
        while True:
            chunk = self._take()
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def response_head(self) -> Optional[Headers]:
        """Client role: the response header block, or None: would wait."""
        return self._take_response_headers()

    def send_data(self, data: Bytes, *, end_stream: bool = False) -> None:
        """Queue body bytes (a real driver would then wait while ``write_blocked``)."""
        self._queue_data(data, end_stream)

    @property
    def write_blocked(self) -> bool:
        """A real driver's sender would wait now (too much queued, or the socket is full)."""
        return self._write_blocked()

    @property
    def unread(self) -> int:
        """Bytes waiting in the inbox."""
        return sum(len(data) for data, _ in self._inbox)


class FakeDriver:
    """A ``Driver`` that moves nothing itself: it records what the session asks for."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.session: Session  # set by the end that owns it
        #: Every stream the session made, in order (released ones included).
        self.streams: list[FakeStream] = []
        #: Server role: streams whose request came in, for the test to serve (take_requests).
        self.requests: list[FakeStream] = []
        #: The session asked for a write (schedule_flush) that has not happened yet.
        self.flush_requested = False
        #: How many ``schedule_flush(now=True)`` calls came (the only open stream finished).
        self.urgent_flushes = 0
        #: Hold every write back (a blocking thread's cork with no other thread flushing).
        self.corked = False
        #: Read every stream's data as it arrives (into ``FakeStream.received``): a reader that
        #: keeps up, so that window credit goes back at once.
        self.auto_read = False
        self.closing = False  # close_transport: flush, then close
        self.aborted = False  # abort_transport: close now, drop what is unsent
        #: The deadline the timer was last armed for (``rearm_timer``), as asyncio's call_at.
        self.armed: Optional[float] = None
        self.connection_wakes = 0
        self.slots_freed = 0

    # ---------------------------------------------------------------- Driver

    def new_stream(self, stream_id: int, request_headers: Optional[Headers]) -> SessionStream:
        stream = FakeStream(self.session, stream_id, request_headers)
        self.streams.append(stream)
        return stream

    def wake_read(self, stream: SessionStream) -> None:
        pass  # nobody waits: tests look at the state after pump()

    def wake_write(self, stream: SessionStream) -> None:
        pass

    def wake_connection(self) -> None:
        self.connection_wakes += 1

    def slot_freed(self) -> None:
        self.slots_freed += 1

    def request_received(self, stream: SessionStream) -> None:
        assert isinstance(stream, FakeStream)
        self.requests.append(stream)

    def schedule_flush(self, now: bool = False) -> None:
        self.flush_requested = True
        if now:
            self.urgent_flushes += 1

    def close_transport(self) -> None:
        self.closing = True

    def abort_transport(self) -> None:
        self.aborted = True

    def rearm_timer(self) -> None:
        self.armed = self.session.timer_deadline()

    def now(self) -> float:
        return self.clock.now


class FakeEnd:
    """One side of the link: a ``Session`` driven by a ``FakeDriver``."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        client_side: bool,
        options: Optional[ConnectionOptions],
        accept_requests: bool = True,
    ) -> None:
        self.driver = FakeDriver(clock)
        self.session = Session(
            self.driver, client_side=client_side, options=options, accept_requests=accept_requests
        )
        self.driver.session = self.session
        self.connected = False
        self.lost = False

    def connection_made(self, peer: Any) -> None:
        self.connected = True
        ok = self.session.connection_made(peer, None)
        assert ok
        self.driver.rearm_timer()  # as the asyncio driver arms it once the socket is up

    def take_output(self) -> bytes:
        driver = self.driver
        if driver.aborted or driver.corked or not (driver.flush_requested or driver.closing):
            return b""
        driver.flush_requested = False
        return self.session.core.data_to_send()

    def unrequested_output(self) -> bool:
        """Bytes queued that nobody asked to send (corked or closed sides aside)."""
        driver = self.driver
        if driver.corked or driver.aborted or driver.closing or driver.flush_requested:
            return False
        return bool(self.session.core.pending_output())

    def timer_due(self) -> Optional[float]:
        """When the timer fires: the armed deadline (a later one comes true as an early wake)."""
        return self.driver.armed

    def timer_problem(self) -> Optional[str]:
        """Why the timer would fire late or never: a deadline before the armed one, or none."""
        deadline = self.session.timer_deadline()
        armed = self.driver.armed
        if deadline is None or self.session.error is not None or not self.connected:
            return None
        if armed is None or deadline < armed:
            return f"deadline {deadline} came forward without rearm_timer (armed: {armed})"
        return None

    @property
    def closed_by_us(self) -> bool:
        """True: close the link once our output is delivered."""
        return self.driver.closing

    @property
    def aborted(self) -> bool:
        return self.driver.aborted

    def deliver(self, data: bytes) -> None:
        self.session.data_received(data)
        if self.driver.auto_read:
            for stream in self.driver.streams:
                if stream.remote_ended and not stream._inbox:
                    continue
                try:
                    stream.received += stream.read_available()
                except TransportError:  # a failed stream: nothing more to read from it
                    pass

    def on_timer(self) -> None:
        driver = self.driver
        if driver.armed is not None and driver.now() >= driver.armed:
            driver.armed = None  # fired: the session rearms it if it wants another
            self.session.on_timer()

    def connection_lost(self) -> None:
        if not self.lost:
            self.lost = True
            self.session.connection_lost(None)


class MemorySocket:
    """What ``BlockingConnection`` needs of a socket, writing into a buffer the pair drains."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.shut_write = False
        self.shut_both = False
        self.in_sendall = False
        #: Called after each sendall (the pair pumps from there in ``instant`` mode).
        self.on_send: Optional[Any] = None

    def sendall(self, data: Bytes) -> None:
        if self.shut_write or self.shut_both:
            raise BrokenPipeError("send after shutdown")
        self.sent += data
        if self.on_send is not None and not self.in_sendall:
            self.in_sendall = True
            try:
                self.on_send()
            finally:
                self.in_sendall = False

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_WR:
            self.shut_write = True
        else:
            self.shut_both = True

    def getpeername(self) -> Any:
        return ("127.0.0.1", 50051)  # asked by start() only, which the pair does not call

    def close(self) -> None:
        self.shut_both = True


class SteppedBlockingConnection(BlockingConnection):
    """The blocking driver with the fake clock; its reader thread's steps are taken by hand."""

    def __init__(self, clock: FakeClock, sock: MemorySocket, **kwargs: Any) -> None:
        self._clock = clock
        super().__init__(sock, **kwargs)  # type: ignore[arg-type]

    def now(self) -> float:
        return self._clock.now


class BlockingEnd:
    """One side of the link: a real ``BlockingConnection`` on a ``MemorySocket``, no thread.

    Bytes from the peer go in as its reader thread would put them (``data_received`` under the
    lock, then the deferred callbacks, then a flush), timers fire as its read loop fires them.
    A server's ``on_request`` only records the stream (``requests``): the test serves it.
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        client_side: bool,
        options: Optional[ConnectionOptions],
        accept_requests: bool = True,
    ) -> None:
        self.sock = MemorySocket()
        self.requests: list[BlockingStream] = []
        self.conn = SteppedBlockingConnection(
            clock,
            self.sock,
            client_side=client_side,
            options=options,
            on_request=self.requests.append if accept_requests else None,
        )
        self.session = self.conn.session
        self.connected = False
        self.lost = False

    def connection_made(self, peer: Any) -> None:
        self.connected = True
        with self.conn.cond:
            ok = self.session.connection_made(peer, None)
        assert ok
        self.conn.flush()

    def take_output(self) -> bytes:
        data = bytes(self.sock.sent)
        self.sock.sent.clear()
        return data

    def unrequested_output(self) -> bool:
        return False  # whoever queues flushes (or is corked, and will)

    def timer_due(self) -> Optional[float]:
        return self.session.timer_deadline()  # its read loop looks again on every pass

    def timer_problem(self) -> Optional[str]:
        return None

    @property
    def closed_by_us(self) -> bool:
        return self.sock.shut_write

    @property
    def aborted(self) -> bool:
        return self.sock.shut_both

    def deliver(self, data: bytes) -> None:
        conn = self.conn
        with conn.cond:
            self.session.data_received(data)
        deferred, conn._deferred = conn._deferred, []
        for callback in deferred:
            callback()
        if not self.sock.in_sendall:
            # Inside a sendall the writer holds the write lock and carries on with whatever
            # these bytes made us queue (a reader thread's flush would just find nothing left).
            conn.flush()

    def on_timer(self) -> None:
        conn = self.conn
        with conn.cond:
            deadline = self.session.timer_deadline()
            if deadline is not None and conn.now() >= deadline:
                self.session.on_timer()
        conn.flush()

    def connection_lost(self) -> None:
        if not self.lost:
            self.lost = True
            self.conn._closed = True
            with self.conn.cond:
                self.session.connection_lost(None)


End = Union[FakeEnd, BlockingEnd]


class SessionPair:
    """A client session and a server session over an in-memory link, on a fake clock.

    ``client``/``server`` are the sessions, ``client_driver``/``server_driver`` their fake
    drivers (``blocking_client``/``blocking_server=True`` makes that side a ``BlockingEnd``;
    its ``conn`` is then the ``BlockingConnection``). ``instant=True`` pumps the link from
    inside every write of a blocking side, so a peer's answer (its WINDOW_UPDATE, say) arrives
    before the write returns: a thread that must not wait never has to.
    """

    def __init__(
        self,
        client_options: Optional[ConnectionOptions] = None,
        server_options: Optional[ConnectionOptions] = None,
        *,
        connect: bool = True,
        accept_requests: bool = True,
        blocking_client: bool = False,
        blocking_server: bool = False,
        instant: bool = False,
    ) -> None:
        self.clock = FakeClock()
        client_cls = BlockingEnd if blocking_client else FakeEnd
        server_cls = BlockingEnd if blocking_server else FakeEnd
        self.client_end: End = client_cls(self.clock, client_side=True, options=client_options)
        self.server_end: End = server_cls(
            self.clock, client_side=False, options=server_options, accept_requests=accept_requests
        )
        self.client = self.client_end.session
        self.server = self.server_end.session
        #: Frames each side wrote that reached the link (held ones included).
        self.client_log = FrameLog(expect_preface=True)
        self.server_log = FrameLog(expect_preface=False)
        self._to_server = bytearray()
        self._to_client = bytearray()
        self._held: set[str] = set()
        self.link_closed = False
        self._pumping = False
        if instant:
            for end in (self.client_end, self.server_end):
                if isinstance(end, BlockingEnd):
                    end.sock.on_send = self.pump
        if connect:
            self.connect()

    # ---------------------------------------------------------------- the two sides

    @property
    def client_driver(self) -> FakeDriver:
        assert isinstance(self.client_end, FakeEnd)
        return self.client_end.driver

    @property
    def server_driver(self) -> FakeDriver:
        assert isinstance(self.server_end, FakeEnd)
        return self.server_end.driver

    def connect(self) -> None:
        """Both sockets are up: each side sends its preface and SETTINGS; pump."""
        self.server_end.connection_made(("127.0.0.1", 50051))
        self.client_end.connection_made(("127.0.0.1", 40000))
        self.pump()

    def take_requests(self) -> list[Any]:
        """Server role: the streams whose request came in since the last call."""
        end = self.server_end
        requests = end.driver.requests if isinstance(end, FakeEnd) else end.requests
        taken = list(requests)
        requests.clear()
        return taken

    def open(self, headers: Headers, *, end_stream: bool = False) -> Any:
        """Client role: open a stream (a ``FakeStream`` or ``BlockingStream``) and pump."""
        stream = self.client.open_stream(headers, end_stream=end_stream)
        if isinstance(self.client_end, BlockingEnd):
            self.client_end.conn.flush()
        self.pump()
        return stream

    # ---------------------------------------------------------------- the link

    def hold(self, side: str) -> None:
        """What ``side`` ("client" or "server") writes stays on the link until ``release``."""
        assert side in ("client", "server")
        self._held.add(side)

    def release(self, side: str) -> None:
        self._held.discard(side)
        self.pump()

    def pump(self) -> int:
        """Move bytes both ways until both sides are quiet; the number of bytes delivered."""
        if self._pumping:  # a blocking side's write, inside a pump: the outer loop goes on
            return 0
        self._pumping = True
        try:
            return self._pump()
        finally:
            self._pumping = False

    def _pump(self) -> int:
        moved = 0
        client, server = self.client_end, self.server_end
        for _ in range(100_000):
            if self.link_closed:
                return moved
            if client.aborted or server.aborted:
                self._close_link()
                return moved
            progress = False
            data = client.take_output()
            if data:
                self.client_log.feed(data)
                self._to_server += data
            data = server.take_output()
            if data:
                self.server_log.feed(data)
                self._to_client += data
            # Bytes wait on the link while the receiver's socket is not up yet.
            if self._to_server and "client" not in self._held and server.connected:
                data, self._to_server = bytes(self._to_server), bytearray()
                moved += len(data)
                server.deliver(data)
                progress = True
            if self._to_client and "server" not in self._held and client.connected:
                data, self._to_client = bytes(self._to_client), bytearray()
                moved += len(data)
                client.deliver(data)
                progress = True
            if progress:
                continue
            for end in (client, server):
                # Quiet, so everything it wrote was taken above: once delivered, close.
                if end.closed_by_us and not self._unsent(end):
                    self._close_link()
                    return moved
            for name, end in (("client", client), ("server", server)):
                if end.unrequested_output():
                    raise AssertionError(
                        f"the {name} session queued {end.session.core.pending_output()} bytes "
                        "without asking its driver to send them"
                    )
                problem = end.timer_problem()
                if problem is not None:
                    raise AssertionError(f"the {name} session's timer: {problem}")
            return moved
        raise AssertionError("link never went quiet")

    def _unsent(self, end: End) -> bool:
        buffer = self._to_server if end is self.client_end else self._to_client
        return bool(buffer)

    def _close_link(self) -> None:
        """The connection is gone: anything unsent is dropped, both sides learn of it."""
        self.link_closed = True
        self._to_server.clear()
        self._to_client.clear()
        self.client_end.connection_lost()
        self.server_end.connection_lost()

    # ---------------------------------------------------------------- time

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, firing each timer at its own deadline, pumping after."""
        end = self.clock.now + seconds
        ends = (self.client_end, self.server_end)
        for _ in range(10_000):
            due = [d for d in (e.timer_due() for e in ends) if d is not None and d <= end]
            if not due or self.link_closed:
                break
            self.clock.now = max(self.clock.now, min(due))
            self.client_end.on_timer()
            self.server_end.on_timer()
            self.pump()
            if any(d is not None and d <= self.clock.now for d in (e.timer_due() for e in ends)):
                raise AssertionError("a timer fired and is still due: it would spin")
        else:
            raise AssertionError("timers never settled")
        self.clock.now = end
        self.pump()

    # ---------------------------------------------------------------- what crossed the link

    def frames(self, side: str, kind: Optional[str] = None) -> list[Frame]:
        """Frames ``side`` wrote onto the link, all or those of one type ("PING", ...)."""
        log = self.client_log if side == "client" else self.server_log
        return [f for f in log.frames if kind is None or f.type == kind]
