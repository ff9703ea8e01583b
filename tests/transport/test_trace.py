"""transport.trace: frames, HPACK and flow-control windows decoded from raw bytes, no sockets."""

from __future__ import annotations

from typing import Any

import hpack
from hypothesis import given, settings
from hypothesis import strategies as st

from transport import ConnectionCore, ConnectionOptions
from transport.trace import PREFACE, ConnectionTrace, HpackMirror, TraceEvent

from .pair import REQUEST, RESPONSE, TRAILERS, CorePair


class Recorder:
    """A ConnectionTracer keeping every event of every connection it opened."""

    def __init__(self) -> None:
        self.events: list[TraceEvent] = []
        self.traces: list[ConnectionTrace] = []

    def open_connection(self, *, client_side: bool) -> ConnectionTrace:
        trace = ConnectionTrace(
            client_side=client_side, conn=len(self.traces) + 1, emit=self.events.extend
        )
        self.traces.append(trace)
        return trace

    def frames(self, side: str, direction: str = "", **match: Any) -> list[TraceEvent]:
        return [
            e
            for e in self.events
            if e.kind == "frame"
            and e.side == side
            and direction in ("", e.direction)
            and all(e.get(k) == v for k, v in match.items())
        ]


def _pair(recorder: Recorder, **options: Any) -> CorePair:
    opts = ConnectionOptions(tracer=recorder, **options)
    return CorePair(opts, opts)


def test_tracer_option_is_none_by_default_and_not_part_of_equality():
    assert ConnectionOptions().tracer is None
    assert ConnectionCore(client_side=True)._tracer is None
    assert ConnectionOptions(tracer=Recorder()) == ConnectionOptions()


def test_every_frame_of_both_cores_is_seen_once_in_each_direction():
    recorder = Recorder()
    pair = _pair(recorder)
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, b"\x00\x00\x00\x00\x02hi", end_stream=True)
    pair.pump()
    pair.server.send_headers(sid, RESPONSE)
    pair.server.send_data(sid, b"\x00\x00\x00\x00\x02yo")
    pair.server.send_trailers(sid, TRAILERS)
    pair.pump()
    assert not [e for e in recorder.events if e.kind == "error"]
    client_out = [(e["type"], e["flags"], e.stream_id) for e in recorder.frames("client")]
    for side in ("client", "server"):
        sent = [
            (e["type"], e["header"], e["body"])
            for e in recorder.events
            if e.kind == "frame" and e.side == side and e.direction == "out"
        ]
        other = "server" if side == "client" else "client"
        received = [
            (e["type"], e["header"], e["body"])
            for e in recorder.events
            if e.kind == "frame" and e.side == other and e.direction == "in"
        ]
        assert sent == received
    assert ("HEADERS", ["END_STREAM", "END_HEADERS"], sid) in client_out
    blocks = [e for e in recorder.events if e.kind == "headers" and e.side == "client"]
    assert [(b.direction, b["block"]) for b in blocks] == [
        ("out", "request"),
        ("in", "response"),
        ("in", "trailers"),
    ]
    decoded = [(f["name"].encode(), f["value"].encode()) for f in blocks[0]["fields"]]
    assert decoded == REQUEST


def _h2_windows(core: ConnectionCore, sid: int) -> tuple[int, int, int, int]:
    conn = core._h2
    stream = conn.streams[sid]
    return (
        conn.outbound_flow_control_window,
        stream.outbound_flow_control_window,
        conn._inbound_flow_control_window_manager.current_window_size,
        stream._inbound_window_manager.current_window_size,
    )


def _mirror_windows(trace: ConnectionTrace, sid: int) -> tuple[Any, ...]:
    return (
        trace.connection_window["out"],
        trace.stream_window(sid, "out"),
        trace.connection_window["in"],
        trace.stream_window(sid, "in"),
    )


def test_mirrored_windows_match_h2_after_data_and_window_updates():
    recorder = Recorder()
    # Small windows, so that consuming data makes h2 send WINDOW_UPDATEs.
    pair = _pair(
        recorder, initial_window_size=65_535, connection_window_size=100_000, max_frame_size=16_384
    )
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    pair.server.send_headers(sid, RESPONSE)
    for _round in range(3):
        pair.server.send_data(sid, b"x" * 40_000)
        pair.client.send_data(sid, b"y" * 30_000)
        pair.pump()
        pair.client.acknowledge_received_data(sid, 40_000)
        pair.server.acknowledge_received_data(sid, 30_000)
        pair.pump()
        client_trace, server_trace = recorder.traces
        assert _mirror_windows(client_trace, sid) == _h2_windows(pair.client, sid)
        assert _mirror_windows(server_trace, sid) == _h2_windows(pair.server, sid)
    updates = recorder.frames("client", type="WINDOW_UPDATE")
    assert any(e.stream_id == sid for e in updates)
    data = recorder.frames("client", type="DATA")
    assert all(e["length"] <= 16_384 for e in data)  # split at the peer's MAX_FRAME_SIZE
    last = data[-1]
    assert last["window"]["flow"] in ("send", "receive")


