"""Frames on a stream we reset are ignored for a bounded while (RFC 9113 §5.1), in both roles."""

from __future__ import annotations

from hyperframe.frame import DataFrame, Frame, RstStreamFrame, WindowUpdateFrame

from codec.http2_errors import CANCEL, STREAM_CLOSED
from tests.transport.pair import REQUEST, RESPONSE, CorePair
from transport import ConnectionOptions, RequestReceived
from transport.reset_streams import RESET_GRACE_BYTES, RESET_GRACE_SECONDS, RESET_GRACE_STREAMS


def frames_of(data: bytes) -> list[Frame]:
    out = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        data = data[9 + length :]
        out.append(frame)
    return out


def data_frame(stream_id: int, payload: bytes, *, end_stream: bool = False) -> bytes:
    frame = DataFrame(stream_id)
    frame.data = payload
    if end_stream:
        frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


def resets(data: bytes) -> list[tuple[int, int]]:
    return [(f.stream_id, f.error_code) for f in frames_of(data) if isinstance(f, RstStreamFrame)]


def reset_by_server(pair: CorePair) -> tuple[int, bytes]:
    """A stream the client opened and the server reset (CANCEL), and the bytes of that
    RST_STREAM, which the client has not read yet."""
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    assert any(isinstance(e, RequestReceived) for e in pair.take_server_events())
    pair.server.reset_stream(sid, CANCEL)
    rst = pair.server.data_to_send()
    assert resets(rst) == [(sid, CANCEL)]
    return sid, rst


def test_data_in_flight_on_a_stream_we_reset_is_ignored_and_its_window_given_back():
    pair = CorePair(server_options=ConnectionOptions(connection_window_size=65_535))
    sid, _ = reset_by_server(pair)
    # The client had sent 80 KB more before it read the reset: more than the connection
    # window, so unless the ignored bytes are credited back the connection would stall.
    out = b""
    for i in range(5):
        pair.server.receive_data(data_frame(sid, bytes(16_000), end_stream=i == 4), now=1.0)
        out += pair.server.data_to_send()
    assert resets(out) == []
    assert any(isinstance(f, WindowUpdateFrame) and f.stream_id == 0 for f in frames_of(out))


def test_trailers_in_flight_on_a_stream_we_reset_are_ignored_and_hpack_stays_in_step():
    pair = CorePair()
    sid, _ = reset_by_server(pair)
    pair.client.send_trailers(sid, [(b"x-late", b"trailer")])  # before it read our reset
    pair.server.receive_data(pair.client.data_to_send(), now=1.0)
    assert resets(pair.server.data_to_send()) == []
    # The same header fields again, on a new stream: HPACK's table is still shared correctly.
    sid2 = pair.client.next_stream_id()
    pair.client.send_headers(sid2, [*REQUEST, (b"x-late", b"trailer")], end_stream=True)
    events = pair.server.receive_data(pair.client.data_to_send(), now=1.0)
    (request,) = [e for e in events if isinstance(e, RequestReceived)]
    assert (b"x-late", b"trailer") in request.headers


def test_the_client_ignores_a_response_in_flight_on_a_call_it_cancelled():
    pair = CorePair()
    sid = pair.client.next_stream_id()
    pair.client.send_headers(sid, REQUEST)
    pair.pump()
    pair.server.send_headers(sid, RESPONSE)
    pair.server.send_data(sid, b"late reply")
    pair.client.reset_stream(sid, CANCEL)
    pair.client.data_to_send()
    pair.client.receive_data(pair.server.data_to_send(), now=1.0)
    assert resets(pair.client.data_to_send()) == []


def test_the_grace_ends_after_its_time():
    pair = CorePair()
    sid, _ = reset_by_server(pair)
    pair.server.receive_data(data_frame(sid, b"x"), now=100.0)  # starts the grace
    assert resets(pair.server.data_to_send()) == []
    pair.server.receive_data(data_frame(sid, b"x"), now=100.0 + RESET_GRACE_SECONDS + 0.1)
    assert resets(pair.server.data_to_send()) == [(sid, STREAM_CLOSED)]


def test_the_grace_ends_after_one_window_of_bytes():
    options = ConnectionOptions(initial_window_size=65_535)
    pair = CorePair(server_options=options)
    sid, _ = reset_by_server(pair)
    budget = 65_535 + RESET_GRACE_BYTES
    sent = 0
    while sent + 9 + 16_000 <= budget:
        pair.server.receive_data(data_frame(sid, bytes(16_000)), now=1.0)
        sent += 9 + 16_000
        assert resets(pair.server.data_to_send()) == []
    pair.server.receive_data(data_frame(sid, bytes(16_000)), now=1.0)
    assert (sid, STREAM_CLOSED) in resets(pair.server.data_to_send())


def test_graces_are_remembered_for_a_bounded_number_of_streams():
    # (The client takes this many resets in a row: not a rapid-reset flood here.)
    pair = CorePair(client_options=ConnectionOptions(reset_flood_limit=(1.0, 10_000)))
    for _ in range(RESET_GRACE_STREAMS + 10):
        sid, rst = reset_by_server(pair)
        pair.server.receive_data(data_frame(sid, b"x"), now=1.0)
        assert resets(pair.server.data_to_send()) == []
        pair.client.receive_data(rst)  # the client reads the reset: its stream slot is free
    assert len(pair.server._h2._grace) == RESET_GRACE_STREAMS
