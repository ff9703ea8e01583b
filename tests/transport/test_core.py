"""The sans-I/O connection core, driven over an in-memory link."""

from __future__ import annotations

import h2.errors
import pytest
from hyperframe.frame import Frame, GoAwayFrame, PingFrame

from tests.transport.pair import REQUEST, RESPONSE, TRAILERS, CorePair
from transport import (
    ConnectionCore,
    ConnectionOptions,
    ConnectionTerminated,
    DataReceived,
    PingAcknowledged,
    PingReceived,
    RemoteProtocolError,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    StreamWritable,
    TrailersReceived,
)
from transport.core import SHUTDOWN_PING_DATA

SMALL = ConnectionOptions(initial_window_size=65_535, connection_window_size=65_535)


def received_bytes(events: list, stream_id: int) -> bytes:
    return b"".join(
        e.data for e in events if isinstance(e, DataReceived) and e.stream_id == stream_id
    )


def test_request_response_and_trailers_arrive_in_order():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, b"hello", end_stream=True)
    pair.pump()
    events = pair.take_server_events()
    assert [type(e) for e in events] == [RequestReceived, DataReceived, StreamEnded]
    assert events[0].headers[2] == (b":path", b"/pkg.Svc/Method")

    pair.server.send_headers(sid, RESPONSE)
    pair.server.send_data(sid, b"world")
    pair.server.send_trailers(sid, TRAILERS)
    pair.pump()
    events = pair.take_client_events()
    assert [type(e) for e in events] == [
        ResponseReceived,
        DataReceived,
        TrailersReceived,
        StreamEnded,
    ]
    assert received_bytes(events, sid) == b"world"


def test_larger_windows_are_advertised_from_the_start():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    # The server advertised a 4 MiB stream window and a 16 MiB connection window, so 1 MiB
    # goes out at once, before any WINDOW_UPDATE.
    pair.client.send_data(sid, bytes(1024 * 1024))
    assert pair.client.pending_bytes(sid) == 0
    pair.pump()
    assert len(received_bytes(pair.take_server_events(), sid)) == 1024 * 1024


def test_unconsumed_data_exerts_backpressure_until_acknowledged():
    pair = CorePair(server_options=SMALL)
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, bytes(200_000), end_stream=True)
    pair.pump()
    # Only one window's worth crossed: the rest waits in the client core, not in memory
    # on the server.
    events = pair.take_server_events()
    got = received_bytes(events, sid)
    assert len(got) == 65_535
    assert pair.client.pending_bytes(sid) == 200_000 - 65_535
    # The application consumes it: credit flows back and the sender resumes.
    total = len(got)
    for _ in range(10):
        flow = sum(e.flow_controlled_length for e in events if isinstance(e, DataReceived))
        pair.server.acknowledge_received_data(sid, flow)
        pair.pump()
        events = pair.take_server_events()
        total += len(received_bytes(events, sid))
        if any(isinstance(e, StreamEnded) for e in events):
            break
    assert total == 200_000
    assert pair.client.pending_bytes(sid) == 0
    assert any(isinstance(e, StreamWritable) for e in pair.take_client_events())


def test_trailers_wait_behind_queued_data():
    pair = CorePair(client_options=SMALL)
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST, end_stream=True)
    pair.pump()
    pair.take_server_events()
    pair.server.send_headers(sid, RESPONSE)
    pair.server.send_data(sid, bytes(100_000))
    pair.server.send_trailers(sid, TRAILERS)
    pair.pump()
    events = pair.take_client_events()
    assert not any(isinstance(e, TrailersReceived) for e in events)
    flow = sum(e.flow_controlled_length for e in events if isinstance(e, DataReceived))
    pair.client.acknowledge_received_data(sid, flow)
    pair.pump()
    events = pair.take_client_events()
    assert isinstance(events[-2], TrailersReceived)
    assert isinstance(events[-1], StreamEnded)