def test_bytes_fed_in_any_chunking_give_the_same_events():
    recorder = Recorder()
    pair = _pair(recorder)
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, [*REQUEST, (b"x-meta", b"v" * 300)])
    pair.client.send_data(sid, b"\x00\x00\x00\x00\x05hello" * 10, end_stream=True)
    wire = pair.client.data_to_send()
    whole = Recorder()
    one = whole.open_connection(client_side=False)
    one.bytes_in(PREFACE)  # the connection's first bytes were consumed by the pair
    one.bytes_in(wire)
    split = Recorder()
    many = split.open_connection(client_side=False)
    for piece in [PREFACE, *(wire[i : i + 1] for i in range(len(wire)))]:
        many.bytes_in(piece)

    def strip(events: list[TraceEvent]) -> list[Any]:
        return [(e.kind, e.direction, e.stream_id, e.detail) for e in events]

    assert strip(split.events) == strip(whole.events)
    assert [e.kind for e in whole.events] == ["connection", "preface", "frame", "headers", "frame"]


def test_a_header_block_in_continuation_frames_is_decoded_once():
    recorder = Recorder()
    pair = _pair(recorder, max_header_list_size=64 * 1024, max_frame_size=16_384)
    sid = pair.client.next_stream_id()
    big = [*REQUEST, *((f"x-big-{i}".encode(), b"v" * 4000) for i in range(6))]
    pair.client.send_headers(sid, big, end_stream=True)
    pair.pump()
    frames = [e["type"] for e in recorder.frames("server", direction="in") if e.stream_id == sid]
    assert frames[0] == "HEADERS" and "CONTINUATION" in frames
    [block] = [
        e for e in recorder.events if e.kind == "headers" and e.side == "server" and e.stream_id
    ]
    assert block["frames"] == len(frames)
    assert block["end_stream"] and block["block"] == "request"
    assert len(block["fields"]) == len(big)


def test_garbage_is_one_error_event_and_never_an_exception():
    recorder = Recorder()
    trace = recorder.open_connection(client_side=False)
    trace.bytes_in(b"GET / HTTP/1.1\r\n\r\n")
    trace.bytes_in(b"more garbage")
    errors = [e for e in recorder.events if e.kind == "error"]
    assert len(errors) == 1 and "preface" in errors[0]["error"]
    # A malformed frame body after a good preface: also reported, not raised.
    recorder = Recorder()
    trace = recorder.open_connection(client_side=False)
    trace.bytes_in(PREFACE + b"\x00\x00\x03\x04\x00\x00\x00\x00\x00abc")  # SETTINGS of 3 bytes
    assert [e.kind for e in recorder.events][-1] == "error"


def test_hpack_mirror_classifies_each_representation():
    encoder = hpack.Encoder()
    mirror = HpackMirror()
    first = encoder.encode(
        [
            (":method", "POST"),
            ("custom", "one"),
            hpack.NeverIndexedHeaderTuple("authorization", "secret"),
        ]
    )
    detail, headers = mirror.decode(first)
    assert [f["rep"] for f in detail["fields"]] == [
        "indexed",
        "literal-incremental",
        "literal-never-indexed",
    ]
    assert headers[2] == (b"authorization", b"secret")
    encoder.header_table_size = 0  # forces a size update and empties the table
    second = encoder.encode([("custom", "one")])
    detail, _ = mirror.decode(second)
    assert detail["size_updates"] == [0]
    assert detail["evicted"] == [{"name": "custom", "value": "one"}]
    assert detail["table"] == {"entries": 0, "size": 0, "max_size": 0}
    assert detail["fields"][0]["rep"] == "literal-incremental"
    assert detail["fields"][0]["inserted"] is False  # larger than a table of 0 bytes
    # Without indexing (hand-made: 0000 prefix, new name).
    raw = bytes([0x00, 0x01]) + b"a" + bytes([0x01]) + b"b"
    detail, headers = mirror.decode(raw)
    assert detail["fields"][0]["rep"] == "literal-without-indexing"
    assert headers == [(b"a", b"b")]


_names = st.sampled_from(["a", "x-custom", "content-type", ":path", "user-agent", "x-bin-bin"])
_values = st.text(alphabet="abcdefgh/012 ", max_size=40)
_block = st.lists(st.tuples(_names, _values, st.booleans()), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_block, min_size=1, max_size=8),
    st.lists(st.sampled_from([4096, 256, 64, 1024]), max_size=8),
)
def test_hpack_mirror_decodes_and_tracks_the_table_like_hpack(
    blocks: list[list[tuple[str, str, bool]]], sizes: list[int]
) -> None:
    encoder = hpack.Encoder()
    decoder = hpack.Decoder()
    mirror = HpackMirror()
    for i, block in enumerate(blocks):
        if i < len(sizes):
            encoder.header_table_size = sizes[i]
        headers = [
            hpack.NeverIndexedHeaderTuple(n, v) if sensitive else (n, v)
            for n, v, sensitive in block
        ]
        data = encoder.encode(headers)
        expected = decoder.decode(data, raw=True)
        detail, decoded = mirror.decode(data)
        assert decoded == [(bytes(n), bytes(v)) for n, v in expected]
        table = decoder.header_table
        assert mirror.entries == list(table.dynamic_entries)
        assert mirror.size == table._current_size
        assert mirror.max_size == table.maxsize
        assert "".join(f["bytes"] for f in detail["fields"]) in data.hex()
