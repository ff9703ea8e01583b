"""``FrameReader`` gives h2 the same frames h2 would have parsed: same events, same replies.

Each test feeds one byte stream to two fresh ``H2Connection`` objects, one through h2's own
``receive_data`` and one through a ``FrameReader``, cut at arbitrary points, and compares what
comes out: the events (type and attributes), the bytes h2 queued in reply, and the error if the
stream is bad.
"""

from __future__ import annotations

import struct
from typing import Any, Optional

import h2.config
import h2.connection
import h2.exceptions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transport.frame_reader import FrameReader
from transport.hpack_blocks import encode_block

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Svc/M"),
    (b":authority", b"localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream_id)
        + payload
    )


def data(stream_id: int, payload: bytes, end: bool = False) -> bytes:
    return frame(0x0, 0x1 if end else 0, stream_id, payload)


def headers(stream_id: int, fields: Any, end: bool = False, flags: int = 0x4) -> bytes:
    return frame(0x1, flags | (0x1 if end else 0), stream_id, encode_block(fields))


SETTINGS = frame(0x4, 0, 0)
SETTINGS_ACK = frame(0x4, 0x1, 0)


def new_connection(client_side: bool) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.data_to_send()
    if client_side:  # a client's stream 1 is open, awaiting its response
        conn.send_headers(1, REQUEST)
        conn.send_data(1, b"request")
        conn.data_to_send()
    return conn


def describe(events: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in events:
        fields = sorted(vars(event).items())
        attributes = {name: repr(value) for name, value in fields if name != "stream_ended"}
        out.append((type(event).__name__, attributes))
    return out


def run(
    wire: bytes, cuts: list[int], *, client_side: bool, reader: bool
) -> tuple[list[Any], bytes, Optional[str]]:
    conn = new_connection(client_side)
    receiver = FrameReader(conn, server_side=not client_side) if reader else None
    events: list[Any] = []
    error = None
    start = 0
    try:
        for end in [*sorted(set(cuts)), len(wire)]:
            piece = memoryview(bytearray(wire[start:end]))  # a reused read buffer's view
            start = end
            if receiver is not None:
                events += receiver.receive(piece)
            else:
                events += conn.receive_data(piece)
            piece[:] = b"\xff" * len(piece)  # the driver reuses its buffer: nothing may be kept
    except h2.exceptions.ProtocolError as exc:
        error = f"{type(exc).__name__}: {exc}".split(" from <memory")[0]
    return describe(events), conn.data_to_send(), error


def assert_same(wire: bytes, cuts: list[int], *, client_side: bool) -> None:
    expected = run(wire, cuts, client_side=client_side, reader=False)
    assert run(wire, cuts, client_side=client_side, reader=True) == expected


def server_wire() -> bytes:
    return (
        PREFACE
        + SETTINGS
        + SETTINGS_ACK
        + headers(1, REQUEST)
        + data(1, b"\x00\x00\x00\x00\x05hello")
        + data(1, b"", end=True)
        + headers(3, REQUEST, end=True)
        + frame(0x8, 0, 0, struct.pack(">I", 1000))  # WINDOW_UPDATE
        + frame(0x6, 0, 0, b"12345678")  # PING
        + headers(5, REQUEST)
        + frame(0x0, 0x8, 5, b"\x04" + b"padded" + b"\x00" * 4)  # h2 parses padded frames
        + data(5, b"x" * 3000)
        + frame(0x1, 0x20, 7, b"\x00\x00\x00\x00\x10" + encode_block(REQUEST)[:12])
        + frame(0x9, 0x4, 7, encode_block(REQUEST)[12:])  # a block continued
        + data(7, b"y" * 20, end=True)
        + data(5, b"", end=True)
    )


def client_wire() -> bytes:
    return (
        SETTINGS
        + SETTINGS_ACK
        + headers(1, RESPONSE)
        + data(1, b"a" * 100)
        + data(1, b"b" * 5000)
        + headers(1, TRAILERS, end=True)
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(server_wire())), max_size=8))
def test_a_server_sees_what_h2_would_however_the_bytes_are_cut(cuts: list[int]) -> None:
    assert_same(server_wire(), cuts, client_side=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(client_wire())), max_size=8))
def test_a_client_sees_what_h2_would_however_the_bytes_are_cut(cuts: list[int]) -> None:
    assert_same(client_wire(), cuts, client_side=True)


PADDED, PRIORITY = 0x8, 0x20  # frame flags


@pytest.mark.parametrize(
    "frames",
    [
        # Frames h2 parses itself, between frames the reader parses.
        [frame(0x0, PADDED | 0x1, 1, b"\x03" + b"abc" + b"\x00" * 3)],
        [frame(0x1, PRIORITY | 0x4 | 0x1, 3, b"\x00\x00\x00\x00\x10" + encode_block(REQUEST))],
        [frame(0x1, PADDED | 0x4 | 0x1, 3, b"\x02" + encode_block(REQUEST) + b"\x00\x00")],
    ],
)
def test_padded_prioritised_and_continued_frames_go_to_h2(frames: list[bytes]) -> None:
    wire = PREFACE + SETTINGS + headers(1, REQUEST) + b"".join(frames) + data(1, b"z", end=True)
    for cut in range(0, len(wire), 7):
        assert_same(wire, [cut], client_side=False)


def test_a_header_block_split_into_continuation_frames() -> None:
    block = encode_block(REQUEST)
    wire = (
        PREFACE
        + SETTINGS
        + frame(0x1, 0, 1, block[:10])
        + frame(0x9, 0, 1, block[10:20])
        + frame(0x9, 0x4, 1, block[20:])
        + data(1, b"body", end=True)
    )
    for cut in range(len(wire)):
        assert_same(wire, [cut], client_side=False)
    events, _, error = run(wire, [], client_side=False, reader=True)
    assert error is None
    assert [name for name, _ in events] == [
        "RemoteSettingsChanged",
        "RequestReceived",
        "DataReceived",
        "StreamEnded",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        data(0, b"no stream"),  # DATA on stream 0
        data(7, b"idle stream"),  # DATA on a stream never opened
        headers(1, TRAILERS),  # trailers without END_STREAM
        headers(2, REQUEST),  # a client may not open an even stream
        frame(0x1, 0x4, 3, b"\xff\xff\xff"),  # an undecodable header block
        frame(0x1, 0x0, 3, encode_block(REQUEST)) + data(3, b"in the middle of a header block"),
        data(1, b"x" * 70_000),  # beyond the stream's flow-control window
    ],
)
def test_errors_are_h2s_errors_with_h2s_goaway(bad: bytes) -> None:
    wire = PREFACE + SETTINGS + headers(1, REQUEST) + data(1, b"ok") + bad
    expected = run(wire, [], client_side=False, reader=False)
    assert expected[2] is not None  # the frame is bad for h2 too
    assert run(wire, [], client_side=False, reader=True) == expected
    assert_same(wire, [len(wire) - 3], client_side=False)


def test_data_after_the_stream_ended_is_answered_like_h2_does() -> None:
    wire = PREFACE + SETTINGS + headers(1, REQUEST, end=True) + data(1, b"late")
    assert_same(wire, [], client_side=False)


def test_a_bad_preface_is_h2s_error() -> None:
    wire = b"GET / HTTP/1.1\r\n\r\n" + b"\x00" * 20
    expected = run(wire, [], client_side=False, reader=False)
    assert expected[2] is not None
    assert run(wire, [3], client_side=False, reader=True)[2] == expected[2]