def test_server_resets_a_request_side_left_open_after_its_trailers():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    pair.server.send_trailers(sid, RESPONSE + TRAILERS)
    pair.pump()
    events = pair.take_client_events()
    assert isinstance(events[0], ResponseReceived)
    resets = [e for e in events if isinstance(e, StreamReset)]
    assert resets and resets[0].error_code == h2.errors.ErrorCodes.NO_ERROR


def test_reset_drops_queued_bytes_and_reaches_the_peer():
    pair = CorePair(server_options=SMALL)
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.client.send_data(sid, bytes(100_000))
    pair.client.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
    assert pair.client.pending_bytes(sid) == 0
    pair.pump()
    resets = [e for e in pair.take_server_events() if isinstance(e, StreamReset)]
    assert resets[0].error_code == h2.errors.ErrorCodes.CANCEL and resets[0].remote


def test_garbage_from_the_peer_is_a_remote_protocol_error_with_goaway_queued():
    pair = CorePair()
    with pytest.raises(RemoteProtocolError):
        pair.server.receive_data(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00" * 2)
    assert b"\x07" in pair.server.data_to_send()  # a GOAWAY frame (type 7) is queued


def test_many_streams_are_independent():
    pair = CorePair()
    sids = []
    for i in range(50):
        sid = pair.client.next_stream_id()
        pair.client.send_headers(sid, REQUEST)
        pair.client.send_data(sid, bytes([i]) * 10, end_stream=True)
        sids.append(sid)
    pair.pump()
    events = pair.take_server_events()
    for i, sid in enumerate(sids):
        assert received_bytes(events, sid) == bytes([i]) * 10


def test_graceful_goaway_lets_open_streams_finish_and_refuses_new_ones():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    pair.take_server_events()
    pair.server.goaway()
    # The client has not seen the GOAWAY yet and starts another stream.
    late = pair.client.next_stream_id()
    pair.client.send_headers(late, REQUEST, end_stream=True)
    pair.pump()
    events = pair.take_client_events()
    goaways = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert goaways and goaways[0].last_stream_id == sid and goaways[0].error_code == 0
    refused = [e for e in events if isinstance(e, StreamReset) and e.stream_id == late]
    assert refused and refused[0].error_code == h2.errors.ErrorCodes.REFUSED_STREAM
    # The stream opened before the GOAWAY still works both ways.
    pair.client.send_data(sid, b"request", end_stream=True)
    pair.pump()
    assert received_bytes(pair.take_server_events(), sid) == b"request"
    pair.server.send_headers(sid, RESPONSE)
    pair.server.send_data(sid, b"response")
    pair.server.send_trailers(sid, TRAILERS)
    pair.pump()
    events = pair.take_client_events()
    assert received_bytes(events, sid) == b"response"
    assert any(isinstance(e, TrailersReceived) for e in events)


def frames_in(data: bytes) -> list[Frame]:
    """The frames of a chunk of output, parsed with hyperframe."""
    frames = []
    view = memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames


def shape(frames: list[Frame]) -> list[tuple[str, object, object]]:
    """(type, last-stream-id or PING data, error code or ACK) of the connection-level frames."""
    out: list[tuple[str, object, object]] = []
    for frame in frames:
        if isinstance(frame, GoAwayFrame):
            out.append(("GOAWAY", frame.last_stream_id, frame.error_code))
        elif isinstance(frame, PingFrame):
            out.append(("PING", frame.opaque_data, "ACK" in frame.flags))
    return out


def test_graceful_shutdown_is_goaway_max_id_and_ping_then_final_goaway_after_the_ack():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    pair.take_server_events()
    pair.server.shut_down(now=10.0, timeout=1.0)
    first = pair.server.data_to_send()
    assert shape(frames_in(first)) == [
        ("GOAWAY", 2**31 - 1, 0),
        ("PING", SHUTDOWN_PING_DATA, False),
    ]
    assert pair.server.draining and pair.server.shutdown_deadline == 11.0
    # The client opens a stream before it reads the GOAWAY: it is accepted, not refused.
    late = pair.client.next_stream_id()
    pair.client.send_headers(late, REQUEST, end_stream=True)
    assert [type(e) for e in pair.server.receive_data(pair.client.data_to_send())] == [
        RequestReceived,
        StreamEnded,
    ]
    assert pair.server.data_to_send() == b""  # nothing more until the PING is answered
    # The client reads the GOAWAY and the PING; h2 answers the PING.
    goaways = [e for e in pair.client.receive_data(first) if isinstance(e, ConnectionTerminated)]
    assert [(e.last_stream_id, e.error_code) for e in goaways] == [(2**31 - 1, 0)]
    ack = pair.client.data_to_send()
    assert shape(frames_in(ack)) == [("PING", SHUTDOWN_PING_DATA, True)]
    # The ACK is the shutdown's own (not reported as a keepalive's); the final GOAWAY follows.
    assert pair.server.receive_data(ack) == []
    assert shape(frames_in(pair.server.data_to_send())) == [("GOAWAY", late, 0)]
    assert not pair.server.draining and pair.server.shutdown_deadline is None
    # A stream after the final GOAWAY is refused; the ones before it go on both ways.
    later = pair.client.next_stream_id()
    pair.client.send_headers(later, REQUEST, end_stream=True)
    pair.pump()
    refused = [e for e in pair.take_client_events() if isinstance(e, StreamReset)]
    assert [(e.stream_id, e.error_code) for e in refused] == [
        (later, h2.errors.ErrorCodes.REFUSED_STREAM)
    ]
    for stream_id in (sid, late):
        pair.server.send_headers(stream_id, RESPONSE)
        pair.server.send_trailers(stream_id, TRAILERS)
    pair.client.send_data(sid, b"", end_stream=True)
    pair.pump()
    ended = {e.stream_id for e in pair.take_client_events() if isinstance(e, TrailersReceived)}
    assert ended == {sid, late}


def test_graceful_shutdown_sends_the_final_goaway_at_the_deadline_without_an_ack():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST, end_stream=True)
    pair.pump()
    pair.server.shut_down(now=5.0, timeout=1.5)
    pair.server.data_to_send()  # GOAWAY(2^31-1) and PING: the peer never answers
    pair.server.on_timer(6.4)
    assert pair.server.data_to_send() == b"" and pair.server.draining
    pair.server.on_timer(6.5)
    assert shape(frames_in(pair.server.data_to_send())) == [("GOAWAY", sid, 0)]
    assert not pair.server.draining
    # A late ACK changes nothing, and is not reported as a keepalive ACK either.
    late_ack = PingFrame(0, flags=["ACK"])
    late_ack.opaque_data = SHUTDOWN_PING_DATA
    assert pair.server.receive_data(late_ack.serialize()) == []
    assert pair.server.data_to_send() == b""


