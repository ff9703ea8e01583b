"""Property-based protocol tests: generated frame sequences against a server and a client session.

Hypothesis writes what a peer might send: valid gRPC calls on interleaved streams, the same
reordered, truncated at any byte, frames of every type with random flags, stream ids, payloads
and declared lengths, cut into reads of any size. Each sequence is fed to a ``Session`` (the
core and the stream layer above it, shared by both drivers) through the fake driver of
``session_pair.py`` (no sockets), with an application that answers every request at once.
Whatever comes in:

* no exception escapes (a peer's mistake is a GOAWAY or a RST_STREAM, never a crash);
* every GOAWAY and RST_STREAM we send carries an error code of RFC 9113 §7;
* a broken connection says so with a GOAWAY before it closes;
* every stream ends: answered (trailers), reset, or failed with its connection;
* buffers stay bounded (frame reassembly, inboxes, queued output);
* unless the connection ended, it keeps serving: a fresh, valid request is answered.

Reproducible in CI: the profile is derandomized and keeps no example database. Set
``H2RPC_PROPERTY_EXAMPLES`` to hunt longer locally (e.g. 5000).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Optional

import hpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.transport.session_pair import PREFACE, FakeClock, FakeEnd, FrameLog
from transport import ConnectionOptions, TransportError

EXAMPLES = int(os.environ.get("H2RPC_PROPERTY_EXAMPLES", "150"))
pytestmark = pytest.mark.time_limit(120 if EXAMPLES <= 150 else 0)  # a long hunt is not a hang
PROPERTIES = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The error codes RFC 9113 §7 defines.
RFC9113_CODES = range(0x0, 0xE)

#: Small windows and frames, so that generated sequences reach the limits.
OPTIONS = ConnectionOptions(
    initial_window_size=65_535,
    connection_window_size=131_072,
    max_frame_size=16_384,
    max_concurrent_streams=8,
    max_header_list_size=4096,
)

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Svc/Method"),
    (b":authority", b"localhost"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]


def frame(
    kind: int, flags: int, stream_id: int, payload: bytes, length: Optional[int] = None
) -> bytes:
    size = len(payload) if length is None else length
    return (
        struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream_id) + payload
    )


def block(headers: list[tuple[bytes, bytes]]) -> bytes:
    """A header block that leans on no dynamic-table entry (a fresh encoder each time), so
    blocks stay decodable in any order; the decoder's table still grows with each."""
    return bytes(hpack.Encoder().encode(headers))


def grpc_message(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


# ---------------------------------------------------------------------- what a peer sends

STREAM_IDS = st.sampled_from([0, 1, 1, 3, 3, 5, 7, 9, 2, 4, 2**31 - 1])
HEADER_LISTS = {
    "client": st.sampled_from([REQUEST, TRAILERS, [(b"x-a", b"b")], [*REQUEST, (b":foo", b"x")]]),
    "server": st.sampled_from([RESPONSE, TRAILERS, RESPONSE + TRAILERS, [(b":status", b"503")]]),
}


@st.composite
def any_frame(draw: st.DrawFn, peer: str) -> bytes:
    """One frame of any type, usually well-formed, sometimes not at all."""
    kind = draw(
        st.sampled_from(
            [
                DATA,
                DATA,
                HEADERS,
                HEADERS,
                PRIORITY,
                RST_STREAM,
                SETTINGS,
                PUSH_PROMISE,
                PING,
                GOAWAY,
                WINDOW_UPDATE,
                CONTINUATION,
                0x42,
            ]
        )
    )
    stream_id = draw(STREAM_IDS)
    flags = draw(st.sampled_from([0, END_STREAM, END_HEADERS, END_HEADERS | END_STREAM]))
    payload: bytes
    if kind == DATA:
        payload = grpc_message(draw(st.binary(max_size=40)))
    elif kind in (HEADERS, CONTINUATION):
        payload = block(draw(HEADER_LISTS[peer]))
        if kind == CONTINUATION or draw(st.booleans()):
            cut = draw(st.integers(0, len(payload)))  # a fragment
            payload = payload[:cut] if draw(st.booleans()) else payload[cut:]
    elif kind == SETTINGS:
        flags = draw(st.sampled_from([0, 0, ACK]))
        pairs = draw(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 2**32 - 1)), max_size=3))
        payload = b"".join(struct.pack(">HI", key, value) for key, value in pairs)
        if flags & ACK and draw(st.booleans()):
            payload = b""
    elif kind == WINDOW_UPDATE:
        payload = struct.pack(">I", draw(st.sampled_from([0, 1, 1000, 65_535, 2**31 - 1])))
    elif kind == RST_STREAM:
        payload = struct.pack(">I", draw(st.integers(0, 0xF)))
    elif kind == PING:
        flags = draw(st.sampled_from([0, ACK]))
        payload = draw(st.binary(min_size=8, max_size=8))
    elif kind == GOAWAY:
        payload = struct.pack(">II", draw(st.sampled_from([0, 1, 3, 2**31 - 1])), 0) + b"bye"
    elif kind == PRIORITY:
        payload = draw(st.binary(min_size=5, max_size=5))
    else:
        payload = draw(st.binary(max_size=20))
    if draw(st.integers(0, 9)) == 0:  # now and then: any flags at all, any payload
        flags = draw(st.integers(0, 255))
    if draw(st.integers(0, 9)) == 0:
        payload = draw(st.binary(max_size=24))
    return frame(kind, flags, stream_id, payload)


