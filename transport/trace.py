"""Wire tracing: every HTTP/2 frame and HPACK header block of one connection, decoded.

Off unless asked for. ``ConnectionCore`` holds an optional ``ConnectionTrace`` (made by the
``tracer`` of its ``ConnectionOptions``) and hands it every byte it reads and every byte it
writes, behind one ``is not None`` test per socket read or write: that is the whole cost when
tracing is off. Everything else happens here, on copies of those bytes:

* the bytes of each direction are buffered up to frame boundaries (after the client preface) and
  parsed with hyperframe, h2's own frame layer;
* header blocks (HEADERS + CONTINUATION fragments) are decoded by a mirror HPACK decoder that
  keeps its own copy of the sender's dynamic table, so it can tell how each field was
  represented (indexed, literal with or without indexing, never indexed), what was inserted,
  what was evicted and what size updates came;
* the flow-control windows are mirrored from the frames of both directions, so each DATA and
  WINDOW_UPDATE frame is shown with the windows as they are right after it (and, for a drawing
  of the windows over time, a HEADERS frame that opens a stream with the windows the stream
  starts with, a SETTINGS frame changing INITIAL_WINDOW_SIZE with what that did to open streams).

The tracer never raises into the connection: a byte stream it cannot parse is reported once as
an ``error`` event and no longer decoded. It knows HTTP/2, not gRPC: ``rpc._trace`` subclasses
``ConnectionTrace`` to decode the gRPC messages inside DATA frames (``on_header_block``,
``on_data``, ``on_stream_closed``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import h2.errors
import h2.settings
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

__all__ = [
    "PREFACE",
    "ConnectionTrace",
    "ConnectionTracer",
    "HpackMirror",
    "TraceEvent",
    "error_code_name",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

#: Frame and message bodies are shown up to this many bytes (hex) in events.
BODY_BYTES = 64

_DEFAULT_WINDOW = 65_535
_DEFAULT_TABLE_SIZE = 4096
_STATIC = HeaderTable.STATIC_TABLE
_STATIC_LEN = len(_STATIC)

_FRAME_NAMES = {
    0x0: "DATA",
    0x1: "HEADERS",
    0x2: "PRIORITY",
    0x3: "RST_STREAM",
    0x4: "SETTINGS",
    0x5: "PUSH_PROMISE",
    0x6: "PING",
    0x7: "GOAWAY",
    0x8: "WINDOW_UPDATE",
    0x9: "CONTINUATION",
    0xA: "ALTSVC",
}


def error_code_name(code: int) -> str:
    """``CANCEL`` for 8, ``0x1f`` for codes HTTP/2 does not define."""
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def _setting_name(code: int) -> str:
    try:
        return h2.settings.SettingCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def _text(value: bytes) -> str:
    """Header names and values as text: ASCII in practice; anything else escaped, never lost."""
    return value.decode("utf-8", "backslashreplace")


@dataclass
class TraceEvent:
    """One thing seen on the wire.

    ``kind`` is ``connection`` (a traced connection started), ``preface`` (the client's
    connection preface), ``frame`` (one HTTP/2 frame), ``headers`` (a complete header block,
    decoded), ``message`` (one gRPC message) or ``error`` (the tracer could not decode a byte
    stream). ``side`` is the end that recorded it (``client`` or ``server``; ``conn`` numbers
    the connections of each side from 1), ``direction`` is ``out`` (sent) or ``in`` (received),
    ``t`` is seconds since the connection started. The kind's own fields are in ``detail``, also
    readable as ``event["type"]``; ``to_dict()`` is the JSON form (see ``rpc.TRACE_JSON_SCHEMA``).
    """

    kind: str
    side: str
    conn: int
    direction: str
    t: float
    stream_id: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.detail[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.detail.get(key, default)

    @property
    def label(self) -> str:
        """``client#1``: which connection recorded it."""
        return f"{self.side}#{self.conn}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines form: the common fields, then the kind's own."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "side": self.side,
            "conn": self.conn,
            "dir": self.direction,
            "t": round(self.t, 6),
            "stream": self.stream_id,
        }
        out.update(self.detail)
        return out


class ConnectionTracer(Protocol):
    """What ``ConnectionOptions.tracer`` must be: a maker of one trace per connection."""

    def open_connection(self, *, client_side: bool) -> ConnectionTrace: ...