def test_keepalive_ping_acks_are_not_taken_for_the_shutdown_ping():
    pair = CorePair()
    pair.server.shut_down(now=0.0, timeout=1.0)
    pair.server.send_ping(b"\0\0\0\0\0\0\0\1")  # a keepalive PING, sent meanwhile
    out = pair.server.data_to_send()
    assert [f[0] for f in shape(frames_in(out))] == ["GOAWAY", "PING", "PING"]
    # The client answers only the keepalive PING (so far).
    keepalive_ack = PingFrame(0, flags=["ACK"])
    keepalive_ack.opaque_data = b"\0\0\0\0\0\0\0\1"
    events = pair.server.receive_data(keepalive_ack.serialize())
    assert [e.data for e in events if isinstance(e, PingAcknowledged)] == [b"\0\0\0\0\0\0\0\1"]
    assert pair.server.draining and pair.server.data_to_send() == b""


def test_shutdown_after_a_goaway_or_twice_sends_nothing_more():
    pair = CorePair()
    pair.server.shut_down(now=0.0, timeout=1.0)
    pair.server.shut_down(now=0.5, timeout=1.0)
    assert len(shape(frames_in(pair.server.data_to_send()))) == 2
    other = CorePair()
    other.server.goaway()
    other.server.data_to_send()
    other.server.shut_down(now=0.0, timeout=1.0)
    assert other.server.data_to_send() == b"" and not other.server.draining


