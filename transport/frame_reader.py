"""Incoming bytes split into frames here; h2 still decides what every frame means.

h2's ``receive_data`` runs each frame through its ``FrameBuffer``: the bytes are appended to a
buffer (a copy), the 9-byte header becomes a hyperframe object with a set-based ``Flags``, the
payload is sliced out (a second copy), turned into ``bytes`` (a third) and deleted from the
front of the buffer (on h2 4.3, PyPy's version, a fourth: the whole rest of the buffer moves).
For the two frames gRPC is made of, that parsing is a large part of h2's receive path, and for
bulk DATA the copies are most of it.

``FrameReader`` finds the frame boundaries itself and, for DATA and for HEADERS that carry a
whole header block (END_HEADERS, no padding, no priority), builds the same hyperframe frame
object directly from the payload (one copy, no ``Flags``) and hands it to h2's own per-frame
handler, ``H2Connection._receive_frame``: the state machines, flow-control accounting, HPACK
decoding, error handling and automatic replies are all h2's, exactly as if h2 had parsed the
frame. Every other frame (SETTINGS, WINDOW_UPDATE, PING, RST_STREAM, GOAWAY, padded or
prioritised frames, CONTINUATION sequences, the client preface) goes to ``h2.receive_data``
as the bytes it came in, so h2 parses and validates it as ever.
"""

from __future__ import annotations

import struct
from typing import Any, Optional, Union

import h2.connection
import h2.exceptions
from hyperframe.frame import DataFrame, HeadersFrame

__all__ = ["FrameReader"]

Bytes = Union[bytes, bytearray, memoryview]

_DATA, _HEADERS = 0x0, 0x1
_END_STREAM, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x4, 0x8, 0x20
_unpack_head = struct.Struct(">IBI").unpack_from  # length+type, flags, stream id

# What h2's handlers ask of ``frame.flags`` is ``"NAME" in frame.flags``: a frozenset answers it.
_DATA_FLAGS: tuple[frozenset[str], ...] = (frozenset(), frozenset({"END_STREAM"}))
_HEADERS_FLAGS: tuple[frozenset[str], ...] = (
    frozenset({"END_HEADERS"}),
    frozenset({"END_HEADERS", "END_STREAM"}),
)


class ReceivedDataFrame(DataFrame):
    """A DATA frame built by the reader. h2's ``_receive_frame`` formats ``repr(frame)`` for its
    trace logger, which our connections never configure; hyperframe's repr hex-encodes the
    whole payload, a cost per byte received. This subclass's repr is a constant (nothing to
    format per frame; h2rpc's own tracer shows frames in full), and only our own
    connections see it: ``FrameReader`` maps it to h2's DATA handler in its connection's
    dispatch table.
    """

    def __repr__(self) -> str:
        return "DataFrame(received by h2rpc's frame reader)"


class ReceivedHeadersFrame(HeadersFrame):
    """A HEADERS frame built by the reader, with a cheap repr (see ``ReceivedDataFrame``)."""

    def __repr__(self) -> str:
        return "HeadersFrame(received by h2rpc's frame reader)"


#: Our frame classes and the h2 class whose handler takes each (``FrameReader`` registers them).
RECEIVED_FRAME_CLASSES = ((ReceivedDataFrame, DataFrame), (ReceivedHeadersFrame, HeadersFrame))

_new_data_frame = ReceivedDataFrame.__new__
_new_headers_frame = ReceivedHeadersFrame.__new__


def _left_to_h2(kind: int, flags: int, stream_id: int, length: int, max_size: int) -> bool:
    """Whether h2 parses (and judges) a frame of this header: anything but DATA and a whole,
    unpadded, unprioritised HEADERS block on a stream, within our frame size."""
    return (
        kind > _HEADERS
        or not stream_id
        or bool(flags & _PADDED)
        or (kind == _HEADERS and flags & (_PRIORITY | _END_HEADERS) != _END_HEADERS)
        or length > max_size
    )