# ====================================================================== HPACK


class HpackMirror:
    """Decodes the header blocks of one direction, keeping its own copy of the dynamic table.

    Used only for tracing: it reports how each field was represented, never validates more
    than it needs to stay in step (the real decoder is h2's).
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[bytes, bytes]] = deque()
        self.size = 0
        self.max_size = _DEFAULT_TABLE_SIZE

    @property
    def entries(self) -> list[tuple[bytes, bytes]]:
        """The dynamic table, newest first (index 62 first)."""
        return list(self._entries)

    def decode(self, block: bytes) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]]:
        """Decode one complete header block: the ``headers`` event fields, and the header list."""
        headers: list[tuple[bytes, bytes]] = []
        fields: list[dict[str, Any]] = []
        evicted: list[dict[str, str]] = []
        updates: list[int] = []
        pos = 0
        n = len(block)
        while pos < n:
            start = pos
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                name, value = self._lookup(index)
                entry: dict[str, Any] = {
                    "name": _text(name),
                    "value": _text(value),
                    "rep": "indexed",
                    "index": index,
                    "table": "static" if index <= _STATIC_LEN else "dynamic",
                }
            elif byte & 0xE0 == 0x20:  # dynamic table size update
                new_size, pos = _integer(block, pos, 5)
                updates.append(new_size)
                self.max_size = new_size
                self._evict(evicted)
                continue
            else:
                if byte & 0x40:
                    rep, prefix = "literal-incremental", 6
                elif byte & 0x10:
                    rep, prefix = "literal-never-indexed", 4
                else:
                    rep, prefix = "literal-without-indexing", 4
                name_index, pos = _integer(block, pos, prefix)
                entry = {"rep": rep}
                if name_index:
                    name = self._lookup(name_index)[0]
                    entry["name_index"] = name_index
                    entry["table"] = "static" if name_index <= _STATIC_LEN else "dynamic"
                    name_huffman = False
                else:
                    name, name_huffman, pos = _string(block, pos)
                value, value_huffman, pos = _string(block, pos)
                entry = {"name": _text(name), "value": _text(value), **entry}
                entry["huffman"] = value_huffman or name_huffman
                if rep == "literal-incremental":
                    entry["inserted"] = self._insert(name, value, evicted)
            entry["bytes"] = block[start:pos].hex()
            fields.append(entry)
            headers.append((name, value))
        detail = {
            "fields": fields,
            "size_updates": updates,
            "evicted": evicted,
            "table": {"entries": len(self._entries), "size": self.size, "max_size": self.max_size},
        }
        return detail, headers

    def _lookup(self, index: int) -> tuple[bytes, bytes]:
        if 1 <= index <= _STATIC_LEN:
            return _STATIC[index - 1]
        offset = index - _STATIC_LEN - 1
        if 0 <= offset < len(self._entries):
            return self._entries[offset]
        raise ValueError(f"HPACK index {index} is not in the table")

    def _insert(self, name: bytes, value: bytes, evicted: list[dict[str, str]]) -> bool:
        """Add an entry (RFC 7541 §4.4); False if it is larger than the whole table."""
        size = len(name) + len(value) + 32
        if size > self.max_size:
            while self._entries:
                self._evict_oldest(evicted)
            return False
        self._entries.appendleft((name, value))
        self.size += size
        self._evict(evicted)
        return True

    def _evict(self, evicted: list[dict[str, str]]) -> None:
        while self.size > self.max_size and self._entries:
            self._evict_oldest(evicted)

    def _evict_oldest(self, evicted: list[dict[str, str]]) -> None:
        name, value = self._entries.pop()
        self.size -= len(name) + len(value) + 32
        evicted.append({"name": _text(name), "value": _text(value)})


def _integer(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    """An HPACK integer (RFC 7541 §5.1) at ``pos``: (value, position after it)."""
    mask = (1 << prefix) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("HPACK integer too long")


def _string(data: bytes, pos: int) -> tuple[bytes, bool, int]:
    """An HPACK string literal (RFC 7541 §5.2): (bytes, Huffman-coded?, position after it)."""
    huffman = bool(data[pos] & 0x80)
    length, pos = _integer(data, pos, 7)
    raw = data[pos : pos + length]
    if len(raw) < length:
        raise ValueError("HPACK string runs past the end of the header block")
    return (decode_huffman(raw) if huffman else raw), huffman, pos + length


# ====================================================================== frames


class _Direction:
    """One direction's byte stream: buffered to frame boundaries, and its HPACK state."""

    __slots__ = ("block", "broken", "buffer", "hpack", "preface")

    def __init__(self, preface: bool) -> None:
        self.buffer = bytearray()
        self.preface = preface  # the client preface is still to come first
        self.broken = False
        self.hpack = HpackMirror()
        #: A header block in progress: (stream id, frame type, END_STREAM, fragments).
        self.block: Optional[tuple[int, str, bool, list[bytes]]] = None