def test_streams_beyond_max_concurrent_are_refused_not_fatal():
    client = ConnectionCore(client_side=True)
    server = ConnectionCore(client_side=False, options=ConnectionOptions(max_concurrent_streams=2))
    client.initiate()
    server.initiate()
    # The client opens 3 streams before it has seen the server's SETTINGS.
    sids = []
    for _ in range(3):
        sid = client.next_stream_id()
        client.send_headers(sid, REQUEST)
        sids.append(sid)
    server_events = server.receive_data(client.data_to_send())
    assert [e.stream_id for e in server_events if isinstance(e, RequestReceived)] == sids[:2]
    client_events = client.receive_data(server.data_to_send())
    resets = [e for e in client_events if isinstance(e, StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [
        (sids[2], h2.errors.ErrorCodes.REFUSED_STREAM)
    ]
    assert not server.closed


def test_ping_ack_is_reported_to_the_sender_and_the_ping_to_the_receiver():
    pair = CorePair()
    pair.client.send_ping(b"12345678")
    pair.pump()
    assert [e.data for e in pair.take_server_events() if isinstance(e, PingReceived)] == [
        b"12345678"
    ]
    assert [e.data for e in pair.take_client_events() if isinstance(e, PingAcknowledged)] == [
        b"12345678"
    ]


def test_importing_the_transport_patches_nothing_in_h2_or_hyperframe() -> None:
    """The cheap frame repr lives on our own frame classes, not in h2's or hyperframe's modules
    (a module attribute set there would change them for every library in the process)."""
    import h2.connection
    import hyperframe.frame

    import transport.core  # noqa: F401

    assert "repr" not in vars(h2.connection)
    assert hyperframe.frame._raw_data_repr.__module__ == "hyperframe.frame"


def test_frames_built_by_the_reader_have_a_cheap_repr_and_reach_h2s_handlers() -> None:
    from transport.frame_reader import RECEIVED_FRAME_CLASSES, ReceivedDataFrame

    pair = CorePair()
    for ours, h2_class in RECEIVED_FRAME_CLASSES:
        table = pair.server._h2._frame_dispatch_table
        assert table[ours] == table[h2_class]
    frame = ReceivedDataFrame(1)
    frame.data = b"x" * 65536
    assert repr(frame) == "DataFrame(received by h2rpc's frame reader)"


def test_a_repeated_malformed_request_head_is_refused_every_time_and_a_good_one_passes():
    """Verdicts on header blocks are remembered per connection: a repeat gets the same one."""
    pair = CorePair()
    bad = [*REQUEST, (b"connection", b"close")]  # connection-specific: malformed (§8.2.2)
    for _ in range(3):
        for headers, refused in ((bad, True), (REQUEST, False)):
            sid = pair.client.next_stream_id()
            pair.client.send_headers(sid, headers, end_stream=True)
            pair.pump()
            server_events = pair.take_server_events()
            client_events = pair.take_client_events()
            resets = [e for e in client_events if isinstance(e, StreamReset)]
            if refused:
                assert not any(isinstance(e, RequestReceived) for e in server_events)
                assert [(e.stream_id, e.error_code) for e in resets] == [
                    (sid, h2.errors.ErrorCodes.PROTOCOL_ERROR)
                ]
            else:
                assert [e.stream_id for e in server_events if isinstance(e, RequestReceived)] == [
                    sid
                ]
                assert resets == []


def test_a_malformed_response_that_closes_the_stream_fails_the_call_without_a_crash():
    # Found by test_protocol_properties: the request had ended, so a response HEADERS with
    # END_STREAM closed the stream; resetting it for the malformed block raised out of the core.
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(sid, REQUEST, end_stream=True)  # request fields as a "response"
    events = pair.client.receive_data(pair.server.data_to_send())
    reset = events[0]
    assert isinstance(reset, StreamReset)
    assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR and not reset.remote
    assert pair.client.data_to_send() == b""  # no RST_STREAM on a closed stream