@st.composite
def valid_calls(draw: st.DrawFn) -> list[bytes]:
    """Complete gRPC calls (request HEADERS, DATA, END_STREAM), their frames interleaved across
    streams, each stream's own order kept, streams numbered 1, 3, ... as they open."""
    calls: list[list[tuple[int, int, bytes]]] = []
    for _ in range(draw(st.integers(1, 12))):  # beyond max_concurrent_streams at times
        frames = [(HEADERS, END_HEADERS, block(REQUEST))]
        for payload in draw(st.lists(st.binary(max_size=30), max_size=3)):
            frames.append((DATA, 0, grpc_message(payload)))
        if draw(st.integers(0, 4)) == 0:  # bulk: against the windows (64 KiB per stream)
            frames += [(DATA, 0, bytes(16_000))] * draw(st.integers(1, 6))
        frames.append((DATA, END_STREAM, b""))
        calls.append(frames)
    order = draw(st.permutations([i for i, frames in enumerate(calls) for _ in frames]))
    taken = [0] * len(calls)
    stream_ids: dict[int, int] = {}
    out = []
    for i in order:
        kind, flags, payload = calls[i][taken[i]]
        taken[i] += 1
        stream_id = stream_ids.setdefault(i, 1 + 2 * len(stream_ids))
        out.append(frame(kind, flags, stream_id, payload))
    return out


@dataclass
class Script:
    """What the peer sends, cut into reads; ``honest``: whole frames with true lengths, so
    the connection should still serve a request that follows."""

    reads: list[bytes]
    honest: bool


@st.composite
def scripts(draw: st.DrawFn, peer: str) -> Script:
    mode = draw(
        st.sampled_from(
            ["valid", "valid", "mixed", "mixed", "reordered", "any", "truncated", "lying"]
        )
    )
    if mode in ("valid", "truncated", "lying"):
        frames = draw(valid_calls())
    elif mode == "reordered":
        frames = draw(st.permutations(draw(valid_calls())))
    elif mode == "mixed":  # valid calls with other frames slipped in between
        frames = draw(valid_calls())
        for extra in draw(st.lists(any_frame(peer), max_size=4)):
            frames.insert(draw(st.integers(0, len(frames))), extra)
    else:
        frames = draw(st.lists(any_frame(peer), min_size=1, max_size=12))
    if peer == "server":  # a server peer answers the client's calls instead
        frames = [f for f in frames if f[3] != HEADERS or f[8] % 2 == 1]
    honest = mode not in ("truncated", "lying")
    if mode == "lying" and frames:
        at = draw(st.integers(0, len(frames) - 1))
        victim = frames[at]
        length = draw(st.sampled_from([0, 1, 8, 9, 100, 16_384, 16_385, 2**24 - 1]))
        frames[at] = struct.pack(">I", length)[1:] + victim[3:]
    opening = frame(SETTINGS, 0, 0, b"") if draw(st.integers(0, 9)) else b""
    if peer == "client":
        opening = PREFACE + opening
    data = opening + b"".join(frames)
    if mode == "truncated":
        data = data[: draw(st.integers(0, len(data)))]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)]) if b > a]
    return Script(reads, honest)


# ---------------------------------------------------------------------- the invariants


def check_bounded(end: FakeEnd) -> None:
    """What the session holds is bounded by its options, whatever came in."""
    session = end.session
    core = session.core
    reader = core._reader
    assert len(reader._head) <= 9
    assert sum(len(part) for part in reader._parts) <= OPTIONS.max_frame_size
    assert len(core._guard._head) <= 9
    h2_buffer = core._h2.incoming_buffer
    assert len(getattr(h2_buffer, "_data", b"")) <= 9 + OPTIONS.max_frame_size
    assert sum(len(f.data) for f in h2_buffer._headers_buffer) <= OPTIONS.header_block_limit
    unread = sum(len(data) for stream in session.streams.values() for data, _ in stream._inbox)
    assert unread <= OPTIONS.connection_window_size
    assert len(core._h2._grace) <= 1024
    assert core.pending_output() < 1024 * 1024