class _StreamState:
    __slots__ = ("blocks", "ended", "windows")

    def __init__(self, windows: dict[str, int]) -> None:
        self.windows = windows  # flow ("in"/"out") -> window
        self.ended: set[str] = set()  # directions that sent END_STREAM
        self.blocks: dict[str, int] = {"in": 0, "out": 0}  # header blocks seen per direction


class ConnectionTrace:
    """The trace of one connection: ``bytes_in``/``bytes_out`` are its only entry points.

    ``emit`` receives the events of each call as one list (so that a frame and the header
    block or messages it completed stay together even when many connections share a sink).
    ``kinds`` says which event kinds to emit (``frames``, ``headers``; subclasses add more);
    everything is decoded regardless, to keep the HPACK and flow-control mirrors in step.
    """

    def __init__(
        self,
        *,
        client_side: bool,
        conn: int,
        emit: Callable[[list[TraceEvent]], None],
        kinds: Iterable[str] = ("frames", "headers"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_side = client_side
        self.side = "client" if client_side else "server"
        self.conn = conn
        kinds = frozenset(kinds)
        self.kinds = kinds
        self._show_frames = "frames" in kinds
        self._show_headers = "headers" in kinds
        self._emit = emit
        self._clock = clock
        self._start = clock()
        self._now = 0.0
        self._batch: list[TraceEvent] = []
        self._dirs = {"in": _Direction(not client_side), "out": _Direction(client_side)}
        #: Flow-control mirror. "out": what we may still send; "in": what the peer may send.
        self.connection_window = {"in": _DEFAULT_WINDOW, "out": _DEFAULT_WINDOW}
        self.initial_window = {"in": _DEFAULT_WINDOW, "out": _DEFAULT_WINDOW}
        self._streams: dict[int, _StreamState] = {}
        self._opened = [0, 0]  # the highest stream id opened so far, even and odd
        self.record("connection", "", 0, {"role": self.side})
        self._flush()

    # ---------------------------------------------------------------- entry points

    def bytes_in(self, data: Any) -> None:
        """Bytes read from the socket, before h2 sees them."""
        self._feed("in", data)

    def bytes_out(self, data: Any) -> None:
        """Bytes about to be written to the socket."""
        self._feed("out", data)

    def socket_opened(self, local: object, peer: object) -> None:
        """The socket's addresses (``transport.wiretap``): not part of the decoded trace."""

    def socket_closed(self) -> None:
        """The connection is over (``transport.wiretap``)."""

    def stream_window(self, stream_id: int, flow: str) -> Optional[int]:
        """The mirrored window of an open stream for ``flow`` (``in`` or ``out``), if known."""
        stream = self._streams.get(stream_id)
        return None if stream is None else stream.windows[flow]

    # ---------------------------------------------------------------- for subclasses

    def record(self, kind: str, direction: str, stream_id: int, detail: dict[str, Any]) -> None:
        """Queue an event (emitted at the end of the current read or write)."""
        self._batch.append(
            TraceEvent(kind, self.side, self.conn, direction, self._now, stream_id, detail)
        )

    def on_header_block(
        self,
        direction: str,
        stream_id: int,
        block: str,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool,
    ) -> None:
        """A complete header block (``block``: request, response or trailers) was decoded."""

    def on_data(self, direction: str, stream_id: int, data: bytes, end_stream: bool) -> None:
        """A DATA frame's payload (padding removed)."""

    def on_stream_closed(self, stream_id: int) -> None:
        """Both sides ended the stream, or it was reset: forget it."""

    def is_client_sender(self, direction: str) -> bool:
        """True if frames going ``direction`` are sent by the client."""
        return (direction == "out") == self.client_side

    # ---------------------------------------------------------------- internals

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, []
            self._emit(batch)

    def _feed(self, direction: str, data: Any) -> None:
        state = self._dirs[direction]
        if state.broken or not data:
            return
        self._now = self._clock() - self._start
        try:
            buf = state.buffer
            buf += data
            pos = 0
            if state.preface:
                if len(buf) < len(PREFACE):
                    if PREFACE.startswith(bytes(buf)):
                        return
                    raise ValueError("the connection does not start with the HTTP/2 preface")
                if bytes(buf[: len(PREFACE)]) != PREFACE:
                    raise ValueError("the connection does not start with the HTTP/2 preface")
                state.preface = False
                pos = len(PREFACE)
                if self._show_frames:
                    self.record("preface", direction, 0, {"bytes": PREFACE.hex()})
            end_of_data = len(buf)
            while end_of_data - pos >= 9:
                length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                end = pos + 9 + length
                if end > end_of_data:
                    break
                self._frame(direction, state, bytes(buf[pos:end]))
                pos = end
            del buf[:pos]
        except Exception as exc:  # the tracer must never break the connection it watches
            state.broken = True
            state.buffer = bytearray()
            self.record(
                "error",
                direction,
                0,
                {"error": f"{type(exc).__name__}: {exc}; no more decoding of this direction"},
            )
        finally:
            self._flush()

    def _stream(self, stream_id: int) -> Optional[_StreamState]:
        """A stream's state, made when a frame opens it; None for a stream already closed."""
        stream = self._streams.get(stream_id)
        if stream is None and stream_id > self._opened[stream_id & 1]:
            self._opened[stream_id & 1] = stream_id
            stream = self._streams[stream_id] = _StreamState(dict(self.initial_window))
        return stream

    def _frame(self, direction: str, state: _Direction, raw: bytes) -> None:
        frame, length = Frame.parse_frame_header(memoryview(raw[:9]))
        frame.parse_body(memoryview(raw[9:]))
        sid = frame.stream_id
        flags = [name for name, _ in frame.defined_flags if name in frame.flags]
        type_code = int(frame.type or 0)
        window: dict[str, Any]
        detail: dict[str, Any] = {
            "type": _FRAME_NAMES.get(type_code, f"0x{type_code:x}"),
            "flags": flags,
            "length": length,
            "header": raw[:9].hex(),
            "body": raw[9 : 9 + BODY_BYTES].hex(),
        }
        if length > BODY_BYTES:
            detail["body_truncated"] = True
        #: A header block fragment: (frame type, fragment, END_STREAM, END_HEADERS).
        block: Optional[tuple[str, bytes, bool, bool]] = None
        data: Optional[bytes] = None
        closed = False
        end_stream = "END_STREAM" in frame.flags
        if isinstance(frame, DataFrame):
            size = frame.flow_controlled_length
            detail["data_length"] = len(frame.data)
            if "PADDED" in frame.flags:
                detail["padding"] = frame.pad_length
            self.connection_window[direction] -= size
            stream = self._stream(sid)
            window = {
                "flow": "send" if direction == "out" else "receive",
                "connection": self.connection_window[direction],
            }
            if stream is not None:
                stream.windows[direction] -= size
                window["stream"] = stream.windows[direction]
            detail["window"] = window
            data = frame.data
        elif isinstance(frame, HeadersFrame):
            if "PRIORITY" in frame.flags:
                detail["priority"] = _priority(frame)
            if sid not in self._streams and sid > self._opened[sid & 1]:
                # It opens the stream: the windows it starts with (later ones are on DATA frames).
                start = self.initial_window
                detail["stream_windows"] = {"send": start["out"], "receive": start["in"]}
            block = ("HEADERS", frame.data, end_stream, "END_HEADERS" in frame.flags)
        elif isinstance(frame, ContinuationFrame):
            block = ("CONTINUATION", frame.data, False, "END_HEADERS" in frame.flags)
        elif isinstance(frame, PushPromiseFrame):
            detail["promised_stream_id"] = frame.promised_stream_id
            block = ("PUSH_PROMISE", frame.data, False, "END_HEADERS" in frame.flags)
        elif isinstance(frame, SettingsFrame):
            detail["ack"] = "ACK" in frame.flags
            settings = {_setting_name(code): value for code, value in frame.settings.items()}
            detail["settings"] = settings
            initial = frame.settings.get(SettingsFrame.INITIAL_WINDOW_SIZE)
            if initial is not None:
                # The sender's setting governs the data sent *to* it.
                flow = "in" if direction == "out" else "out"
                delta = self._new_initial_window(flow, initial)
                detail["initial_window"] = {
                    "flow": "receive" if flow == "in" else "send",
                    "delta": delta,
                }
        elif isinstance(frame, WindowUpdateFrame):
            increment = frame.window_increment
            flow = "in" if direction == "out" else "out"  # credit for the opposite data flow
            detail["increment"] = increment
            window = {"flow": "receive" if flow == "in" else "send"}
            if sid == 0:
                self.connection_window[flow] += increment
                window["connection"] = self.connection_window[flow]
            else:
                stream_state = self._streams.get(sid)
                if stream_state is not None:
                    stream_state.windows[flow] += increment
                    window["stream"] = stream_state.windows[flow]
            detail["window"] = window
        elif isinstance(frame, PingFrame):
            detail["ack"] = "ACK" in frame.flags
            detail["payload"] = bytes(frame.opaque_data).hex()
        elif isinstance(frame, GoAwayFrame):
            detail["last_stream_id"] = frame.last_stream_id
            detail["error_code"] = frame.error_code
            detail["error"] = error_code_name(frame.error_code)
            detail["debug_data"] = _text(bytes(frame.additional_data or b""))
        elif isinstance(frame, RstStreamFrame):
            detail["error_code"] = frame.error_code
            detail["error"] = error_code_name(frame.error_code)
            closed = True
        elif isinstance(frame, PriorityFrame):
            detail["priority"] = _priority(frame)
        if self._show_frames:
            self.record("frame", direction, sid, detail)
        if block is not None:
            self._header_fragment(direction, state, sid, *block)
        if data is not None:
            self.on_data(direction, sid, data, end_stream)
            if end_stream:
                self._end(direction, sid)
        if closed:
            self._streams.pop(sid, None)
            self.on_stream_closed(sid)

    def _end(self, direction: str, sid: int) -> None:
        """END_STREAM went ``direction``; a stream ended both ways is forgotten."""
        stream = self._streams.get(sid)
        if stream is None:
            return
        stream.ended.add(direction)
        if len(stream.ended) == 2:
            del self._streams[sid]
            self.on_stream_closed(sid)

    def _new_initial_window(self, flow: str, value: int) -> int:
        """Apply a new SETTINGS_INITIAL_WINDOW_SIZE to every open stream: the change made."""
        delta = value - self.initial_window[flow]
        self.initial_window[flow] = value
        if delta:
            for stream in self._streams.values():
                stream.windows[flow] += delta
        return delta

    def _header_fragment(
        self,
        direction: str,
        state: _Direction,
        sid: int,
        frame_type: str,
        fragment: bytes,
        end_stream: bool,
        end_headers: bool,
    ) -> None:
        pending = state.block
        if frame_type == "CONTINUATION":
            if pending is None or pending[0] != sid:
                raise ValueError(f"CONTINUATION on stream {sid} without a header block to continue")
            pending[3].append(fragment)
        else:
            pending = state.block = (sid, frame_type, end_stream, [fragment])
        if not end_headers:
            return
        state.block = None
        _, first_type, end_stream, fragments = pending
        decoded, headers = state.hpack.decode(b"".join(fragments))
        stream = self._stream(sid)
        if first_type == "PUSH_PROMISE":
            role = "push-promise"
        elif stream is None or stream.blocks[direction]:
            role = "trailers"
        else:
            role = "request" if self.is_client_sender(direction) else "response"
        if stream is not None:
            stream.blocks[direction] += 1
        if self._show_headers:
            detail = {
                "block": role,
                "end_stream": end_stream,
                "length": sum(len(f) for f in fragments),
                "frames": len(fragments),
            }
            detail.update(decoded)
            self.record("headers", direction, sid, detail)
        if first_type != "PUSH_PROMISE":
            self.on_header_block(direction, sid, role, headers, end_stream)
            if end_stream:
                self._end(direction, sid)


def _priority(frame: Any) -> dict[str, Any]:
    return {
        "depends_on": frame.depends_on,
        "weight": frame.stream_weight + 1,
        "exclusive": bool(frame.exclusive),
    }
