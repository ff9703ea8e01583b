"""The sans-I/O HTTP/2 connection core, shared by the asyncio and blocking drivers.

Bytes and commands go in; events and bytes come out. It wraps ``h2.connection.H2Connection`` and
adds the two things h2 deliberately leaves to its user:

* **Outbound buffering under flow control.** h2 refuses to send beyond the peer's window, so the
  core queues each stream's outbound bytes (and its END_STREAM or trailers, which must follow the
  data) and releases them as WINDOW_UPDATE and SETTINGS frames open the windows, frame by frame
  within the peer's SETTINGS_MAX_FRAME_SIZE.
* **Translation of h2's events** into the transport's own small event set (``transport.events``),
  dropping what gRPC has no use for (server push, priority, ALTSVC).

It owns no socket, no clock and no threads, so both drivers (and the tests) drive the very same
protocol decisions.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import Any, Callable, Optional, Union

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack

# hyperframe is h2's own frame layer (a dependency of h2 itself). Here it builds the frames sent
# past h2's state machine (GOAWAY, which h2 would treat as the end of the connection, and the
# PING after a graceful shutdown's first GOAWAY), and its GoAwayFrame class is the key under
# which our GOAWAY handler replaces h2's. ``frame_reader.py`` builds the received DATA and
# HEADERS frames it hands to h2's handlers as hyperframe objects; ``frame_writer.py`` packs
# frame headers itself.
from hyperframe.frame import GoAwayFrame, PingFrame

from codec.http2_errors import (
    CANCEL,
    COMPRESSION_ERROR,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
)

from .errors import LocalProtocolError, RemoteProtocolError
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
from .frame_reader import FrameReader
from .frame_writer import send_data_frame, send_headers_frame
from .guard import FrameGuard, Violation
from .h2_config import FastConfiguration
from .hpack_blocks import BlockCache, PreEncodingEncoder
from .hpack_decode import CachingDecoder
from .options import HTTP2_DEFAULT_WINDOW, ConnectionOptions
from .output_buffer import OutputPieces
from .reset_streams import IgnoringResetStreams
from .validation import check_request, check_response, check_trailers
from .wiretap import open_tap

#: Header block verdicts remembered per connection (forgotten all at once when full).
MAX_VERDICTS = 64

#: The largest HPACK dynamic table our encoder keeps, whatever the peer's SETTINGS allow.
MAX_ENCODER_TABLE = 16 * 1024

log = logging.getLogger(__name__)

Bytes = Union[bytes, bytearray, memoryview]

_S = h2.settings.SettingCodes

#: The highest stream id there can be: the last-stream-id of a shutdown's first GOAWAY.
MAX_STREAM_ID = 2**31 - 1
#: The opaque data of the PING that follows a graceful shutdown's first GOAWAY. Keepalive PINGs
#: carry a counter (``keepalive.py``), whose first bytes are zero: never this.
SHUTDOWN_PING_DATA = b"h2rpc-gs"


class _Outbound:
    """A stream's queued outbound bytes, and what must follow them once they are all sent."""

    __slots__ = ("chunks", "end_stream", "size", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[memoryview] = deque()
        self.size = 0
        self.end_stream = False
        self.trailers: Optional[Headers] = None


class ConnectionCore:
    """One HTTP/2 connection's protocol state, for the client or the server role."""

    def __init__(self, *, client_side: bool, options: Optional[ConnectionOptions] = None) -> None:
        self.options = options = options or ConnectionOptions()
        self.client_side = client_side
        # Inbound header validation is ours (validation.py): stream errors, one pass. Outbound
        # blocks are built by the codec from validated parts (names lowercase, values checked),
        # so h2's outbound validation and normalisation would only repeat the work.
        config = FastConfiguration(
            client_side=client_side,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        # h2's connection, but frames on a stream we reset are ignored for a while, as RFC 9113
        # §5.1 says, instead of answered with RST_STREAM(STREAM_CLOSED) (reset_streams.py).
        conn = IgnoringResetStreams(config)
        # Header blocks are encoded once and reused (hpack_blocks.py).
        self._encoder = conn.encoder = PreEncodingEncoder(conn.encoder)  # type: ignore[assignment]
        self._blocks = BlockCache()
        self._preencode = options.reuse_header_blocks
        # Our SETTINGS are taken as in force from the start: a peer may only be *less* constrained
        # than we assume until it has seen them, never more.
        initial: dict[_S, int] = {
            _S.INITIAL_WINDOW_SIZE: options.initial_window_size,
            _S.MAX_FRAME_SIZE: options.max_frame_size,
            _S.MAX_CONCURRENT_STREAMS: options.max_concurrent_streams,
            _S.MAX_HEADER_LIST_SIZE: options.max_header_list_size,
        }
        if client_side:
            initial[_S.ENABLE_PUSH] = 0  # gRPC never uses server push.
        conn.local_settings = h2.settings.Settings(client=client_side, initial_values=initial)
        conn.max_inbound_frame_size = options.max_frame_size
        # h2 sized its frame buffer from its default (16 MiB): frames above our
        # SETTINGS_MAX_FRAME_SIZE must be refused from their header, before their payload.
        conn.incoming_buffer.max_frame_size = options.max_frame_size
        # HPACK stops decoding at the hard cap (a connection error: the table state is lost);
        # below it, a list above our advertised limit fails only its stream (_oversized).
        conn.decoder = CachingDecoder()  # repeated header blocks are decoded once
        conn.decoder.max_header_list_size = 4 * options.max_header_list_size
        self._guard = FrameGuard(options, server_side=not client_side)
        #: Wire tracing and capture (transport.wiretap): None unless asked for; then fed every
        #: byte in and out.
        self._tracer = open_tap([options.tracer, options.capture], client_side=client_side)
        # h2 treats GOAWAY as the end of the connection, in both directions: after receiving one
        # it refuses to send anything, so in-flight calls could not finish. gRPC needs the
        # graceful form (RFC 9113 §6.8): streams up to last-stream-id go on. So GOAWAY is
        # received here, as information, and sent by ``goaway()`` without closing h2's state.
        conn._frame_dispatch_table[GoAwayFrame] = self._receive_goaway_frame
        conn._data_to_send = OutputPieces()  # type: ignore[assignment]
        self._h2 = conn
        self._reader = FrameReader(conn, server_side=not client_side)
        self._outbound: dict[int, _Outbound] = {}
        #: The verdicts of ``_rejected`` on header blocks seen, by (check, fields).
        self._verdicts: dict[tuple[Any, tuple[Any, ...]], int] = {}
        self._extra_out = b""
        #: The last-stream-id of the graceful GOAWAY we sent, if any: later streams are refused.
        self.goaway_sent_last_stream_id: Optional[int] = None
        #: A graceful shutdown waits for the ACK of its PING until then (see ``shut_down``).
        self.shutdown_deadline: Optional[float] = None
        self._shutdown_data = b""
        self.goaway_received = False
        self.closed = False
        #: The peer's first SETTINGS frame has arrived: its limits are known.
        self.settings_received = False

    # ------------------------------------------------------------------ connection level

    def initiate(self) -> None:
        """Queue the preface (client) and our SETTINGS, and open the connection window wide."""
        conn = self._h2
        conn.initiate_connection()
        if not self.client_side:
            # We advertise max_concurrent_streams and refuse streams beyond it with REFUSED_STREAM
            # (a retryable stream error, RFC 9113 §5.1.2); h2 itself would kill the whole
            # connection, so its own limit is set above ours, as a last line against floods.
            advertised = self.options.max_concurrent_streams
            enforced = {_S(code): value for code, value in conn.local_settings.items()}
            enforced[_S.MAX_CONCURRENT_STREAMS] = min(
                2**31 - 1, max(2 * advertised, advertised + 100)
            )
            conn.local_settings = h2.settings.Settings(client=False, initial_values=enforced)
        extra = self.options.connection_window_size - HTTP2_DEFAULT_WINDOW
        if extra > 0:
            self._h2.increment_flow_control_window(extra)

    def socket_opened(self, local: object, peer: object) -> None:
        """The driver's socket is up (its ``getsockname()`` and ``getpeername()``): for a tap."""
        if self._tracer is not None:
            self._tracer.socket_opened(local, peer)

    def socket_closed(self) -> None:
        """The driver's socket is gone: a tap sees no more bytes."""
        if self._tracer is not None:
            self._tracer.socket_closed()

    def pending_output(self) -> int:
        """Bytes queued for the wire and not yet taken by ``data_to_send``."""
        return len(self._h2._data_to_send) + len(self._extra_out)

    def data_to_send(self) -> bytes:
        """Everything queued for the wire since the last call (possibly ``b""``)."""
        pending = self._h2._data_to_send
        if isinstance(pending, OutputPieces):
            data = pending.take()
        else:  # h2 put a bytearray back (clear_outbound_data_buffer): ours goes in again
            data = bytes(pending)
            self._h2._data_to_send = OutputPieces()  # type: ignore[assignment]
        if self._extra_out:
            data, self._extra_out = data + self._extra_out, b""
        if self._tracer is not None:
            self._tracer.bytes_out(data)
        return data

    def receive_data(self, data: Bytes, now: float = 0.0) -> list[Event]:
        """Feed bytes read from the socket (at time ``now``); return what they meant, in order.

        Raises ``RemoteProtocolError`` when the peer broke HTTP/2 or crossed a flood limit: a
        GOAWAY with the right error code is then queued, which the driver must still flush
        before closing the socket.
        """
        if self._tracer is not None:
            self._tracer.bytes_in(data)
        try:
            self._guard.feed(data, now)
        except Violation as exc:
            self.close(exc.error_code, exc.message.encode())
            raise RemoteProtocolError(exc.message) from None
        self._h2.now = now
        try:
            h2_events = self._reader.receive(data)
        except h2.exceptions.ProtocolError as exc:
            self.closed = True
            if isinstance(exc.__cause__, hpack.HPACKError):
                # HPACK decoding failed: RFC 9113 §4.3 says COMPRESSION_ERROR, where h2 says
                # PROTOCOL_ERROR. The connection is over either way; say it right.
                self._h2.clear_outbound_data_buffer()
                frame = GoAwayFrame(0)
                frame.last_stream_id = self._h2.highest_inbound_stream_id
                frame.error_code = COMPRESSION_ERROR
                self._extra_out += frame.serialize()
            raise RemoteProtocolError(str(exc) or type(exc).__name__) from exc
        return self._translate(h2_events)

    def goaway(self, error_code: int = 0, additional_data: bytes = b"") -> None:
        """Queue a graceful GOAWAY: streams opened so far go on, later ones are refused.

        The connection stays usable for the streams at or below the last-stream-id we announce;
        the peer opens new ones elsewhere. Sending it again only repeats the same id. This is
        the one-step form: streams the peer opened before it read the GOAWAY are refused (and
        retried elsewhere); ``shut_down`` avoids that race.
        """
        if self.closed:
            return
        self.shutdown_deadline = None
        last = self._h2.highest_inbound_stream_id
        if self.goaway_sent_last_stream_id is not None:
            last = min(last, self.goaway_sent_last_stream_id)
        self._send_goaway(last, error_code, additional_data)

    def shut_down(self, now: float, timeout: float, additional_data: bytes = b"") -> None:
        """Begin a graceful shutdown (server role), the two-step way of RFC 9113 §6.8.

        First a GOAWAY with last-stream-id 2^31-1 and NO_ERROR, followed by a PING: the peer
        learns to open no more streams here, and every stream it opened before it read the
        GOAWAY is still accepted. Its ACK of the PING, which it sends after reading both, marks
        the point after which no such stream can still be on its way: then the final GOAWAY
        names the highest stream really accepted, and later ones are refused. If no ACK comes
        by ``now + timeout`` (``shutdown_deadline``; the driver calls ``on_timer``), the final
        GOAWAY goes out anyway. grpc-go and grpc-core shut down the same way.

        A client has no streams of its peer to wait for: it sends the final GOAWAY at once.
        Calling this again, or after a GOAWAY, does nothing more. ``additional_data`` is the
        debug data of both GOAWAYs (grpc says why: "max_idle", "max_age").
        """
        if self.closed or self.goaway_sent_last_stream_id is not None:
            return
        if self.client_side:
            self.goaway(0, additional_data)
            return
        self._shutdown_data = additional_data
        self._send_goaway(MAX_STREAM_ID, 0, additional_data)
        ping = PingFrame(0)
        ping.opaque_data = SHUTDOWN_PING_DATA
        self._h2._data_to_send += ping.serialize()
        self.shutdown_deadline = now + timeout

    @property
    def draining(self) -> bool:
        """A graceful shutdown waits for its PING's ACK: the peer may still open streams."""
        return self.shutdown_deadline is not None and not self.closed

    def on_timer(self, now: float) -> None:
        """The driver's timer: a graceful shutdown whose PING went unanswered goes on."""
        deadline = self.shutdown_deadline
        if deadline is not None and now >= deadline:
            log.debug("no ACK of the shutdown PING in time: sending the final GOAWAY")
            self.goaway(0, self._shutdown_data)

    def _send_goaway(self, last: int, error_code: int, additional_data: bytes) -> None:
        self.goaway_sent_last_stream_id = last
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = error_code
        frame.additional_data = additional_data
        # Into h2's own output, so that it leaves in order with the frames around it.
        self._h2._data_to_send += frame.serialize()

    def send_ping(self, data: bytes) -> None:
        """Queue a PING with 8 bytes of opaque data; the peer's ACK becomes PingAcknowledged."""
        self._h2.ping(data)

    def finish(self) -> None:
        """Close after a graceful shutdown's final GOAWAY (no stream left, or none to wait
        for): that GOAWAY already said everything, so no frame is sent; nothing more will be."""
        if self.goaway_sent_last_stream_id is None or self.draining:
            self.close()
            return
        self.closed = True
        self.shutdown_deadline = None

    def close(self, error_code: int = 0, additional_data: Optional[bytes] = None) -> None:
        """Queue a final GOAWAY; nothing more is sent or accepted on this connection."""
        if self.closed:
            return
        self.closed = True
        self.shutdown_deadline = None
        # The last-stream-id of a later GOAWAY must not exceed an earlier one's (RFC 9113 §6.8).
        last = self._h2.highest_inbound_stream_id
        if self.goaway_sent_last_stream_id is not None:
            last = min(last, self.goaway_sent_last_stream_id)
        try:
            self._h2.close_connection(
                error_code=error_code, additional_data=additional_data, last_stream_id=last
            )
        except h2.exceptions.ProtocolError:  # already closed by a GOAWAY of the peer
            pass

    @property
    def open_outbound_streams(self) -> int:
        return self._h2.open_outbound_streams

    @property
    def max_outbound_streams(self) -> int:
        """The peer's SETTINGS_MAX_CONCURRENT_STREAMS: how many streams we may have open."""
        return self._h2.remote_settings.max_concurrent_streams

    # ------------------------------------------------------------------ stream commands

    def next_stream_id(self) -> int:
        return self._h2.get_next_available_stream_id()

    def send_headers(self, stream_id: int, headers: Headers, *, end_stream: bool = False) -> None:
        """Send a header block now (request or response headers: they precede any data)."""
        try:
            self._send_header_block(stream_id, headers, end_stream)
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(str(exc) or type(exc).__name__) from exc

    def _send_header_block(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        if self._preencode:
            block = self._blocks.get(headers)
            if send_headers_frame(self._h2, stream_id, headers, block, end_stream):
                return
            self._encoder.next_block = block
        try:
            self._h2.send_headers(stream_id, headers, end_stream=end_stream)
        finally:
            self._encoder.next_block = None

    def send_data(self, stream_id: int, data: Bytes, *, end_stream: bool = False) -> None:
        """Queue body bytes; they go out as far as the flow-control windows allow right now."""
        out = self._outbound.get(stream_id)
        if out is None:
            out = self._outbound[stream_id] = _Outbound()
        elif out.end_stream or out.trailers is not None:
            raise LocalProtocolError(f"stream {stream_id} was already ended")
        if data:
            out.chunks.append(data if isinstance(data, memoryview) else memoryview(data))
            out.size += len(data)
        if end_stream:
            out.end_stream = True
        self._flush_stream(stream_id, out)

    def end_stream(self, stream_id: int) -> None:
        """Half-close our side once every queued byte of the stream has been sent."""
        self.send_data(stream_id, b"", end_stream=True)

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Queue a trailing header block that ends the stream after the queued data."""
        out = self._outbound.get(stream_id)
        if out is None:
            out = self._outbound[stream_id] = _Outbound()
        elif out.end_stream or out.trailers is not None:
            raise LocalProtocolError(f"stream {stream_id} was already ended")
        out.trailers = headers
        self._flush_stream(stream_id, out)

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        """Send RST_STREAM and forget the stream's queued bytes. A closed stream is left alone."""
        self._outbound.pop(stream_id, None)
        with contextlib.suppress(
            h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError
        ):
            self._h2.reset_stream(stream_id, error_code)

    def acknowledge_received_data(self, stream_id: int, length: int) -> None:
        """The application consumed ``length`` flow-controlled bytes: give the peer credit back.

        h2's window manager batches the credit into WINDOW_UPDATE frames (at half a window), so
        calling this per chunk costs no extra frames.
        """
        if length:
            self._h2.acknowledge_received_data(length, stream_id)

    def pending_bytes(self, stream_id: int) -> int:
        """Bytes of this stream still queued here, waiting for window."""
        out = self._outbound.get(stream_id)
        return 0 if out is None else out.size

    def stream_is_closed(self, stream_id: int) -> bool:
        stream = self._h2.streams.get(stream_id)
        return stream is None or stream.closed

    # ------------------------------------------------------------------ internals

    def _flush_stream(self, stream_id: int, out: _Outbound) -> bool:
        """Send what the windows allow of one stream's queue; True if anything went out."""
        conn = self._h2
        sent = False
        chunks = out.chunks
        try:
            while chunks:
                stream = conn.streams.get(stream_id)
                if stream is None:  # h2 forgot it: its error says whether it closed or never was
                    conn.local_flow_control_window(stream_id)
                    return sent
                window = min(conn.outbound_flow_control_window, stream.outbound_flow_control_window)
                if window <= 0:
                    return sent
                room = min(window, conn.max_outbound_frame_size)
                chunk = chunks[0]
                if len(chunk) <= room:
                    chunks.popleft()
                    piece = chunk
                else:
                    piece = chunk[:room]
                    chunks[0] = chunk[room:]
                out.size -= len(piece)
                last = not chunks and out.end_stream and out.trailers is None
                send_data_frame(conn, stream, stream_id, piece, last)
                sent = True
                if last:
                    del self._outbound[stream_id]
                    self._response_complete(stream_id)
                    return sent
            if out.trailers is not None:
                self._send_header_block(stream_id, out.trailers, True)
                del self._outbound[stream_id]
                self._response_complete(stream_id)
            elif out.end_stream:
                conn.end_stream(stream_id)
                del self._outbound[stream_id]
                self._response_complete(stream_id)
        except h2.exceptions.StreamClosedError:
            # The peer reset the stream while we were sending; its queue is moot.
            self._outbound.pop(stream_id, None)
        except h2.exceptions.ProtocolError as exc:
            self._outbound.pop(stream_id, None)
            raise LocalProtocolError(str(exc) or type(exc).__name__) from exc
        return sent

    def _response_complete(self, stream_id: int) -> None:
        """Our side of the stream has ended. A server whose client is still sending tells it to
        stop, without error, as gRPC servers do (RFC 9113 §8.1)."""
        if not self.client_side and not self.stream_is_closed(stream_id):
            self._h2.reset_stream(stream_id, NO_ERROR)

    def _rejected(
        self,
        stream_id: int,
        headers: Headers,
        check: Callable[[Headers], Optional[str]],
    ) -> int:
        """Reset a stream whose header block is malformed or too large; its error code, or 0.

        Malformed (RFC 9113 §8.1.1) is PROTOCOL_ERROR. A list above our
        SETTINGS_MAX_HEADER_LIST_SIZE (name + value + 32 per field, §6.5.2) is ENHANCE_YOUR_CALM,
        which gRPC clients report as RESOURCE_EXHAUSTED. Either fails the stream only.
        """
        # Peers send the same blocks again and again (the decoder hands each repeat back as the
        # same field objects): the verdict on a block is remembered, a tuple hash instead of a
        # pass of Python over every field.
        verdicts = self._verdicts
        key = (check, tuple(headers))
        code = verdicts.get(key)
        if code is None:
            code = self._judge(stream_id, headers, check)
            if len(verdicts) >= MAX_VERDICTS:
                verdicts.clear()
            verdicts[key] = code
        if code:
            # (A block that ended the stream on both sides leaves nothing to reset: RST_STREAM
            # may not be sent on a closed stream; the stream fails here all the same.)
            self.reset_stream(stream_id, code)
        return code

    def _judge(
        self, stream_id: int, headers: Headers, check: Callable[[Headers], Optional[str]]
    ) -> int:
        problem = check(headers)
        code = 0
        if problem is not None:
            log.debug("stream %d: malformed header block: %s", stream_id, problem)
            code = PROTOCOL_ERROR
        else:
            size = 0
            for name, value in headers:
                size += len(name) + len(value) + 32
            if size > self.options.max_header_list_size:
                code = ENHANCE_YOUR_CALM
        return code

    def _streams_to_refuse(self, h2_events: list[h2.events.Event]) -> set[int]:
        """New streams of this batch to refuse: after our GOAWAY, or beyond our stream limit.

        h2 has already counted every stream of the batch as open, so the excess is taken from
        the newest ones: the streams a well-behaved peer would have opened last.
        """
        new = [ev.stream_id or 0 for ev in h2_events if isinstance(ev, h2.events.RequestReceived)]
        refused: set[int] = set()
        last = self.goaway_sent_last_stream_id
        if last is not None:
            refused.update(sid for sid in new if sid > last)
        excess = self._h2.open_inbound_streams - self.options.max_concurrent_streams
        if excess > 0:
            still_open = [sid for sid in new if not self.stream_is_closed(sid)]
            refused.update(still_open[-excess:])
        return refused

    def _receive_goaway_frame(self, frame: Any) -> tuple[list[Any], list[h2.events.Event]]:
        """GOAWAY as information: report it, but keep the connection's state open (see init)."""
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors._error_code_from_int(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    def _flush_all(self, events: list[Event]) -> None:
        for stream_id in list(self._outbound):
            out = self._outbound.get(stream_id)
            if out is not None and self._flush_stream(stream_id, out):
                events.append(StreamWritable(stream_id=stream_id))

    def _translate(self, h2_events: list[h2.events.Event]) -> list[Event]:
        events: list[Event] = []
        append = events.append
        refused: Optional[set[int]] = None
        for ev in h2_events:
            # Ordered by frequency: DATA dominates, then END_STREAM and WINDOW_UPDATE.
            if isinstance(ev, h2.events.DataReceived):
                append(
                    DataReceived(
                        stream_id=ev.stream_id or 0,
                        data=ev.data or b"",
                        flow_controlled_length=ev.flow_controlled_length or 0,
                    )
                )
            elif isinstance(ev, h2.events.StreamEnded):
                append(StreamEnded(stream_id=ev.stream_id or 0))
            elif isinstance(ev, h2.events.WindowUpdated):
                stream_id = ev.stream_id or 0
                if stream_id == 0:
                    self._flush_all(events)
                else:
                    out = self._outbound.get(stream_id)
                    if out is not None and self._flush_stream(stream_id, out):
                        append(StreamWritable(stream_id=stream_id))
            elif isinstance(ev, h2.events.RequestReceived):
                stream_id = ev.stream_id or 0
                if refused is None:
                    refused = self._streams_to_refuse(h2_events)
                if stream_id in refused:
                    self._outbound.pop(stream_id, None)
                    self._h2.reset_stream(stream_id, REFUSED_STREAM)
                    continue
                headers = _headers(ev.headers)
                if self._rejected(stream_id, headers, check_request):
                    continue
                append(RequestReceived(stream_id=stream_id, headers=headers))
            elif isinstance(ev, h2.events.ResponseReceived):
                stream_id = ev.stream_id or 0
                headers = _headers(ev.headers)
                code = self._rejected(stream_id, headers, check_response)
                if code:
                    append(StreamReset(stream_id=stream_id, error_code=code, remote=False))
                    continue
                append(ResponseReceived(stream_id=stream_id, headers=headers))
            elif isinstance(ev, h2.events.TrailersReceived):
                stream_id = ev.stream_id or 0
                headers = _headers(ev.headers)
                code = self._rejected(stream_id, headers, check_trailers)
                if code:
                    append(StreamReset(stream_id=stream_id, error_code=code, remote=False))
                    continue
                append(TrailersReceived(stream_id=stream_id, headers=headers))
            elif isinstance(ev, h2.events.RemoteSettingsChanged):
                self.settings_received = True
                table = ev.changed_settings.get(_S.HEADER_TABLE_SIZE)
                if table is not None:
                    # Our HPACK encoder may use any table up to the peer's size: keep it small,
                    # whatever the peer allows (its memory is ours).
                    encoder = self._encoder
                    encoder.header_table_size = min(encoder.header_table_size, MAX_ENCODER_TABLE)
                    if table.new_value < 4096:
                        # A smaller table must be acknowledged by a size update at the start of
                        # our next block (RFC 7541 §4.2): let hpack's encoder write every block.
                        self._preencode = False
                # A new SETTINGS_INITIAL_WINDOW_SIZE resizes every stream window at once.
                if _S.INITIAL_WINDOW_SIZE in ev.changed_settings:
                    self._flush_all(events)
            elif isinstance(ev, h2.events.StreamReset):
                stream_id = ev.stream_id or 0
                self._outbound.pop(stream_id, None)
                append(
                    StreamReset(
                        stream_id=stream_id,
                        error_code=int(ev.error_code or 0),
                        remote=ev.remote_reset,
                    )
                )
            elif isinstance(ev, h2.events.PingReceived):
                append(PingReceived(data=ev.ping_data or b""))
            elif isinstance(ev, h2.events.PingAckReceived):
                data = ev.ping_data or b""
                if data == SHUTDOWN_PING_DATA:
                    # Our shutdown PING's ACK, not a keepalive's: the peer has read the first
                    # GOAWAY, so every stream it will open is here. Name the last one.
                    if self.shutdown_deadline is not None:
                        self.goaway(0, self._shutdown_data)
                    continue
                append(PingAcknowledged(data=data))
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway_received = True
                append(
                    ConnectionTerminated(
                        error_code=int(ev.error_code or 0),
                        last_stream_id=ev.last_stream_id or 0,
                        additional_data=ev.additional_data or b"",
                    )
                )
            # PING, SETTINGS ACK, PRIORITY, unknown frames: h2 already answered what needs it.
        return events


def _headers(headers: object) -> Headers:
    """h2 gives (bytes, bytes) tuples when ``header_encoding`` is None; the list is ours to keep."""
    return headers  # type: ignore[return-value]
