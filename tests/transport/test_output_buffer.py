"""The stand-in for h2's output buffer hands out exactly the bytes h2 queued, in order."""

from __future__ import annotations

from tests.transport.pair import REQUEST, RESPONSE, TRAILERS, CorePair
from transport.output_buffer import OutputPieces


def test_pieces_come_out_joined_in_order_and_the_buffer_empties() -> None:
    out = OutputPieces()
    out += b"ab"
    out += bytearray(b"cd")
    out += b""
    assert len(out) == 4
    assert out[1:3] == b"bc"
    assert out.take() == b"abcd"
    assert len(out) == 0 and out.take() == b""


def test_a_core_pair_talks_through_it_and_survives_h2_replacing_it() -> None:
    pair = CorePair()
    assert isinstance(pair.client._h2._data_to_send, OutputPieces)
    pair.client._h2.clear_outbound_data_buffer()  # h2 puts a bytearray in its place
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, RESPONSE)
    pair.server.send_data(1, b"x" * 100_000)
    pair.server.send_trailers(1, TRAILERS)
    pair.pump()
    assert isinstance(pair.client._h2._data_to_send, OutputPieces)  # ours is back
    received = b"".join(
        e.data for e in pair.take_client_events() if type(e).__name__ == "DataReceived"
    )
    assert received == b"x" * 100_000


def test_views_are_joined_not_copied_on_append_and_bytearrays_are_copied() -> None:
    message = b"m" * 100_000
    out = OutputPieces()
    out += b"head"
    out += memoryview(message)[10:20]
    changing = bytearray(b"xy")
    out += changing
    changing[:] = b"zz"  # a bytearray may change after it was queued: ours did not
    assert out.take() == b"head" + b"m" * 10 + b"xy"
    out += memoryview(message)[:3]  # a lone view comes out as bytes
    data = out.take()
    assert type(data) is bytes and data == b"mmm"