def check_output(log: FrameLog, seen: int) -> int:
    """Every GOAWAY and RST_STREAM sent since frame ``seen`` carries an RFC 9113 §7 code."""
    for sent in log.frames[seen:]:
        if sent.type in ("GOAWAY", "RST_STREAM"):
            at = 4 if sent.type == "GOAWAY" else 0
            (code,) = struct.unpack_from(">I", sent.payload, at)
            assert code in RFC9113_CODES, f"{sent.type} with error code {code:#x}"
    return len(log.frames)


def serve(end: FakeEnd) -> None:
    """The application: answers every request at once (a unary OK), unless it is a slow one
    (``end.driver.auto_read`` off: it neither reads nor answers until the end)."""
    if not end.driver.auto_read:
        return
    while end.driver.requests:
        stream = end.driver.requests.pop()
        try:
            stream.send_headers(RESPONSE)
            stream.send_data(grpc_message(b"ok"))
            stream.send_trailers(TRAILERS)
        except TransportError:  # reset or failed meanwhile: nobody to answer
            pass


def ended(end: FakeEnd) -> bool:
    """The connection is over (failed, or closing on our GOAWAY)."""
    return end.session.error is not None or end.closed_by_us or end.aborted


def feed(end: FakeEnd, log: FrameLog, clock: FakeClock, reads: list[bytes]) -> None:
    seen = 0
    for data in reads:
        if ended(end):
            break
        end.deliver(data)  # nothing may escape
        if not end.session.core.client_side:
            serve(end)
        log.feed(end.take_output())
        seen = check_output(log, seen)
        if not ended(end):  # (a connection that ended is freed, buffers and all)
            check_bounded(end)
        clock.now += 0.01
        end.on_timer()
    log.feed(end.take_output())
    check_output(log, seen)
    if end.session.error is not None and end.session.error.args:
        reason = str(end.session.error)
        if "protocol error" in reason:  # the peer broke HTTP/2: it was told why
            assert any(f.type == "GOAWAY" for f in log.frames), reason


def server_end() -> tuple[FakeEnd, FrameLog, FakeClock]:
    clock = FakeClock()
    end = FakeEnd(clock, client_side=False, options=OPTIONS)
    end.connection_made(("127.0.0.1", 50000))
    log = FrameLog(expect_preface=False)
    log.feed(end.take_output())
    return end, log, clock


@PROPERTIES
@given(scripts("client"), st.booleans())
def test_a_server_session_survives_any_client_frames(script: Script, slow_app: bool) -> None:
    end, log, clock = server_end()
    end.driver.auto_read = not slow_app
    feed(end, log, clock, script.reads)
    session = end.session
    if slow_app:  # nothing read, nothing answered: the windows bounded it (check_bounded)
        end.connection_lost()
        assert all(s.error is not None or s.remote_ended for s in end.driver.streams)
        assert not session.streams
        return
    # Every stream ended: answered by the application, reset, or failed with the connection.
    assert not session.streams or session.error is not None, session.streams
    if ended(end) or not script.honest:
        return
    # Still serving: a fresh, valid request on a new stream is answered, refused or the
    # connection ends with a GOAWAY (a header block the script left open, say).
    stream_id = max([f.stream_id for f in log.frames] + [s.stream_id for s in end.driver.streams])
    stream_id = max(stream_id, 99) + 2 - (max(stream_id, 99) % 2)
    request = frame(HEADERS, END_HEADERS, stream_id, block(REQUEST))
    request += frame(DATA, END_STREAM, stream_id, grpc_message(b"hi"))
    before = len(log.frames)
    feed(end, log, clock, [request])
    answers = [f for f in log.frames[before:] if f.stream_id in (stream_id, 0)]
    assert any(
        f.type == "GOAWAY" or (f.stream_id == stream_id and f.type in ("HEADERS", "RST_STREAM"))
        for f in answers
    ), f"neither served nor refused: {log.frames[before:]}"


@PROPERTIES
@given(st.integers(1, 4), scripts("server"))
def test_a_client_session_survives_any_server_frames(calls: int, script: Script) -> None:
    clock = FakeClock()
    end = FakeEnd(clock, client_side=True, options=OPTIONS)
    end.connection_made(("127.0.0.1", 50051))
    log = FrameLog(expect_preface=True)
    streams = []
    for _ in range(calls):
        stream = end.session.open_stream(REQUEST)
        stream.send_data(grpc_message(b"hi"), end_stream=True)
        streams.append(stream)
    log.feed(end.take_output())
    feed(end, log, clock, script.reads)
    # Every call ends: with the peer's END_STREAM (trailers), a reset, or its connection.
    end.connection_lost()
    for stream in streams:
        assert stream.remote_ended or stream.error is not None, stream
    assert not end.session.streams