class FrameReader:
    """Feeds one ``H2Connection`` its incoming bytes, parsing DATA and HEADERS itself."""

    __slots__ = ("_conn", "_head", "_need", "_parts", "_to_h2")

    def __init__(self, conn: h2.connection.H2Connection, *, server_side: bool) -> None:
        self._conn = conn
        # The frames we build go to h2's own handlers; only this connection's table learns them.
        table = conn._frame_dispatch_table
        for ours, h2_class in RECEIVED_FRAME_CLASSES:
            table[ours] = table[h2_class]
        # A frame of ours that a read cut short: its header (or the first bytes of it), the
        # payload so far (copies: the driver's read buffer is reused) and how much is to come.
        self._head = b""
        self._parts: list[Bytes] = []
        self._need = 0
        # Bytes owed to h2 before the next frame boundary: the client preface (server side),
        # then the rest of any frame h2 parses that a read cut short.
        self._to_h2 = conn.incoming_buffer._preamble_len if server_side else 0

    def receive(self, data: Bytes) -> list[Any]:
        """What ``H2Connection.receive_data(data)`` returns, in the same order.

        ``data`` may be a view of a buffer the driver reuses: nothing of it is kept.
        """
        events: list[Any] = []
        view = memoryview(data)
        rest: Optional[memoryview] = view
        if self._to_h2:
            rest = self._give_h2(view, events)
        elif self._head:
            rest = self._finish_frame(view, events)
        if rest:
            self._frames(rest, events)
        return events

    def _frames(self, view: memoryview, events: list[Any]) -> None:
        """Take the frames of ``view`` in order; keep (or owe h2) what a read cut short."""
        conn = self._conn
        end = len(view)
        pos = 0  # start of the next frame
        slow = 0  # start of frames not yet handed to h2 (slow < pos: bytes for h2)
        header_buffer = conn.incoming_buffer._headers_buffer
        max_size = conn.max_inbound_frame_size
        while end - pos >= 9:
            word, flags, stream_id = _unpack_head(view, pos)
            length = word >> 8
            frame_end = pos + 9 + length
            kind = word & 0xFF
            stream_id &= 0x7FFFFFFF
            if header_buffer or _left_to_h2(kind, flags, stream_id, length, max_size):
                # h2 parses this one (and judges it: errors are found where h2 finds them).
                if frame_end > end:
                    self._to_h2 = frame_end - end
                    pos = end
                    break
                pos = frame_end
                continue
            if slow < pos:
                events += conn.receive_data(view[slow:pos])
                slow = pos
                header_buffer = conn.incoming_buffer._headers_buffer
                if header_buffer:  # a header block continues: h2 takes this frame too
                    continue
            if frame_end > end:
                self._head = bytes(view[pos : pos + 9])
                self._parts = [bytes(view[pos + 9 :])]
                self._need = frame_end - end
                return
            payload = bytes(view[pos + 9 : frame_end])
            pos = slow = frame_end
            events += self._deliver(kind, flags, stream_id, payload)
        if slow < pos:
            events += conn.receive_data(view[slow:pos])
        if pos < end:
            self._head = bytes(view[pos:])  # the first bytes of a frame header

    def _give_h2(self, view: memoryview, events: list[Any]) -> memoryview:
        """Hand h2 the bytes it is owed; the rest of ``view``."""
        taken = min(self._to_h2, len(view))
        self._to_h2 -= taken
        events += self._conn.receive_data(view[:taken])
        return view[taken:]

    def _finish_frame(self, view: memoryview, events: list[Any]) -> Optional[memoryview]:
        """Go on with a frame an earlier read cut short; the rest of ``view``, or None."""
        head = self._head
        if len(head) < 9:  # its header is not complete yet
            missing = 9 - len(head)
            head += bytes(view[:missing])
            view = view[missing:]
            if len(head) < 9:
                self._head = head
                return None
            word, flags, stream_id = _unpack_head(head)
            stream_id &= 0x7FFFFFFF
            self._head = b""
            conn = self._conn
            length = word >> 8
            if conn.incoming_buffer._headers_buffer or _left_to_h2(
                word & 0xFF, flags, stream_id, length, conn.max_inbound_frame_size
            ):
                events += conn.receive_data(head)
                self._to_h2 = length
                return self._give_h2(view, events)
            self._head = head
            self._parts = []
            self._need = length
        need = self._need
        if len(view) < need:
            self._parts.append(bytes(view))
            self._need = need - len(view)
            return None
        parts = self._parts
        parts.append(view[:need])
        payload = b"".join(parts)
        head = self._head
        self._head = b""
        self._parts = []
        word, flags, stream_id = _unpack_head(head)
        stream_id &= 0x7FFFFFFF
        if self._conn.incoming_buffer._headers_buffer:  # h2 must see it (and refuse it)
            events += self._conn.receive_data(head + payload)
        else:
            events += self._deliver(word & 0xFF, flags, stream_id, payload)
        return view[need:]

    def _deliver(self, kind: int, flags: int, stream_id: int, payload: bytes) -> list[Any]:
        """Build the frame h2 would have parsed and give it to h2's handler."""
        frame: Any
        if kind == _DATA:
            frame = _new_data_frame(ReceivedDataFrame)
            frame.flags = _DATA_FLAGS[flags & _END_STREAM]
            frame.pad_length = 0
        else:
            frame = _new_headers_frame(ReceivedHeadersFrame)
            frame.flags = _HEADERS_FLAGS[flags & _END_STREAM]
            frame.pad_length = 0
            frame.depends_on = 0
            frame.stream_weight = 0
            frame.exclusive = False
        frame.stream_id = stream_id
        frame.body_len = len(payload)
        frame.data = payload
        conn = self._conn
        try:
            return conn._receive_frame(frame)
        except h2.exceptions.ProtocolError as exc:
            # As h2's own receive_data: a GOAWAY with the error's code, then the error.
            conn._terminate_connection(exc.error_code)
            raise
