"""Events the sans-I/O connection core reports, in the order the frames arrived.

Small keyword-only records with past-tense names, one per thing that happened on the wire. They
carry HTTP/2 concepts only (stream ids, header lists, bytes): the transport never looks inside a
message.
Header lists are ``list[tuple[bytes, bytes]]`` with lowercase names, exactly as HPACK decoded them.
"""

from __future__ import annotations

from typing import Union

Headers = list[tuple[bytes, bytes]]


class Event:
    """Base class of the core's events."""

    __slots__ = ()


class RequestReceived(Event):
    """A client opened a stream with a request header block (server role only)."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, *, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers

    def __repr__(self) -> str:
        return f"RequestReceived(stream_id={self.stream_id}, headers={self.headers!r})"


class ResponseReceived(Event):
    """The first (non-informational) header block of a response arrived (client role only)."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, *, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers

    def __repr__(self) -> str:
        return f"ResponseReceived(stream_id={self.stream_id}, headers={self.headers!r})"


class TrailersReceived(Event):
    """A trailing header block arrived; it always ends the peer's side of the stream."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, *, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers

    def __repr__(self) -> str:
        return f"TrailersReceived(stream_id={self.stream_id}, headers={self.headers!r})"


class DataReceived(Event):
    """Body bytes arrived on a stream.

    ``flow_controlled_length`` (data plus padding) is what must be handed back with
    ``ConnectionCore.acknowledge_received_data`` once the application has consumed the bytes:
    that is how the peer gets window credit, and so how a slow reader applies backpressure.
    """

    __slots__ = ("data", "flow_controlled_length", "stream_id")

    def __init__(self, *, stream_id: int, data: bytes, flow_controlled_length: int) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length

    def __repr__(self) -> str:
        return f"DataReceived(stream_id={self.stream_id}, length={len(self.data)})"


class StreamEnded(Event):
    """The peer half-closed the stream (END_STREAM): no more data or headers will come on it."""

    __slots__ = ("stream_id",)

    def __init__(self, *, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamEnded(stream_id={self.stream_id})"


class StreamReset(Event):
    """The stream was reset with RST_STREAM, by the peer (``remote``) or by the core itself."""

    __slots__ = ("error_code", "remote", "stream_id")

    def __init__(self, *, stream_id: int, error_code: int, remote: bool = True) -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote

    def __repr__(self) -> str:
        return (
            f"StreamReset(stream_id={self.stream_id}, error_code={self.error_code}, "
            f"remote={self.remote})"
        )


class StreamWritable(Event):
    """Window credit let queued outbound data of a stream go out; its send buffer shrank."""

    __slots__ = ("stream_id",)

    def __init__(self, *, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamWritable(stream_id={self.stream_id})"


class ConnectionTerminated(Event):
    """The peer sent GOAWAY: streams above ``last_stream_id`` were never processed.

    Streams at or below it may still finish; no new stream may be opened on this connection.
    """

    __slots__ = ("additional_data", "error_code", "last_stream_id")

    def __init__(
        self, *, error_code: int, last_stream_id: int, additional_data: bytes = b""
    ) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data

    def __repr__(self) -> str:
        return (
            f"ConnectionTerminated(error_code={self.error_code}, "
            f"last_stream_id={self.last_stream_id}, additional_data={self.additional_data!r})"
        )


class PingReceived(Event):
    """The peer sent a PING (already acknowledged by the core); keepalive policy may count it."""

    __slots__ = ("data",)

    def __init__(self, *, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"PingReceived(data={self.data!r})"


class PingAcknowledged(Event):
    """The peer answered one of our PINGs: it is alive (keepalive)."""

    __slots__ = ("data",)

    def __init__(self, *, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"PingAcknowledged(data={self.data!r})"


AnyEvent = Union[
    RequestReceived,
    ResponseReceived,
    TrailersReceived,
    DataReceived,
    StreamEnded,
    StreamReset,
    StreamWritable,
    ConnectionTerminated,
    PingReceived,
    PingAcknowledged,
]
